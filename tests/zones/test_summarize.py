"""summarize_zones: exact splitting at borders, area conservation over zones that tile the
scene, coverage, and per-zone sentences checked against directions computed here."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import CRS, Transformer

from s2m_geo.describe.geo import BULK_AREA_RTOL, ground_area_m2, ground_areas_m2
from s2m_geo.zones import (
    NOT_COVERED_SENTENCE,
    STATUS_COVERED,
    STATUS_NOT_COVERED,
    STATUS_PARTLY,
    grid_zones,
    split_by_zones,
    summarize_zones,
)

UTM = CRS.from_epsg(32636)
X0, Y0 = 637100.0, 3486000.0  # inside the synthetic scenes' area, UTM 36N
GSD_THRESHOLDS_M2 = (800 * 0.25, 4000 * 0.25, 8000 * 0.25)  # gaza_change: reference_gsd_m 0.5


def _layers(gpkg):
    return gpd.read_file(gpkg, layer="changes"), gpd.read_file(gpkg, layer="scenes")


def _voronoi_zones(bounds, n, seed):
    """Irregular zones that tile ``bounds``: Voronoi cells of random points, clipped."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = bounds
    pts = shapely.multipoints(np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)]))
    frame = shapely.box(*bounds)
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=frame))
    return [shapely.intersection(c, frame) for c in cells]


@pytest.mark.parametrize("kind", ["grid", "irregular"])
def test_areas_add_up_over_zones_that_tile_the_scene(label_gpkg, table, kind):
    changes, scenes = _layers(label_gpkg)
    bounds = tuple(scenes.total_bounds)
    if kind == "grid":
        zones, names = grid_zones(bounds, 3, 4)
    else:
        zones = _voronoi_zones(bounds, 9, seed=5)
        names = [f"v{i}" for i in range(len(zones))]
    res = summarize_zones(
        changes.geometry.values, changes.class_id.values, zones, names, scenes.geometry.values, UTM, table
    )
    assert [r.zone for r in res] == names and all(r.status == STATUS_COVERED for r in res)
    assert sum(r.zone_area_m2 for r in res) == pytest.approx(ground_area_m2(shapely.box(*bounds), UTM), rel=1e-7)
    whole = ground_areas_m2(changes.geometry.values, UTM)  # the layer's area_m2, unrounded
    assert whole == pytest.approx(changes.area_m2.to_numpy(), abs=5e-4)
    # equal up to the second-order variation of the areal scale across each piece
    assert sum(r.changed_area_m2 for r in res) == pytest.approx(whole.sum(), rel=1e-7)
    assert changes.class_id.nunique() >= 3
    for c in table.change_classes:
        total = whole[changes.class_id.to_numpy() == c.id].sum()
        assert sum(r.areas[c.id] for r in res) == pytest.approx(total, rel=1e-7)
    # counts, checked polygon by polygon: a polygon counts in each zone it overlaps by an area
    ground_per_planar = changes.area_m2.sum() / changes.geometry.area.sum()
    split = 0
    for z, r in zip(zones, res):
        inside = shapely.intersection(z, changes.geometry.values)
        overlap = shapely.area(inside) > 0
        for c in table.change_classes:
            sel = overlap & (changes.class_id.values == c.id)
            assert r.counts[c.id] == int(sel.sum())
            assert r.areas[c.id] == pytest.approx(shapely.area(inside[sel]).sum() * ground_per_planar, rel=1e-5)
        split += int(overlap.sum())
    assert split > len(changes)  # some polygons straddle a border and count in two zones


