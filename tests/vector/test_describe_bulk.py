"""The changes rows and scene sectors, described in batches of arrays, are what describing
each polygon on its own gives: same directions, bearings, distances, lon/lat, quantities and
sentences; areas within the bulk ground-area tolerance (docs/design.md §3.3); sector counts
equal to cutting every polygon in the scene's frame."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

import s2m_geo.vector.output as output
from s2m_geo.classes import load_class_table
from s2m_geo.describe import Quadruple, quantity_from_area, quantity_from_pixels, sentence
from s2m_geo.describe.geo import BULK_AREA_ATOL_M2, BULK_AREA_RTOL, GeoFrame, ground_area_m2
from s2m_geo.vector.output import ChangeCollector
from s2m_geo.vector.vectorize import vectorize
from s2m_geo.zones.sectors import _to_local, cell_polygons, compass_polygons, scene_sectors
from s2m_geo.zones.summarize import split_by_zones

TABLE = load_class_table()
SIZE = 200
GRIDS = {
    "utm": ("EPSG:32636", Affine(0.5, 0.0, 637000.0, 0.0, -0.5, 3486500.0)),
    "geographic": ("EPSG:4326", Affine(5e-6, 0.0, 34.40, 0.0, -5e-6, 31.55)),
    "rotated": (
        "EPSG:32636",
        Affine.translation(637000.0, 3486500.0) * Affine.rotation(30.0) * Affine.scale(0.5, -0.5),
    ),
    "polar": ("EPSG:3413", Affine(0.5, 0.0, -200_000.0, 0.0, -0.5, -2_000_000.0)),
    "image terms": (None, Affine(0.5, 0.0, 637000.0, 0.0, -0.5, 3486500.0)),
}


def speckled(seed: int = 3) -> np.ndarray:
    """Small blobs of every change class (smoothed noise, thresholded), as a model emits on noise."""
    rng = np.random.default_rng(seed)
    blob = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 2.0)
    kind = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 12.0)
    classes = 1 + (np.floor(kind / kind.std() * 2).astype(np.int64) % (TABLE.num_classes - 1))
    return np.where(blob > 1.5 * blob.std(), classes, 0).astype(np.uint8)


def collected(kind: str, monkeypatch, batch: int) -> tuple[ChangeCollector, list]:
    crs, t = GRIDS[kind]
    monkeypatch.setattr(output, "DESCRIBE_BATCH", batch)
    classes = speckled()
    regions = vectorize(classes, np.full(classes.shape, 0.7, np.float32), t)
    collector = ChangeCollector(GeoFrame.from_grid(crs, t, SIZE, SIZE), TABLE, "s", "m")
    for r in regions:
        collector(r)
    return collector, regions


@pytest.mark.parametrize("kind", list(GRIDS))
def test_rows_are_the_per_polygon_description(kind, monkeypatch):
    collector, regions = collected(kind, monkeypatch, batch=37)  # many batches
    rows = collector.changes_frame()
    frame = collector.frame
    assert len(rows) == len(regions) > 200
    for region, (_, row) in zip(regions, rows.iterrows()):
        loc = frame.locate(*region.pixel_centroid)
        if frame.image_terms:
            area = region.pixels * abs(frame.transform.determinant)
            quantity = quantity_from_pixels(region.pixels)
            assert np.isnan(row.distance_m) and np.isnan(row.lon) and np.isnan(row.lat)
        else:
            area = ground_area_m2(region.geometry, frame.crs)
            quantity = quantity_from_area(area, TABLE.reference_gsd_m)
            assert (row.distance_m, row.lon, row.lat) == (round(loc["distance_m"], 3), loc["lon"], loc["lat"])
        assert row.area_m2 == pytest.approx(area, rel=BULK_AREA_RTOL, abs=BULK_AREA_ATOL_M2 + 5e-4)  # + rounding
        assert (row.direction, row.bearing_deg, row.quantity) == (
            loc["direction"],
            round(loc["bearing_deg"], 3),
            quantity,
        )
        c = TABLE[region.class_id]
        q = Quadruple(region.class_id, c.category, c.change_type, quantity, loc["direction"], region.pixels)
        assert row.description == sentence(q, TABLE)
        assert row.confidence == round(region.confidence, 4)
        assert row.geometry.equals_exact(region.geometry, 0)
    # the batch size changes nothing
    again = collected(kind, monkeypatch, batch=100_000)[0].changes_frame()
    assert again.drop(columns="geometry").equals(rows.drop(columns="geometry"))


@pytest.mark.parametrize("kind", list(GRIDS))
def test_sectors_are_those_of_cutting_every_polygon(kind, monkeypatch):
    collector, _ = collected(kind, monkeypatch, batch=8192)
    frame, geoms = collector.frame, collector.geometries
    class_ids = collector.changes_frame().class_id.to_numpy()
    got = scene_sectors(frame, geoms, class_ids, TABLE.num_classes)
    # the reference: every polygon mapped into the frame and cut at every border
    local = _to_local(frame, geoms)
    crs = None if frame.image_terms else frame.local_proj
    scale = abs(frame.transform.determinant) if frame.image_terms else 1.0
    e0, e1, n0, n1 = frame.extent
    radius = 2.0 * max(abs(e0), abs(e1), abs(n0), abs(n1), 1.0)
    for key, polys in (("cells", cell_polygons(frame.extent)), ("compass", compass_polygons(radius))):
        pieces = split_by_zones(local, polys, crs, area_scale=scale)
        counts = np.zeros_like(got[key].counts)
        areas = np.zeros_like(got[key].areas)
        np.add.at(counts, (pieces.zone, class_ids[pieces.change]), 1)
        np.add.at(areas, (pieces.zone, class_ids[pieces.change]), pieces.area_m2)
        assert (got[key].counts == counts).all()
        assert got[key].areas == pytest.approx(areas, rel=1e-6, abs=1e-6)
        assert counts.sum() > len(geoms)  # some polygons are cut


def test_simplified_outlines_are_what_the_sectors_measure(monkeypatch):
    """With --simplify the rows keep the area of the outline before simplifying, and the scene's
    sectors count and measure the simplified outlines they hold, whole or cut alike."""
    from s2m_geo.zones.sectors import sector_columns

    crs, t = GRIDS["utm"]
    classes = speckled()
    regions = vectorize(classes, np.full(classes.shape, 0.7, np.float32), t)
    collector = ChangeCollector(GeoFrame.from_grid(crs, t, SIZE, SIZE), TABLE, "s", "m", simplify_m=1.0)
    for r in regions:
        collector(r)
    class_ids = collector.changes_frame().class_id.to_numpy()
    want = sector_columns(scene_sectors(collector.frame, collector.geometries, class_ids, TABLE.num_classes), TABLE)
    assert collector.sectors_row() == want
