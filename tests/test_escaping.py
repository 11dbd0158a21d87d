"""Whatever a user or a model file names is escaped wherever it is written (s2m_geo.escaping):
QGIS styles (the GeoPackage's layer_styles, the raster's .qml), report.html, report.md."""

from __future__ import annotations

import re
import sqlite3
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rasterio.transform import from_origin

from s2m_geo.batch.manifest import SceneJob
from s2m_geo.batch.results import BatchResult, SceneOutcome
from s2m_geo.classes import class_table_from_dict, load_class_table
from s2m_geo.escaping import line_fault, md_text, xml_attr
from s2m_geo.predict.style import raster_qml
from s2m_geo.report.render import render_html, render_markdown, report_data
from s2m_geo.vector.output import changes_qml, scenes_aliases, scenes_qml

#: Text a manifest, a class table or a model header may hold (one line, no control characters).
HOSTILE = "a\"<b>&'|x *_`[y](z)# ~ <script>alert(1)</script> &amp; \\ é"
#: ... and text of paths and error messages, which may hold anything.
HOSTILE_MULTILINE = HOSTILE + "\nsecond | line\r\n|---|"


def _table(text: str):
    d = load_class_table().to_dict()
    d["name"] = "t" + text
    d["classes"][1].update(name="n" + text, category="c" + text, change_type="ct" + text)
    d["classes"][2].update(category=text)
    d.pop("synonyms", None)  # words of the shipped table's categories
    return class_table_from_dict(d, "hostile.yaml")


@pytest.mark.parametrize("text", [HOSTILE, "\u00a0é中 ᚠ 🛰", "'\"'", "&#10;&lt;"])
def test_xml_attributes_read_back_exactly(text):
    assert ET.fromstring(f"<x v={xml_attr(text)}/>").get("v") == text
    assert ET.fromstring(f"<x v={xml_attr(text + chr(10) + chr(9))}/>").get("v") == text + "\n\t"


def test_one_line_names_refuse_control_characters_and_separators():
    assert line_fault(HOSTILE) is None and line_fault("scène 中 🛰") is None
    for ch in ("\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\ufffe", "\ud800", "\ufdd0"):
        assert line_fault(f"a{ch}b") == ch


def test_qgis_styles_of_a_hostile_class_table_are_valid_xml_and_read_back(tmp_path):
    table = _table(HOSTILE)
    c1, c2 = table[1], table[2]
    cats = ET.fromstring(changes_qml(table)).findall(".//category")
    assert [c.get("label") for c in cats] == [c.label for c in table.change_classes]
    assert cats[0].get("label") == f"ct{HOSTILE} c{HOSTILE}" and cats[1].get("label").endswith(HOSTILE)
    aliases = {a.get("field"): a.get("name") for a in ET.fromstring(scenes_qml(table)).iter("alias")}
    assert aliases == scenes_aliases(table) and f"n_{c1.name}" in aliases
    entries = ET.fromstring(raster_qml(table)).findall(".//paletteEntry")
    assert entries[1].get("label") == c1.label and entries[2].get("label") == c2.label

    # as written into a GeoPackage's layer_styles by predict
    from s2m_geo.describe.geo import GeoFrame
    from s2m_geo.vector.output import ChangeCollector, write_vectors

    frame = GeoFrame.from_grid("EPSG:32636", from_origin(637000.0, 3486500.0, 0.5, 0.5), 64, 64)
    col = ChangeCollector(frame, table, HOSTILE, HOSTILE)
    out = tmp_path / "c.gpkg"
    write_vectors(out, col, HOSTILE, HOSTILE)
    with sqlite3.connect(out) as con:
        styles = dict(con.execute("SELECT f_table_name, styleQML FROM layer_styles").fetchall())
    labels = [c.get("label") for c in ET.fromstring(styles["changes"]).findall(".//category")]
    assert labels == [c.label for c in table.change_classes]
    assert {a.get("field"): a.get("name") for a in ET.fromstring(styles["scenes"]).iter("alias")} == aliases


def _result(tmp_path: Path, text: str, multiline: str, table) -> BatchResult:
    cls = {c.name: {"count": 2, "area_m2": 50.0} for c in table.change_classes[:2]}
    summary = {
        "changes": 4,
        "changed_area_m2": 100.0,
        "classes": cls,
        "sentences": [f"There are {text}.", f"And {multiline}."],
        "description": text,
        "width": 64,
        "height": 64,
        "sectors": {"cells": {"center": {c: [2, 50.0] for c in cls}}, "compass": {"n": {c: [2, 50.0] for c in cls}}},
    }
    done = SceneJob(text, multiline, multiline, text, text)
    failed = SceneJob(text + "2", multiline, "", None, text)
    zone = {
        "zone": text,
        "status": "covered",
        "covered_fraction": 1.0,
        "changes": 4,
        "changed_area_m2": 100.0,
        "classes": cls,
        "description": multiline,
    }
    return BatchResult(
        out_dir=tmp_path / text.replace("/", "_"),
        outcomes=[
            SceneOutcome(done, "done", marker={"summary": summary}),
            SceneOutcome(failed, "failed", error=multiline),
        ],
        merged=tmp_path / "all_changes.gpkg",
        reports=[],
        seconds=1.0,
        model=text,
        source=multiline,
        zones=[zone],
    )


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.attrs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(k for k, _ in attrs)))
        self.attrs += [v or "" for _, v in attrs]

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    p.close()
    return p


