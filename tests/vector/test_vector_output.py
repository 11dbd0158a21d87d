"""predict -> GeoPackage: schema, styles, compass attributes, seams, formats, atomicity."""

import json
import sqlite3
import subprocess

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from s2m_geo.classes import load_class_table
from s2m_geo.detect import detect_changes
from s2m_geo.predict.pipeline import PredictOptions
from s2m_geo.testing import BrightBandModel, cli_command
from s2m_geo.vector.output import CHANGE_ALIASES, CHANGE_COLUMNS, scenes_aliases

BRIGHT = {"confidence": 0.88, "base": 0.02}  # a stand-in model's probabilities
TRANSFORM = from_origin(637000.0, 3486500.0, 0.5, 0.5)


def _pair(tmp_path, bright, size=300, crs="EPSG:32636", transform=TRANSFORM):
    img = np.full((3, size, size), 60, np.uint8)
    for r0, r1, c0, c1 in bright:
        img[:, r0:r1, c0:c1] = 220
    paths = []
    for name in ("pre", "post"):
        p = tmp_path / f"{name}.tif"
        with rasterio.open(
            p, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=crs, transform=transform
        ) as ds:
            ds.write(img)
        paths.append(p)
    return paths


def test_geopackage_schema_styles_and_attributes(tmp_path):
    pre, post = _pair(tmp_path, [(20, 60, 230, 290)])  # a block in the north-east
    out = tmp_path / "changes.gpkg"
    res = detect_changes(pre, post, out, BrightBandModel(**BRIGHT), PredictOptions(block_tiles=1))
    assert res.vectors == [out]
    layers = dict(pyogrio.list_layers(out))
    assert layers["changes"] == "Polygon" and layers["scenes"] == "Polygon"
    changes = gpd.read_file(out, layer="changes")
    assert list(changes.columns) == CHANGE_COLUMNS + ["geometry"]
    assert len(changes) == 1
    row = changes.iloc[0]
    assert (row.class_id, row.category, row.change_type) == (1, "building", "destroyed")
    assert row.direction == "northeast" and 20 < row.bearing_deg < 70
    assert row.area_m2 == pytest.approx(40 * 60 * 0.25, rel=0.005)
    assert row.quantity == "a few"  # 600 m²: between 800 and 4000 px at the table's 0.5 m
    assert "northeast" in row.description and row.confidence > 0.8
    assert changes.crs.to_epsg() == 32636 and row.geometry.area == pytest.approx(600.0)
    scenes = gpd.read_file(out, layer="scenes")
    assert len(scenes) == 1 and scenes.iloc[0].n_building_destroyed == 1
    assert "northeast" in scenes.iloc[0].description
    with sqlite3.connect(out) as con:
        styles = dict(con.execute("SELECT f_table_name, styleQML FROM layer_styles").fetchall())
    assert set(styles) == {"changes", "scenes"}
    assert 'attr="class_id"' in styles["changes"] and "227,26,28" in styles["changes"]
    # every field has its alias in words, from one home (CHANGE_ALIASES, scenes_aliases)
    table = load_class_table()
    assert _aliases(styles["changes"]) == CHANGE_ALIASES and list(CHANGE_ALIASES) == CHANGE_COLUMNS
    assert _aliases(styles["scenes"]) == scenes_aliases(table)
    assert list(scenes_aliases(table)) == [c for c in scenes.columns if c != "geometry"]
    assert CHANGE_ALIASES["bearing_deg"] == "Bearing from scene centre (° from true north)"
    assert scenes_aliases(table)["area_m2_sector_ne"] == "Changed area in the northeast sector (m²)"


def _aliases(qml):
    import xml.etree.ElementTree as ET

    return {a.get("field"): a.get("name") for a in ET.fromstring(qml).findall("aliases/alias")}


def test_a_region_across_four_blocks_is_one_polygon(tmp_path):
    pre, post = _pair(tmp_path, [(30, 250, 40, 260)])  # spans every 64-px tile block seam
    out = tmp_path / "c.gpkg"
    detect_changes(pre, post, out, BrightBandModel(class_id=3, **BRIGHT), PredictOptions(block_tiles=1))
    changes = gpd.read_file(out, layer="changes")
    assert len(changes) == 1 and changes.iloc[0].class_id == 3
    assert changes.iloc[0].geometry.area == pytest.approx(220 * 220 * 0.25)
    assert changes.iloc[0].direction == "center"


