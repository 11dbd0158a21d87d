"""Scene sectors: the 3×3 cells and the eight compass sectors split the scene's changed area
exactly, and their per-class detail agrees with the per-class columns."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely

from s2m_geo.zones.sectors import CELLS, COMPASS, cell_polygons, compass_polygons


def test_cells_and_wedges_tile_the_plane_around_the_extent():
    extent = (-300.0, 450.0, -200.0, 100.0)
    cells = cell_polygons(extent)
    assert shapely.union_all(cells).contains(shapely.box(-300, -200, 450, 100))
    assert sum(c.area for c in cells) == pytest.approx(shapely.union_all(cells).area)  # no overlaps
    # the center cell is the middle third of the extent both ways
    assert cells[CELLS.index("center")].equals(shapely.box(-50, -100, 200, 0))
    wedges = compass_polygons(1000.0)
    assert shapely.union_all(wedges).contains(shapely.Point(0, 0).buffer(1000.0))
    assert sum(w.area for w in wedges) == pytest.approx(shapely.union_all(wedges).area)
    # north is the wedge around +N, east the one around +E
    assert wedges[COMPASS.index("n")].contains(shapely.Point(0, 500))
    assert wedges[COMPASS.index("e")].contains(shapely.Point(500, 30))
    assert wedges[COMPASS.index("ne")].contains(shapely.Point(300, 310))


def test_sector_columns_of_the_synthetic_scene_add_up(label_gpkg, table):
    scene = gpd.read_file(label_gpkg, layer="scenes").iloc[0]
    changes = gpd.read_file(label_gpkg, layer="changes")
    total = scene.changed_area_m2
    assert total > 1000
    cells = [scene[f"area_m2_cell_{c}"] for c in CELLS]
    sectors = [scene[f"area_m2_sector_{s}"] for s in COMPASS]
    assert sum(cells) == pytest.approx(total, rel=1e-6)
    assert sum(sectors) == pytest.approx(total, rel=1e-6)
    assert sum(a > 0 for a in cells) >= 5 and sum(a > 0 for a in sectors) >= 5  # spread over the scene
    assert sum(scene[f"n_cell_{c}"] for c in CELLS) >= len(changes)
    detail = json.loads(scene.sectors)
    for c in table.change_classes:
        for key in ("cells", "compass"):
            area = sum(v.get(c.name, [0, 0.0])[1] for v in detail[key].values())
            assert area == pytest.approx(scene[f"area_m2_{c.name}"], rel=1e-6, abs=0.01)
    for name in CELLS:
        per_class = detail["cells"][name]
        assert sum(n for n, _ in per_class.values()) == scene[f"n_cell_{name}"]