def test_report_html_escapes_every_text_from_manifests_class_tables_and_models(tmp_path):
    plain_table, table = _table("plain"), _table(HOSTILE)
    plain = _parse(render_html(report_data(_result(tmp_path, "plain", "plain", plain_table), plain_table), plain_table))
    hostile = _parse(render_html(report_data(_result(tmp_path, HOSTILE, HOSTILE_MULTILINE, table), table), table))
    # the same elements with the same attributes: no text became markup
    assert hostile.tags == plain.tags
    text = "".join(hostile.text)
    for needle in (HOSTILE, HOSTILE_MULTILINE, f"ct{HOSTILE} c{HOSTILE}", f"There are {HOSTILE}."):
        assert needle in text
    assert f"{HOSTILE} quicklook" in hostile.attrs  # the quicklook's alt text reads back too


def _md_lines(md: str) -> list[str]:
    return md.split("\n")


def test_report_markdown_tables_hold_whatever_a_name_says(tmp_path):
    plain_table, table = _table("plain"), _table(HOSTILE)
    plain = render_markdown(report_data(_result(tmp_path, "plain", "plain", plain_table), plain_table), plain_table)
    md = render_markdown(report_data(_result(tmp_path, HOSTILE, HOSTILE_MULTILINE, table), table), table)
    plain_lines, lines = _md_lines(plain), _md_lines(md)
    assert len(lines) == len(plain_lines)  # no newline broke a row

    def cells(line: str) -> int:
        return len(re.findall(r"(?<!\\)\|", line.replace("\\\\", "")))

    # every row has as many cells as in the plain report, and no markup was opened
    assert [cells(x) for x in lines] == [cells(x) for x in plain_lines]
    bare = md.replace("\\\\", "")  # no '<' (HTML), '[' (a link) or '`' (code) left unescaped
    assert re.findall(r"(?<!\\)[<\[`]", bare) == re.findall(r"(?<!\\)[<\[`]", plain.replace("\\\\", ""))
    unescaped = re.sub(r"\\(.)", r"\1", md)
    assert HOSTILE in unescaped and " ".join(HOSTILE_MULTILINE.split()) in unescaped
    assert md_text("a|b\nc") == "a\\|b c"


@pytest.mark.integration
def test_a_batch_through_the_command_line_escapes_what_its_model_and_manifest_name(tmp_path):
    """Rule 10 end to end: a model whose class table holds markup and a manifest whose scene
    ids do, and the longest id allowed in bytes: the GeoPackage's styles are valid XML whose
    labels read back, report.html has no element the names made; one byte more is refused."""
    import subprocess

    from s2m_geo.batch.layout import MAX_SCENE_ID_BYTES
    from s2m_geo.synthetic import SceneSpec, write_scene
    from s2m_geo.testing import cli_command, tiny_model

    table = _table(HOSTILE)
    model = tiny_model(tmp_path / "m.safetensors", table=table)
    write_scene(tmp_path / "in", SceneSpec(size=128, seed=2))
    markup = "Tom & Jerry's [x](y) #1 é"  # a scene id: no '/', '<', '"' (it becomes file names)
    date = "<script>alert(1)</script>"  # dates are free text
    longest = "é" * (MAX_SCENE_ID_BYTES // 2) + "x" * (MAX_SCENE_ID_BYTES % 2)
    rows = "".join(f"{i},pre.tif,post.tif,{date},2024\n" for i in (markup, longest))
    manifest = tmp_path / "in" / "scenes.csv"
    manifest.write_text("scene_id,pre,post,pre_date,post_date\n" + rows, encoding="utf-8")
    out = tmp_path / "out"
    cmd = cli_command("batch", manifest, "-o", out, "--model", model, "--workers", "1", "--progress", "none")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / f"{longest}_quicklook.png").exists() and (out / f"{markup}.gpkg").exists()
    with sqlite3.connect(out / f"{markup}.gpkg") as con:
        styles = dict(con.execute("SELECT f_table_name, styleQML FROM layer_styles").fetchall())
    labels = [c.get("label") for c in ET.fromstring(styles["changes"]).findall(".//category")]
    assert labels == [c.label for c in table.change_classes] and f"ct{HOSTILE} c{HOSTILE}" in labels
    html = _parse((out / "report.html").read_text(encoding="utf-8"))
    assert not any(tag in ("script", "b") for tag, _ in html.tags)
    text = "".join(html.text)
    assert markup in text and date in text and f"ct{HOSTILE} c{HOSTILE}" in text
    manifest.write_text(f"scene_id,pre,post\n{longest}x,pre.tif,post.tif\n", encoding="utf-8")
    proc = subprocess.run([*cmd[:6], tmp_path / "out2", *cmd[7:]], capture_output=True, text=True)
    assert proc.returncode == 2 and f"is {MAX_SCENE_ID_BYTES + 1} bytes long in UTF-8" in proc.stderr, proc.stderr