def test_empty_result_is_still_a_polygon_layer(tmp_path):
    pre, post = _pair(tmp_path, [])
    out = tmp_path / "c.gpkg"
    res = detect_changes(pre, post, out, BrightBandModel(**BRIGHT))
    assert res.changes == 0
    assert dict(pyogrio.list_layers(out))["changes"] == "Polygon"
    changes = gpd.read_file(out, layer="changes")
    assert len(changes) == 0 and list(changes.columns) == CHANGE_COLUMNS + ["geometry"]
    assert gpd.read_file(out, layer="scenes").iloc[0].description == "There is no change in the image."


def test_min_area_and_simplify(tmp_path):
    # a 4x4 px speck (4 m²) and a staircase: 40 one-pixel steps make its outline jagged
    stairs = [(100 + i, 101 + i, 100, 100 + i + 1) for i in range(40)] + [(100, 160, 100, 101)]
    pre, post = _pair(tmp_path, [(10, 14, 10, 14), *stairs])
    plain, simple = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    detect_changes(pre, post, plain, BrightBandModel(**BRIGHT), min_area_m2=10.0)
    detect_changes(pre, post, simple, BrightBandModel(**BRIGHT), min_area_m2=10.0, simplify_m=1.0)
    a, b = gpd.read_file(plain, layer="changes"), gpd.read_file(simple, layer="changes")
    assert len(a) == len(b) == 1  # the speck is dropped by its ground area
    ga, gb = a.geometry.iloc[0], b.geometry.iloc[0]
    assert shapely.get_num_coordinates(gb) < shapely.get_num_coordinates(ga) / 4  # the steps are gone
    assert gb.is_valid and gb.hausdorff_distance(ga) <= 1.0 + 1e-9  # within the tolerance, in metres
    assert b.area_m2.iloc[0] == a.area_m2.iloc[0]  # the area is the region's, not the outline's


@pytest.mark.parametrize("ext", [".geojson", ".fgb", ".parquet"])
def test_other_formats_write_changes_and_a_scenes_sidecar(tmp_path, ext):
    pre, post = _pair(tmp_path, [(20, 60, 230, 290)])
    out = tmp_path / f"c{ext}"
    res = detect_changes(pre, post, out, BrightBandModel(**BRIGHT))
    assert res.vectors == [out, tmp_path / f"c_scenes{ext}"]
    changes = gpd.read_parquet(out) if ext == ".parquet" else gpd.read_file(out)
    assert len(changes) == 1 and changes.iloc[0].direction == "northeast"
    assert set(CHANGE_COLUMNS) <= set(changes.columns)
    if ext != ".parquet":  # the layers are named after their files, not their temporary names
        import pyogrio

        assert [n for n, _ in pyogrio.list_layers(out)] == ["c"]
        assert [n for n, _ in pyogrio.list_layers(tmp_path / f"c_scenes{ext}")] == ["c_scenes"]


def test_geographic_scene_areas_and_directions(tmp_path):
    # the same place in EPSG:4326, pixels ~0.5 m on the ground
    t = from_origin(34.4400, 31.5060, 0.5 / (111_320 * np.cos(np.radians(31.5))), 0.5 / 110_574)
    pre, post = _pair(tmp_path, [(20, 60, 230, 290)], crs="EPSG:4326", transform=t)
    out = tmp_path / "c.gpkg"
    detect_changes(pre, post, out, BrightBandModel(**BRIGHT))
    row = gpd.read_file(out, layer="changes").iloc[0]
    assert row.direction == "northeast" and row.area_m2 == pytest.approx(600.0, rel=0.01)