def test_a_polygon_across_a_border_is_split_exactly():
    left, right = shapely.box(X0, Y0, X0 + 100, Y0 + 100), shapely.box(X0 + 100, Y0, X0 + 200, Y0 + 100)
    across = shapely.box(X0 + 70, Y0 + 20, X0 + 110, Y0 + 60)  # 30 m left of the border, 10 m right
    touching = shapely.box(X0 + 100, Y0 + 70, X0 + 120, Y0 + 90)  # right zone, touches the border only
    pieces = split_by_zones([across, touching], [left, right], UTM)
    assert list(zip(pieces.zone, pieces.change)) == [(0, 0), (1, 0), (1, 1)]  # no line piece in the left zone
    assert pieces.geometry[0].equals(shapely.box(X0 + 70, Y0 + 20, X0 + 100, Y0 + 60))
    assert pieces.geometry[1].equals(shapely.box(X0 + 100, Y0 + 20, X0 + 110, Y0 + 60))
    # 3:1 on the map; on the ground the scale factor differs by ~4e-7 over the 20 m between them
    assert pieces.area_m2[0] / pieces.area_m2[1] == pytest.approx(3.0, rel=1e-6)
    # the pieces' areas add up to the whole's, measured the same way (the bulk ground areas)
    assert pieces.area_m2[0] + pieces.area_m2[1] == pytest.approx(ground_areas_m2([across], UTM)[0], rel=1e-12)
    assert pieces.area_m2[0] + pieces.area_m2[1] == pytest.approx(ground_area_m2(across, UTM), rel=BULK_AREA_RTOL)
    # UTM 36N at 34.4°E: ground areas are the map's divided by the areal scale factor (~0.99966)
    assert pieces.area_m2[0] == pytest.approx(1200.0 / 0.99966, rel=2e-5)


def test_not_covered_partly_covered_and_two_scenes(table):
    scene_a = shapely.box(X0, Y0, X0 + 300, Y0 + 300)
    scene_b = shapely.box(X0 + 200, Y0, X0 + 500, Y0 + 300)  # overlaps a
    change = shapely.box(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20)
    zones = [
        shapely.box(X0 + 1000, Y0, X0 + 1100, Y0 + 100),  # outside every scene
        shapely.box(X0 - 50, Y0, X0 + 50, Y0 + 100),  # across a's west edge: half inside
        shapely.box(X0 + 220, Y0 + 10, X0 + 280, Y0 + 90),  # inside both scenes
        shapely.box(X0 + 5, Y0 + 5, X0 + 15, Y0 + 15),  # inside a, quarter of the change
    ]
    res = summarize_zones([change], [1], zones, ["out", "edge", "both", "corner"], [scene_a, scene_b], UTM, table)
    out, edge, both, corner = res
    assert (out.status, out.covered_fraction, out.scenes, out.counts, out.areas) == (
        STATUS_NOT_COVERED,
        0.0,
        0,
        None,
        None,
    )
    assert out.changes is None and out.changed_area_m2 is None and out.description == NOT_COVERED_SENTENCE
    assert out.to_dict(table)["classes"] is None
    assert edge.status == STATUS_PARTLY and edge.covered_fraction == pytest.approx(0.5, rel=1e-4)
    assert edge.counts[1] == 1 and edge.areas[1] == pytest.approx(ground_areas_m2([change], UTM)[0], rel=1e-12)
    assert both.status == STATUS_COVERED and both.covered_fraction == 1.0 and both.scenes == 2
    assert both.changes == 0 and both.description == "There is no change in the image."
    assert corner.counts[1] == 1 and corner.areas[1] == pytest.approx(ground_areas_m2([change], UTM)[0] / 4, rel=1e-6)


