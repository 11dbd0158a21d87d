"""A ``changes`` layer made from the synthetic scene's labels (no model): every polygon is a
connected region of one label class, so counts and areas can be checked against the label."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from s2m_geo.classes import load_class_table
from s2m_geo.describe.geo import GeoFrame
from s2m_geo.vector.output import ChangeCollector, write_vectors
from s2m_geo.vector.vectorize import vectorize


@pytest.fixture(scope="session")
def label(small_scene) -> tuple[np.ndarray, dict]:
    """The 512x512 synthetic label (seed 0) and its profile."""
    with rasterio.open(small_scene["label"]) as ds:
        return ds.read(1), ds.profile


@pytest.fixture(scope="session")
def changes_gpkg(tmp_path_factory, small_scene, label) -> Path:
    """``changes.gpkg`` (both layers, as predict writes them) from the label's regions."""
    data, profile = label
    table = load_class_table()
    frame = GeoFrame.from_grid(profile["crs"], profile["transform"], profile["width"], profile["height"])
    collector = ChangeCollector(frame, table, "synthetic", "label")
    for region in vectorize(data, np.ones(data.shape, np.float32), profile["transform"]):
        if region.class_id:
            collector(region)
    out = tmp_path_factory.mktemp("changes") / "changes.gpkg"
    write_vectors(
        out, collector.changes_frame(), collector.scenes_frame(small_scene["pre"], small_scene["post"]), table
    )
    return out


@pytest.fixture(scope="session")
def changes_frame(changes_gpkg) -> gpd.GeoDataFrame:
    """The ``changes`` layer, read back."""
    return gpd.read_file(changes_gpkg, layer="changes")
