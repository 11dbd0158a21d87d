"""Test data for zones: a synthetic scene's label vectorised into a changes GeoPackage (as
``predict`` writes it), and zones drawn over it."""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio

from s2m_geo.classes import load_class_table
from s2m_geo.describe.geo import GeoFrame
from s2m_geo.vector.output import ChangeCollector, write_vectors
from s2m_geo.vector.vectorize import vectorize


def label_changes(scene: dict[str, Path], out: Path, scene_id: str = "s0") -> Path:
    """The label raster of ``scene`` as a ``changes`` + ``scenes`` GeoPackage at ``out``."""
    table = load_class_table()
    with rasterio.open(scene["label"]) as ds:
        label = ds.read(1)
        frame = GeoFrame.from_grid(ds.crs, ds.transform, ds.width, ds.height)
        transform = ds.transform
    collector = ChangeCollector(frame, table, scene_id, "label")
    for region in vectorize(label, transform=transform):
        collector(region)
    write_vectors(out, collector, scene["pre"], scene["post"])
    return out


@pytest.fixture(scope="session")
def label_gpkg(small_scene, tmp_path_factory) -> Path:
    """The 512² synthetic scene's label (seed 0) as the changes of a prediction."""
    return label_changes(small_scene, tmp_path_factory.mktemp("label") / "label.gpkg")


@pytest.fixture(scope="session")
def table():
    return load_class_table()
