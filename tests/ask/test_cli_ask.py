"""``s2m-geo ask`` on a changes layer made from the synthetic scene's labels.

Expected counts, areas, directions and distances are computed here from the label raster
itself (scipy's connected components, pixel centroids on the UTM grid), not from the layer."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner
from scipy import ndimage

from s2m_geo.cli import cli
from s2m_geo.testing import assert_fails_well as _fails_well
from s2m_geo.testing import cli_command
from s2m_geo.vector.output import CHANGE_COLUMNS

GSD = 0.5
BANDS = ("north", "center", "south"), ("west", "center", "east")


def run(*args):
    return CliRunner().invoke(cli, ["ask", *map(str, args)])


def ask_json(changes, question, *extra):
    res = run(changes, question, "--json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def regions(label):
    """Per connected region of the label (4-connected, per class): class id, pixels, the
    direction by the 3x3 rule on the grid, whether its centroid lies within 1 % of a third
    line (where grid north and true north may disagree), and its distance from the centre."""
    data, profile = label
    h, w = data.shape
    out = []
    for cid in range(1, 7):
        comp, n = ndimage.label(data == cid)
        for k in range(1, n + 1):
            rr, cc = np.nonzero(comp == k)
            cy, cx = rr.mean() + 0.5, cc.mean() + 0.5
            fy, fx = cy / h, cx / w
            band = lambda f: 0 if 3 * f < 1 else (1 if 3 * f < 2 else 2)  # noqa: E731
            ns, ew = BANDS[0][band(fy)], BANDS[1][band(fx)]
            direction = ns if ew == "center" else (ew if ns == "center" else ns + ew)
            near_line = min(abs(3 * f - j) for f in (fy, fx) for j in (1, 2)) < 0.03
            distance = GSD * float(np.hypot(cy - h / 2, cx - w / 2))
            out.append(dict(cid=cid, px=len(rr), direction=direction, near_line=near_line, distance=distance))
    return out


def test_counts_and_areas_per_class_match_the_label(changes_gpkg, regions, label):
    data, _ = label
    for question, cid in [
        ("how many destroyed buildings?", 1),
        ("how many houses were built?", 2),
        ("how many new refugee camps are there?", 3),
        ("how many destroyed agricultural fields?", 4),
        ("how many new greenhouses", 6),
    ]:
        expected = [r for r in regions if r["cid"] == cid]
        got = ask_json(changes_gpkg, question)
        assert got["count"] == len(expected), question
        assert got["area"] == pytest.approx(GSD * GSD * int((data == cid).sum()), rel=2e-3), question
        area = ask_json(changes_gpkg, question.replace("how many", "how much area of"))
        assert area["intent"] == "area" and area["area"] == pytest.approx(got["area"])
    assert len(regions) > 10 and {r["cid"] for r in regions} == {1, 2, 4, 6}


def test_count_sentence_reads_like_s2m(changes_gpkg, regions, label):
    data, _ = label
    n = sum(r["cid"] == 1 for r in regions)
    area = GSD * GSD * int((data == 1).sum())
    res = run(changes_gpkg, "How many destroyed buildings are there?")
    assert res.exit_code == 0
    said = re.fullmatch(rf"There are {n} destroyed buildings, ([\d,]+) m² in all\.\n", res.stdout)
    assert said and float(said[1].replace(",", "")) == pytest.approx(area, abs=0.001 * area + 0.5)


def test_direction_filter_follows_the_3x3_rule(changes_gpkg, regions):
    checked = 0
    for direction in ("south", "southeast", "west", "center", "northwest", "north"):
        for word, cid in (("changes", None), ("destroyed buildings", 1), ("new greenhouses", 6)):
            got = ask_json(changes_gpkg, f"how many {word} are in the {direction}?")
            mine = [r for r in regions if cid in (None, r["cid"])]
            sure = sum(r["direction"] == direction and not r["near_line"] for r in mine)
            maybe = sum(r["near_line"] for r in mine)
            assert sure <= got["count"] <= sure + maybe, (word, direction)
            assert got["directions"] == [direction]
            checked += got["count"] > 0
    assert checked >= 5


def test_where_adds_up_to_the_count(changes_gpkg, regions):
    got = ask_json(changes_gpkg, "where are the destroyed buildings?")
    mine = [r for r in regions if r["cid"] == 1]
    assert sum(d["count"] for d in got["by_direction"]) == got["count"] == len(mine)
    counts = [d["count"] for d in got["by_direction"]]
    assert counts == sorted(counts, reverse=True)
    first = got["by_direction"][0]
    assert got["answer"].startswith(f"There are {len(mine)} destroyed buildings: {first['count']} in the ")


def test_distance_and_area_limits(changes_gpkg, regions):
    for metres in (40, 60, 100, 130):
        got = ask_json(changes_gpkg, f"how many changes within {metres} m of the centre?")
        sure = sum(r["distance"] <= metres - 1 for r in regions)
        maybe = sum(abs(r["distance"] - metres) < 1 for r in regions)
        assert sure <= got["count"] <= sure + maybe, metres
    km = ask_json(changes_gpkg, "how many changes within 0.1 km of the centre?")
    assert km["count"] == ask_json(changes_gpkg, "how many changes within 100 m of the centre?")["count"]
    for m2 in (100, 500, 650):
        got = ask_json(changes_gpkg, f"how many changes larger than {m2} m2?")
        assert got["count"] == sum(r["px"] * GSD * GSD > m2 for r in regions), m2
    ha = ask_json(changes_gpkg, "how many changes larger than 0.05 ha?")
    assert ha["count"] == sum(r["px"] * GSD * GSD > 500 for r in regions)


def test_largest_lists_the_biggest_regions(changes_gpkg, regions):
    got = ask_json(changes_gpkg, "the 3 largest destroyed buildings")
    expected = sorted((r["px"] * GSD * GSD for r in regions if r["cid"] == 1), reverse=True)[:3]
    assert [m["area_m2"] for m in got["matches"]] == pytest.approx(expected, rel=2e-3)
    assert got["count"] == 3 and got["answer"].startswith("The 3 largest destroyed buildings are ")
    assert all(m["category"] == "building" and m["change_type"] == "destroyed" for m in got["matches"])
    layer = pyogrio.read_dataframe(changes_gpkg, layer="changes", fid_as_index=True)
    for m in got["matches"]:  # "fid": the GeoPackage feature id; "row": the position in the layer
        assert layer.loc[m["fid"]].area_m2 == m["area_m2"] == layer.iloc[m["row"]].area_m2
    res = run(changes_gpkg, "which is the largest destroyed building?")
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("The largest destroyed building is ")
    said = re.search(r"is ([\d,]+) m², in the \w+ region, \d+ m from the centre\.$", lines[0])
    assert said and float(said[1].replace(",", "")) == pytest.approx(expected[0], abs=0.001 * expected[0] + 0.5)
    fid = int(lines[1].split(":")[0])  # the GeoPackage feature id: the polygon in QGIS
    feature = pyogrio.read_dataframe(changes_gpkg, layer="changes", fid_as_index=True).loc[fid]
    assert feature.area_m2 == pytest.approx(expected[0], rel=2e-3)


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".fgb", ".parquet"])
def test_output_holds_the_matching_polygons_with_the_same_schema(changes_gpkg, regions, tmp_path, suffix):
    out = tmp_path / f"answer{suffix}"
    res = run(changes_gpkg, "which destroyed buildings are larger than 500 m2?", "-o", out)
    assert res.exit_code == 0, res.output
    expected = sum(r["cid"] == 1 and r["px"] * GSD * GSD > 500 for r in regions)
    assert f"{out}: {expected} polygon(s) written" in res.stdout
    written = gpd.read_parquet(out) if suffix == ".parquet" else gpd.read_file(out, layer=0)
    assert list(written.columns) == CHANGE_COLUMNS + ["geometry"]
    assert len(written) == expected and (written.class_id == 1).all() and (written.area_m2 > 500).all()
    assert written.crs.to_epsg() == 32636
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # one file, no temporary left
    if suffix == ".gpkg":
        assert dict(pyogrio.list_layers(out)) == {"changes": "Polygon", "layer_styles": None}
        with sqlite3.connect(out) as con:
            assert con.execute("SELECT f_table_name FROM layer_styles").fetchall() == [("changes",)]


def test_an_empty_answer_still_writes_a_polygon_layer(changes_gpkg, tmp_path):
    out = tmp_path / "none.gpkg"
    res = run(changes_gpkg, "how many destroyed buildings larger than 1 km2", "-o", out)
    assert res.exit_code == 0 and res.stdout.startswith("There are no destroyed buildings larger than 1 km²")
    assert dict(pyogrio.list_layers(out))["changes"] == "Polygon"
    assert len(gpd.read_file(out, layer="changes")) == 0


@pytest.mark.parametrize("suffix", [".geojson", ".fgb", ".parquet"])
def test_every_vector_format_can_be_asked(changes_gpkg, changes_frame, tmp_path, suffix):
    path = tmp_path / f"changes{suffix}"
    if suffix == ".parquet":
        changes_frame.to_parquet(path)
    else:
        changes_frame.to_file(path)
    for question in ("how many destroyed buildings in the south", "how much area of new greenhouses"):
        a, b = ask_json(path, question), ask_json(changes_gpkg, question)
        assert (a["count"], a["area"]) == (b["count"], pytest.approx(b["area"]))


def test_existing_output_needs_overwrite(changes_gpkg, tmp_path):
    out = tmp_path / "a.gpkg"
    out.write_bytes(b"mine")
    res = run(changes_gpkg, "how many changes", "-o", out)
    _fails_well(res, f"{out}: already exists; pass --overwrite or choose another name")
    assert out.read_bytes() == b"mine"
    assert run(changes_gpkg, "how many changes", "-o", out, "--overwrite").exit_code == 0
    assert len(gpd.read_file(out, layer="changes")) == len(gpd.read_file(changes_gpkg, layer="changes"))


def test_bad_inputs_fail_well(changes_gpkg, tmp_path):
    out = tmp_path / "out.gpkg"
    _fails_well(
        run(tmp_path / "nope.gpkg", "how many changes", "-o", out), "nope.gpkg: changes file not found", out=out
    )
    _fails_well(
        run(changes_gpkg, "how many tanks?", "-o", out),
        "\"how many tanks?\": unknown word(s) 'tanks'; use the words ask knows",
        "house(s)",
        out=out,
    )
    other = tmp_path / "other.gpkg"
    gpd.read_file(changes_gpkg, layer="scenes").to_file(other, layer="footprints")
    _fails_well(run(other, "how many changes", "-o", out), f"{other}: no 'changes' layer (it has: footprints)", out=out)
    notes = tmp_path / "notes.geojson"
    notes.write_text("not json")
    _fails_well(run(notes, "how many changes", "-o", out), f"{notes}: not a vector file that can be read", out=out)
    scenes = tmp_path / "scenes.geojson"
    gpd.read_file(changes_gpkg, layer="scenes").to_file(scenes)
    _fails_well(run(scenes, "how many changes"), f"{scenes}: not a changes layer (no field category")
    _fails_well(run(tmp_path / "c.shp", "how many changes"), "unknown vector format '.shp'")
    _fails_well(
        run(changes_gpkg, "how many changed areas", "--classes", "binary_change", "-o", out),
        "holds classes the class table 'binary_change' does not have (destroyed agricultural land, destroyed building",
        "pass the table it was made with as --classes",
        out=out,
    )
    res = run(changes_gpkg, "how many changes", "-o", changes_gpkg, "--overwrite")
    _fails_well(res, "--output is the changes input")


@pytest.mark.integration
def test_a_question_it_cannot_read_exits_2_with_one_line(changes_gpkg):
    proc = subprocess.run(
        cli_command("ask", changes_gpkg, "how many new things are there?"), capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        "s2m-geo: error: \"how many new things are there?\": 'new' can mean newly built or newly "
        "established here; say which (e.g. 'newly built')\n"
    )
