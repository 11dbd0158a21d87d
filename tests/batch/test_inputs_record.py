"""Resume trusts only what it verified: every file a scene's result depends on is recorded
and checked, also when an edit puts the modification time back."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
from rasterio.shutil import copy as rio_copy
from rasterio.transform import from_origin

from s2m_geo.batch.produce import input_change, input_files, input_record


@pytest.fixture
def raster(tmp_path):
    path = tmp_path / "pre.tif"
    data = np.arange(3 * 64 * 64, dtype=np.uint32).reshape(3, 64, 64).astype(np.uint8)
    profile = dict(driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs="EPSG:32636")
    with rasterio.open(path, "w", transform=from_origin(637000, 3486500, 0.5, 0.5), **profile) as ds:
        ds.write(data)
    return path


def _edit_keeping_time(path, offset=-10):
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the time put back, the size the same
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_an_unchanged_input_is_trusted(raster):
    record = input_record(str(raster))
    assert list(record["files"]) == [os.path.realpath(raster)]
    assert len(record["files"][os.path.realpath(raster)]["sha256"]) == 64
    assert input_change(record) == ""
    os.utime(raster)  # touched, not changed: hashed and trusted
    assert input_change(record) == ""


def test_an_edit_with_its_time_put_back_is_seen(raster):
    record = input_record(str(raster))
    _edit_keeping_time(raster)
    assert input_change(record) == f"{os.path.realpath(raster)} changed"


def test_a_new_sidecar_is_a_change(raster):
    record = input_record(str(raster))
    aux = raster.with_name(raster.name + ".aux.xml")  # e.g. a nodata value or a CRS set in QGIS
    aux.write_text("<PAMDataset><PAMRasterBand band='1'><NoDataValue>0</NoDataValue></PAMRasterBand></PAMDataset>")
    assert input_files(str(raster)) == sorted([os.path.realpath(raster), os.path.realpath(aux)])
    assert "the files of" in input_change(record)
    record = input_record(str(raster))
    _edit_keeping_time(aux, offset=-20)
    assert input_change(record) == f"{os.path.realpath(aux)} changed"
    aux.unlink()
    assert "the files of" in input_change(record)


def test_a_vrt_depends_on_its_sources(raster, tmp_path):
    vrt = tmp_path / "scene.vrt"
    rio_copy(str(raster), str(vrt), driver="VRT")  # a VRT whose source is the raster
    record = input_record(str(vrt))
    assert sorted(record["files"]) == sorted([os.path.realpath(vrt), os.path.realpath(raster)])
    _edit_keeping_time(raster)
    assert input_change(record) == f"{os.path.realpath(raster)} changed"
    assert input_change({"path": str(vrt)}) == "no record of its files"
