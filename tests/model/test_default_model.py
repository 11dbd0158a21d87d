"""The shipped default model: no change in, no change out, through the real predict path.

The head is anchored on "no change" by construction (``no_change_margin``, see
``s2m_geo/model/s2m.py``); these tests hold the shipped package to it on the project's
synthetic scenes and on real images of every kind in ../shared/realdata (skipped when absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio

from s2m_geo.model import read_package_meta
from s2m_geo.predict.pipeline import predict
from s2m_geo.predict.runners import default_model_path

ROOT = Path(__file__).resolve().parents[2]


def changed_pixels(tmp_path: Path, image: Path) -> tuple[int, int]:
    """(changed, valid) pixels of ``predict(image, image)`` with the shipped model."""
    out = tmp_path / f"{image.parent.name}_{image.stem}.tif"
    predict(image, image, out, default_model_path())
    with rasterio.open(out) as ds:
        classes = ds.read(1)
    valid = classes != 255
    return int(((classes != 0) & valid).sum()), int(valid.sum())


def test_shipped_model_is_anchored_on_no_change():
    meta = read_package_meta(default_model_path())
    assert meta.config is not None and meta.config.no_change_margin > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pre.tif", "post.tif"])
def test_sample_scene_against_itself_is_no_change(tmp_path, name):
    changed, valid = changed_pixels(tmp_path, ROOT / "sample_data" / name)
    assert valid > 1_000_000 and changed == 0


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize(
    "rel",
    [
        "rasterio-rgb-byte/RGB.byte.tif",  # Landsat 7, nodata frame
        "changeformer-levir-dsifn-samples/samples_LEVIR/A/train_386_0512_0768.png",
        "sztaki-airchange/A/szada_1.png",  # no georeference
        "oscd-sentinel2-urban/beirut/pre.tif",  # Sentinel-2 uint16, 4 bands
        "usgs-ucmerced-urban/images/denseresidential/denseresidential00.png",
    ],
)
def test_real_image_against_itself_is_no_change(tmp_path, realdata, rel):
    image = realdata / rel
    if not image.is_file():
        pytest.skip(f"{image} not in this copy of realdata")
    changed, valid = changed_pixels(tmp_path, image)
    assert valid > 0 and changed == 0