def test_failures_leave_no_output(tmp_path):
    pre, post = _pair(tmp_path, [(20, 60, 230, 290)])
    out = tmp_path / "c.gpkg"

    def stop(stage, done, total):
        if stage == "infer":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        detect_changes(pre, post, out, BrightBandModel(**BRIGHT), raster=tmp_path / "c.tif", progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["post.tif", "pre.tif"]


@pytest.mark.integration
def test_cli_predict_to_geopackage(tmp_path, tiny_model, small_scene):
    out = tmp_path / "changes.gpkg"
    proc = subprocess.run(
        cli_command(
            "predict",
            small_scene["pre"],
            small_scene["post"],
            "-o",
            out,
            "--model",
            tiny_model,
            "--raster",
            tmp_path / "changes.tif",
            "--min-area",
            "1",
        ),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and (tmp_path / "changes.tif").exists()
    assert "change polygons" in proc.stdout
    bad = subprocess.run(
        cli_command(
            "predict", small_scene["pre"], small_scene["post"], "-o", tmp_path / "x.shp", "--model", tiny_model
        ),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "x.shp" in bad.stderr and ".gpkg" in bad.stderr


def test_scenes_layer_counts_and_areas_per_sector(tmp_path):
    pre, post = _pair(tmp_path, [(20, 60, 230, 290)])  # one 600 m² block in the north-east
    out = tmp_path / "c.gpkg"
    detect_changes(pre, post, out, BrightBandModel(**BRIGHT))
    scene = gpd.read_file(out, layer="scenes").iloc[0]
    area = gpd.read_file(out, layer="changes").iloc[0].area_m2
    # the block's pixels span bearings 31.6°-57.3° from the centre: all in the NE cell and sector
    assert scene.n_cell_northeast == 1 and scene.area_m2_cell_northeast == pytest.approx(area, rel=1e-6)
    assert scene.n_sector_ne == 1 and scene.area_m2_sector_ne == pytest.approx(area, rel=1e-6)
    for name in ("northwest", "north", "west", "center", "east", "southwest", "south", "southeast"):
        assert scene[f"n_cell_{name}"] == 0 and scene[f"area_m2_cell_{name}"] == 0.0
    assert json.loads(scene.sectors)["compass"]["ne"] == {"building_destroyed": [1, pytest.approx(area, rel=1e-6)]}
    # the columns that were there before are unchanged, in their order
    cols = list(scene.index)
    assert cols[: cols.index("n_cell_northwest")][-2:] == ["n_greenhouse_new", "area_m2_greenhouse_new"]


def test_a_region_around_the_centre_is_split_over_every_sector(tmp_path):
    # rows 30-250, cols 40-260 of a 300-px scene: 110 px west/east, 120 px north and 100 south of the centre
    pre, post = _pair(tmp_path, [(30, 250, 40, 260)])
    out = tmp_path / "c.gpkg"
    detect_changes(pre, post, out, BrightBandModel(**BRIGHT))
    scene = gpd.read_file(out, layer="scenes").iloc[0]
    total = scene.changed_area_m2
    sectors = ("n", "ne", "e", "se", "s", "sw", "w", "nw")
    assert [scene[f"n_sector_{s}"] for s in sectors] == [1] * 8  # one polygon, counted in each
    assert sum(scene[f"area_m2_sector_{s}"] for s in sectors) == pytest.approx(total, rel=1e-6)
    # the N sector (337.5°-22.5°) inside the block is a triangle: 120 px high, 120·tan 22.5° px each side
    n_px = 120 * 120 * np.tan(np.radians(22.5))
    assert scene.area_m2_sector_n == pytest.approx(n_px * 0.25 / 0.99966, rel=2e-3)
    assert scene.area_m2_sector_s == pytest.approx(100 * 100 * np.tan(np.radians(22.5)) * 0.25 / 0.99966, rel=2e-3)
    # the centre cell is full: a third of the true-north box around the grid, which is rotated by
    # the meridian convergence γ, so 300·(cos γ + sin γ) / 3 px wide and high
    from pyproj import Proj

    lon, lat = Proj("EPSG:32636")(637075.0, 3486425.0, inverse=True)
    gamma = np.radians(Proj("EPSG:32636").get_factors(lon, lat).meridian_convergence)
    side = 100 * (np.cos(gamma) + abs(np.sin(gamma)))
    assert abs(np.degrees(gamma)) > 0.5  # large enough to matter here
    assert scene.area_m2_cell_center == pytest.approx(side * side * 0.25 / 0.99966, rel=2e-3)
    assert sum(scene[f"n_cell_{c}"] for c in ("northwest", "north", "northeast", "center")) == 4
