"""s2m-geo zones: zones in another CRS, one across the scene edge and one outside it, the
output layer, the table and JSON on stdout, --grid, and every bad input failing well."""

from __future__ import annotations

import json

import geopandas as gpd
import pyogrio
import pytest
import shapely

from s2m_geo.testing import assert_fails_well as _fails_well
from s2m_geo.testing import run_cli as run
from s2m_geo.zones import summarize_zones

UTM = "EPSG:32636"


@pytest.fixture(scope="module")
def zones_utm(label_gpkg):
    """Two zones splitting the scene, one across its east edge, one outside it (UTM)."""
    x0, y0, x1, y1 = gpd.read_file(label_gpkg, layer="scenes").total_bounds
    xm = (x0 + x1) / 2
    return gpd.GeoDataFrame(
        {"name": ["west half", "east half", "edge", "outside"], "id": [1, 2, 3, 4]},
        geometry=[
            shapely.box(x0, y0, xm, y1),
            shapely.box(xm, y0, x1, y1),
            shapely.box(x1 - 40, y0 + 20, x1 + 40, y0 + 100),  # half of it outside
            shapely.box(x1 + 500, y0, x1 + 600, y0 + 100),
        ],
        crs=UTM,
    )


def test_zones_in_another_crs_table_and_layer(tmp_path, label_gpkg, zones_utm, table):
    zones_file = tmp_path / "districts.geojson"
    zones_utm.to_crs("EPSG:4326").to_file(zones_file)  # another CRS than the changes (lon/lat)
    out = tmp_path / "summary.gpkg"
    res = run("zones", label_gpkg, zones_file, "-o", out, "--field", "name")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == f"{out}: 4 zones (2 covered, 1 partly covered, 1 not covered)"
    assert lines[1].split()[:5] == ["zone", "status", "covered", "changes", "area"]
    assert any(line.startswith("outside") and "not covered" in line for line in lines)

    assert [n for n, _ in pyogrio.list_layers(out)] == ["zones", "layer_styles"]
    got = gpd.read_file(out, layer="zones")
    assert got.crs.to_epsg() == 4326  # the zones keep their own CRS and geometry
    assert list(got.zone) == ["west half", "east half", "edge", "outside"]
    assert list(got.status) == ["covered", "covered", "partly covered", "not covered"]
    assert got.covered_fraction[2] == pytest.approx(0.5, rel=1e-3)
    outside = got.iloc[3]
    assert outside.covered_fraction == 0.0 and outside.scenes == 0
    assert outside.isna()[["changes", "changed_area_m2", "n_building_destroyed", "area_m2_building_new"]].all()
    assert outside.description.startswith("No imagery covers this zone")

    # the same figures as zones given in the changes' own CRS
    changes = gpd.read_file(label_gpkg, layer="changes")
    scenes = gpd.read_file(label_gpkg, layer="scenes")
    ref = summarize_zones(
        changes.geometry.values,
        changes.class_id.values,
        zones_utm.geometry.values,
        list(zones_utm.name),
        scenes.geometry.values,
        UTM,
        table,
    )
    for r, (_, row) in zip(ref[:3], got.iloc[:3].iterrows()):
        assert row.changes == r.changes and row.changed_area_m2 == pytest.approx(r.changed_area_m2, rel=1e-6)
        assert row.description == r.description
        for c in table.change_classes:
            assert row[f"n_{c.name}"] == r.counts[c.id]
    halves = got.changed_area_m2[0] + got.changed_area_m2[1]
    assert halves == pytest.approx(scenes.changed_area_m2[0], rel=1e-6)


