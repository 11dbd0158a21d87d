"""A ``changes`` layer made from the synthetic scene's labels (no model): every polygon is a
connected region of one label class, so counts and areas can be checked against the label."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from s2m_geo.testing import changes_from_label


@pytest.fixture(scope="session")
def label(small_scene) -> tuple[np.ndarray, dict]:
    """The 512x512 synthetic label (seed 0) and its profile."""
    with rasterio.open(small_scene["label"]) as ds:
        return ds.read(1), ds.profile


@pytest.fixture(scope="session")
def changes_gpkg(tmp_path_factory, small_scene) -> Path:
    """``changes.gpkg`` (both layers, as predict writes them) from the label's regions."""
    return changes_from_label(small_scene["label"], tmp_path_factory.mktemp("changes") / "changes.gpkg")


@pytest.fixture(scope="session")
def changes_frame(changes_gpkg) -> gpd.GeoDataFrame:
    """The ``changes`` layer, read back."""
    return gpd.read_file(changes_gpkg, layer="changes")