def test_directions_and_quantities_in_the_zones_own_frame(table):
    zone = shapely.box(X0, Y0, X0 + 300, Y0 + 300)
    changes = [
        shapely.box(X0 + 240, Y0 + 240, X0 + 250, Y0 + 250),  # class 1, 100 m², northeast cell
        shapely.box(X0 + 135, Y0 + 135, X0 + 165, Y0 + 165),  # class 2, 900 m², centre
        shapely.box(X0 + 40, Y0 + 20, X0 + 90, Y0 + 60),  # class 6, 2000 m², southwest cell
        shapely.box(X0 + 140, Y0 + 230, X0 + 180, Y0 + 290),  # class 6 as well: 2400 m², north cell
    ]
    (res,) = summarize_zones(changes, [1, 2, 6, 6], [zone], ["z"], [zone], UTM, table)
    assert [(q.class_id, q.direction, q.quantity) for q, _ in res.items] == [
        (1, "northeast", "a single"),
        (2, "center", "a few"),
        # neither southwest nor north: their area-weighted centroid, x = (2000·65 + 2400·160) / 4400
        # = 117 m, y = (2000·40 + 2400·260) / 4400 = 160 m, lies in the middle cell
        (6, "center", "multiple"),
    ]
    assert res.items[0][1] == "There is a single destroyed building in the northeast region."
    assert res.items[1][1] == "There are a few newly built buildings in the center of the image."
    assert res.counts[6] == 2 and res.areas[6] == pytest.approx(4400 / 0.99966, rel=2e-5)


def _independent_direction(zone, pieces, crs):
    """The 3×3 rule computed here: area-weighted centroid of the pieces, in an azimuthal
    equidistant frame centred on the zone's bounding-box centre, on thirds of the zone's
    true-north box."""
    x0, y0, x1, y1 = zone.bounds
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_ll.transform((x0 + x1) / 2, (y0 + y1) / 2)
    aeqd = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
    to_local = Transformer.from_crs(crs, aeqd, always_xy=True)
    outline = np.asarray(shapely.segmentize(zone.exterior, 1.0).coords)
    e, n = to_local.transform(outline[:, 0], outline[:, 1])
    areas = np.array([p.area for p in pieces])
    cx = sum(p.centroid.x * a for p, a in zip(pieces, areas)) / areas.sum()
    cy = sum(p.centroid.y * a for p, a in zip(pieces, areas)) / areas.sum()
    pe, pn = to_local.transform(cx, cy)
    fy, fx = (n.max() - pn) / (n.max() - n.min()), (pe - e.min()) / (e.max() - e.min())
    row = ("north", "center", "south")[min(int(fy * 3), 2)]
    col = ("west", "center", "east")[min(int(fx * 3), 2)]
    name = "center" if row == col == "center" else (col if row == "center" else (row if col == "center" else row + col))
    return name, min(abs(fy * 3 - round(fy * 3)), abs(fx * 3 - round(fx * 3)))


def test_sentences_on_the_synthetic_scene_match_directions_computed_independently(label_gpkg, table):
    changes, scenes = _layers(label_gpkg)
    zones = _voronoi_zones(tuple(scenes.total_bounds), 6, seed=11)
    res = summarize_zones(
        changes.geometry.values, changes.class_id.values, zones, list("abcdef"), scenes.geometry.values, UTM, table
    )
    checked, seen = 0, set()
    for z, r in zip(zones, res):
        sentences = []
        for c in table.change_classes:
            inside = [shapely.intersection(z, g) for g in changes.geometry[changes.class_id == c.id]]
            pieces = [p for p in inside if p.area > 0]
            if not pieces:
                assert c.id not in [q.class_id for q, _ in r.items]
                continue
            (q, s) = next((q, s) for q, s in r.items if q.class_id == c.id)
            direction, margin = _independent_direction(z, pieces, UTM)
            if margin > 1e-6:  # not on a third line
                assert q.direction == direction, (r.zone, c.name)
                checked += 1
                seen.add(direction)
            area = r.areas[c.id]
            words = ("a single", "a few", "several", "multiple")
            assert q.quantity == words[sum(area >= t for t in GSD_THRESHOLDS_M2)]
            assert q.direction in s and c.change_type in s
            sentences.append(s)
        assert r.description == (" ".join(sentences) or "There is no change in the image.")
    assert checked >= 8 and len(seen) >= 3  # not all 'center'