def test_json_and_grid(tmp_path, label_gpkg, table):
    out = tmp_path / "grid.geojson"
    res = run("zones", label_gpkg, "--grid", "3x3", "-o", out, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["zone"] for r in rows] == ["A1", "A2", "A3", "B1", "B2", "B3", "C1", "C2", "C3"]
    assert {r["status"] for r in rows} == {"covered"} and all(r["scenes"] == 1 for r in rows)
    scene = gpd.read_file(label_gpkg, layer="scenes").iloc[0]
    assert sum(r["changed_area_m2"] for r in rows) == pytest.approx(scene.changed_area_m2, rel=1e-6)
    for r in rows:
        assert r["changes"] == sum(v["count"] for v in r["classes"].values())
        joined = " ".join(q["sentence"] for q in r["quadruples"])
        assert r["description"] == (joined or "There is no change in the image.")
        present = [name for name, v in r["classes"].items() if v["count"]]
        assert [table[q["class_id"]].name for q in r["quadruples"]] == present
    assert sum(r["changes"] > 0 for r in rows) >= 5
    written = gpd.read_file(out)
    assert list(written.zone) == [r["zone"] for r in rows]
    res = run("zones", label_gpkg, "--grid", "3x3", "-o", out)
    _fails_well(res, f"{out}: already exists; pass --overwrite")
    assert run("zones", label_gpkg, "--grid", "3x3", "-o", out, "--overwrite").exit_code == 0


def test_bad_inputs_fail_well(tmp_path, label_gpkg, zones_utm):
    out = tmp_path / "s.gpkg"
    zones_file = tmp_path / "z.gpkg"
    zones_utm.to_file(zones_file)
    _fails_well(
        run("zones", tmp_path / "nope.gpkg", zones_file, "-o", out), "nope.gpkg: changes file not found", out=out
    )
    _fails_well(run("zones", label_gpkg, tmp_path / "nope.gpkg", "-o", out), "nope.gpkg: zones file not found", out=out)

    other = tmp_path / "other.gpkg"
    zones_utm.to_file(other, layer="districts")
    _fails_well(
        run("zones", other, zones_file, "-o", out),
        "other.gpkg: has no 'changes' layer (layers: districts); give the GeoPackage written by",
        out=out,
    )
    points = tmp_path / "points.gpkg"
    gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.Point(637100, 3486000)], crs=UTM).to_file(points)
    _fails_well(
        run("zones", label_gpkg, points, "-o", out), "points.gpkg: has no polygon layer (points (Point))", out=out
    )
    _fails_well(
        run("zones", label_gpkg, zones_file, "-o", out, "--field", "district"),
        "z.gpkg: has no field 'district' (fields: name, id); pass one of them to --field",
        out=out,
    )
    no_crs = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="crs"):
        gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.box(0, 0, 1, 1)]).to_file(no_crs)
    _fails_well(run("zones", label_gpkg, no_crs, "-o", out), "nocrs.gpkg: has no CRS; set the zones' CRS", out=out)
    text = tmp_path / "notes.gpkg"
    text.write_text("not a GeoPackage")
    _fails_well(run("zones", label_gpkg, text, "-o", out), "notes.gpkg: not a vector file GDAL can read", out=out)
    _fails_well(run("zones", label_gpkg, "-o", out), "give either a ZONES file or --grid ROWSxCOLS", out=out)
    _fails_well(run("zones", label_gpkg, "--grid", "3by3", "-o", out), "--grid 3by3: give ROWSxCOLS", out=out)
    _fails_well(
        run("zones", label_gpkg, zones_file, "-o", out, "--classes", "binary_change"),
        "is not a change class of table 'binary_change' (ids 1..1); pass the class table the changes were made with",
        out=out,
    )


def test_progress_json_stages_and_an_error_that_names_its_parameter(tmp_path, label_gpkg, zones_utm):
    zones_file = tmp_path / "z.gpkg"
    zones_utm.to_file(zones_file)
    out = tmp_path / "s.gpkg"
    res = run("zones", label_gpkg, zones_file, "-o", out, "--field", "name", "--progress", "json")
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stderr.splitlines()]
    steps = [(e["done"], e["total"]) for e in events if e.get("stage") == "zones"]
    assert steps == [(i, 4) for i in range(5)]
    assert {"message": f"{len(gpd.read_file(label_gpkg, layer='changes'))} change polygons, 4 zones"} in events
    assert res.stdout.splitlines()[0].startswith(f"{out}: 4 zones")  # the table still goes to stdout

    out.unlink()
    res = run("zones", label_gpkg, zones_file, "-o", out, "--field", "district", "--progress", "json")
    assert res.exit_code == 2
    event = json.loads(res.stderr.strip().splitlines()[-1])
    assert event["template"].endswith("(fields: name, id); pass one of them to {field}")
    assert event["params"] == {"field": "--field"} and event["error"].endswith("to --field")
    assert not out.exists()
