"""The batch report's sector tables and its zone table (``batch --zones``), from scenes made
the way a batch makes them, without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.transform import from_origin

from s2m_geo.batch import BatchSettings, SceneJob
from s2m_geo.batch.produce import produce_scene
from s2m_geo.batch.results import BatchResult, SceneOutcome
from s2m_geo.cli import cli
from s2m_geo.report import write_merged, write_reports
from s2m_geo.testing import BrightBandModel
from s2m_geo.zones.io import read_zones, zone_rows

UTM = "EPSG:32636"
SIZE, GSD = 200, 0.5  # 100 m scenes
ORIGINS = {"a": (637000.0, 3486500.0), "b": (637150.0, 3486500.0)}  # 50 m apart


def _scene(folder: Path, origin, blocks) -> tuple[Path, Path]:
    img = np.full((3, SIZE, SIZE), 60, np.uint8)
    for r0, r1, c0, c1 in blocks:
        img[:, r0:r1, c0:c1] = 220
    paths = []
    for name in ("pre", "post"):
        p = folder / f"{name}.tif"
        profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=3, dtype="uint8", crs=UTM)
        with rasterio.open(p, "w", transform=from_origin(*origin, GSD, GSD), **profile) as ds:
            ds.write(img)
        paths.append(p)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory):
    """Two scenes as a batch makes them: a holds a 20 x 25 m block in its north-east, b one in its
    south-west, clear of the third lines (which the meridian convergence tilts by ~3 px)."""
    root = tmp_path_factory.mktemp("batchzones")
    out = root / "out"
    out.mkdir()
    blocks = {"a": [(10, 50, 145, 195)], "b": [(150, 190, 5, 55)]}
    model = BrightBandModel(confidence=0.88, base=0.02)
    outcomes = []
    for sid, origin in ORIGINS.items():
        (root / sid).mkdir()
        pre, post = _scene(root / sid, origin, blocks[sid])
        job = SceneJob(sid, str(pre), str(post))
        marker = produce_scene(job, BatchSettings(str(out), "bright-band"), model)
        outcomes.append(SceneOutcome(job, "done", marker=marker))
    return out, outcomes, model.meta.class_table


def test_report_has_sector_tables_per_scene(batch_out):
    out, outcomes, table = batch_out
    result = BatchResult(out, outcomes, write_merged(out / "all_changes.gpkg", outcomes, table), [], 1.0, "bright-band")
    write_reports(result, table)
    md = (out / "report.md").read_text()
    rep = json.loads((out / "report.json").read_text())
    assert rep["zones"] is None and "## Zones" not in md
    a = next(s for s in rep["scenes"] if s["scene_id"] == "a")
    assert a["sectors"]["cells"]["northeast"] == {"building_destroyed": [1, pytest.approx(500 / 0.99966, rel=1e-4)]}
    assert a["sectors"]["compass"]["ne"]["building_destroyed"][0] == 1
    assert "#### Where: the 3×3 cells (true north)" in md
    header = "| class | northwest | north | northeast | west | center | east | southwest | south | southeast |"
    assert header in md
    assert "| destroyed building | – | – | 1 · 500 | – | – | – | – | – | – |" in md
    assert "| destroyed building | – | – | – | – | – | – | 1 · 500 | – | – |" in md  # scene b
    html = (out / "report.html").read_text()
    assert "<h4>Where: compass sectors around the scene centre (true bearings)</h4>" in html


def test_batch_zones_table_in_the_reports(batch_out, tmp_path):
    out, outcomes, table = batch_out
    x0, y1 = ORIGINS["a"]
    zones = gpd.GeoDataFrame(
        {"name": ["scene a", "across the gap", "far away"]},
        geometry=[
            shapely.box(x0, y1 - 100, x0 + 100, y1),  # a's footprint
            shapely.box(x0 + 50, y1 - 100, x0 + 200, y1),  # 50 m of a, the 50 m gap, 50 m of b
            shapely.box(x0 + 5000, y1, x0 + 5100, y1 + 100),
        ],
        crs=UTM,
    ).to_crs("EPSG:3857")  # zones in another CRS than the scenes
    path = tmp_path / "districts.gpkg"
    zones.to_file(path)
    merged = write_merged(out / "all_changes.gpkg", outcomes, table)
    result = BatchResult(out, outcomes, merged, [], 1.0, "bright-band")
    result.zones = zone_rows(merged, read_zones(path, "name"), table)
    write_reports(result, table)
    rep = json.loads((out / "report.json").read_text())
    got = {z["zone"]: z for z in rep["zones"]}
    assert [z["zone"] for z in rep["zones"]] == ["scene a", "across the gap", "far away"]
    assert got["scene a"]["status"] == "covered" and got["scene a"]["scenes"] == 1
    assert got["scene a"]["classes"]["building_destroyed"]["count"] == 1
    assert got["scene a"]["quadruples"][0]["direction"] == "northeast"
    gap = got["across the gap"]
    assert gap["status"] == "partly covered" and gap["scenes"] == 2
    assert gap["covered_fraction"] == pytest.approx(2 / 3, rel=1e-3)
    # a's block (cols 145-195: 72.5-97.5 m into a) is inside, b's (2.5-27.5 m into b) too
    assert gap["classes"]["building_destroyed"]["count"] == 2
    assert got["far away"]["status"] == "not covered" and got["far away"]["classes"] is None
    md = (out / "report.md").read_text()
    assert "## Zones" in md
    assert "| far away | not covered | 0 % | – | – | – | – | – | – | – | – |" in md
    assert "| across the gap | partly covered | 67 % | 2 | 1,000 | 2 · 1,000 | 0 | 0 | 0 | 0 | 0 |" in md
    html = (out / "report.html").read_text()
    assert "<h2>Zones</h2>" in html and "No imagery covers this zone" in html


def test_no_complete_scene_leaves_every_zone_not_covered(tmp_path, batch_out):
    _, _, table = batch_out
    path = tmp_path / "z.geojson"
    gpd.GeoDataFrame({"n": ["x"]}, geometry=[shapely.box(34.44, 31.50, 34.45, 31.51)], crs="EPSG:4326").to_file(path)
    rows = zone_rows(None, read_zones(path, None), table)
    assert [(r["zone"], r["status"], r["classes"]) for r in rows] == [("1", "not covered", None)]


def test_bad_zones_field_fails_before_any_scene_runs(tmp_path, batch_out):
    path = tmp_path / "z.gpkg"
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=UTM).to_file(path)
    manifest = tmp_path / "scenes.csv"
    manifest.write_text("scene_id,pre,post\ns,pre.tif,post.tif\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli, ["batch", str(manifest), "-o", str(out), "--zones", str(path), "--zones-field", "district"]
    )
    assert res.exit_code == 2, res.output
    assert res.stderr.strip().splitlines() == [
        f"s2m-geo: error: {path}: has no field 'district' (fields: name); pass one of them to --zones-field"
    ]
    assert not out.exists()
