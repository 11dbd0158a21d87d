"""'Detect changes (batch, S2M)' in real QGIS, with the real s2m-geo CLI and the tiny model:
two folders and a manifest, the merged layers loaded and counted against all_changes.gpkg
read with sqlite3, report.json's scene statuses, a broken pair that fails alone (a warning,
not a failed algorithm), refusals of neither/both inputs, errors in the dialog's words."""

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from harness import RecordingFeedback

ALG = "s2m:batch"


def _processing():
    import processing

    return processing


@pytest.fixture(scope="module")
def folders(scene, tmp_path_factory):
    """pre/ and post/ with the synthetic pair under two names (a.tif, b.tif)."""
    root = tmp_path_factory.mktemp("batch-in")
    for side in ("pre", "post"):
        (root / side).mkdir()
        for name in ("a", "b"):
            shutil.copy(scene[side], root / side / (name + ".tif"))
    return {"pre": str(root / "pre"), "post": str(root / "post")}


@pytest.fixture(scope="module")
def broken_folders(scene, tmp_path_factory):
    """One good pair (good.tif) and one whose pre is a text file named .tif (broken.tif)."""
    root = tmp_path_factory.mktemp("batch-broken")
    for side in ("pre", "post"):
        (root / side).mkdir()
        shutil.copy(scene[side], root / side / "good.tif")
        shutil.copy(scene[side], root / side / "broken.tif")
    (root / "pre" / "broken.tif").write_text("not a raster\n")
    return {"pre": str(root / "pre"), "post": str(root / "post")}


def _count(gpkg, table):
    """Rows of a GeoPackage table, read with sqlite3 (not through QGIS)."""
    with sqlite3.connect(gpkg) as db:
        return db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def _report(out):
    return json.loads((Path(out) / "report.json").read_text())


def _params(tiny_model, out, **kw):
    return {"MODEL": tiny_model, "WORKERS": 1, "OPEN_REPORT": False, "OUTPUT": str(out), **kw}


def test_algorithm_registered_with_its_parameters(provider):
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QUrl

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    assert alg is not None and alg.displayName() == "Detect changes (batch, S2M)"
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert list(params) == [
        "MANIFEST",
        "PRE_DIR",
        "POST_DIR",
        "PATTERN",
        "MODEL",
        "MIN_AREA",
        "WORKERS",
        "TILE_SIZE",
        "OVERLAP",
        "DEVICE",
        "OPEN_REPORT",
        "OUTPUT",
    ]
    optional = {n for n, p in params.items() if p.flags() & p.FlagOptional}
    assert optional == {"MANIFEST", "PRE_DIR", "POST_DIR", "PATTERN", "MODEL", "WORKERS", "TILE_SIZE", "OVERLAP"}
    advanced = {n for n, p in params.items() if p.flags() & p.FlagAdvanced}
    assert advanced == {"WORKERS", "TILE_SIZE", "OVERLAP", "DEVICE"}
    assert params["PATTERN"].defaultValue() == "*.tif" and params["OPEN_REPORT"].defaultValue() is True
    assert params["OUTPUT"].type() == "folderDestination"
    outputs = {o.name() for o in alg.outputDefinitions()}
    assert outputs >= {"OUTPUT", "REPORT", "CHANGES", "SCENES", "N_DONE", "N_FAILED"}
    assert "<code>s2m-geo batch MANIFEST -o FOLDER</code>" in alg.shortHelpString()
    url = QUrl(alg.helpUrl())
    assert url.isLocalFile() and url.fragment() == "s2m-geo-batch--many-scene-pairs"
    readme = Path(url.toLocalFile()).read_text(encoding="utf-8")
    assert "### `s2m-geo batch` — many scene pairs" in readme  # the anchor's heading
    assert not alg.icon().isNull()


def test_two_folders_loaded_and_counted(provider, project, cli, tiny_model, folders, tmp_path, monkeypatch):
    """A run from the dialog's point of view: layers loaded by name with their stored styles,
    progress in percent and words, the report opened."""
    from s2m_geo_qgis import batch_algorithm

    opened = []

    class Desktop:
        @staticmethod
        def openUrl(url):  # noqa: N802 - Qt's name
            opened.append(url.toLocalFile())
            return True

    monkeypatch.setattr(batch_algorithm, "can_open_urls", lambda: True)
    monkeypatch.setattr(batch_algorithm, "QDesktopServices", Desktop)
    fb = RecordingFeedback.make()
    out = tmp_path / "gaza run"
    params = _params(tiny_model, out, PRE_DIR=folders["pre"], POST_DIR=folders["post"], OPEN_REPORT=True)
    res = _processing().runAndLoadResults(ALG, params, feedback=fb)

    merged = str(out / "all_changes.gpkg")
    assert res["OUTPUT"] == str(out) and res["REPORT"] == str(out / "report.html")
    assert res["N_DONE"] == 2 and res["N_FAILED"] == 0
    assert res["CHANGES"] == merged + "|layername=changes"
    assert opened == [str(out / "report.html")]
    report = _report(out)
    assert [(s["scene_id"], s["status"]) for s in report["scenes"]] == [("a", "done"), ("b", "done")]
    assert report["exit_code"] == 0 and report["merged"] == "all_changes.gpkg"

    command = [m for kind, m in fb.log if kind == "command"]
    assert command and f"batch -o '{out}' --pre-dir {folders['pre']} --post-dir {folders['post']}" in command[0]
    assert "--pattern '*.tif'" in command[0] and command[0].endswith("--progress json")
    text = fb.text()
    assert "2 scene pairs to run" in text and "Scene 2 of 2 finished" in text
    assert "No stored style" not in text and not [m for kind, m in fb.log if kind == "warning"]
    upto = fb.progress[: fb.progress.index(100) + 1]
    assert upto == sorted(upto) and len(set(upto)) > 3

    layers = {l.name(): l for l in project.mapLayers().values()}
    assert {"changes — batch gaza run", "scenes — batch gaza run"} <= set(layers), list(layers)
    changes, scenes = layers["changes — batch gaza run"], layers["scenes — batch gaza run"]
    assert changes.source() == merged + "|layername=changes"
    assert changes.featureCount() == _count(merged, "changes") == report["totals"]["changes"]
    assert changes.featureCount() == sum(_count(str(out / f"{s}.gpkg"), "changes") for s in "ab")
    assert scenes.featureCount() == _count(merged, "scenes") == 2
    assert changes.renderer().type() == "categorizedSymbol"  # the style the CLI stored
    del changes, scenes, layers


def test_a_manifest(provider, cli, tiny_model, folders, tmp_path, feedback):
    manifest = tmp_path / "my scenes.csv"
    pre, post = Path(folders["pre"]), Path(folders["post"])
    manifest.write_text(f"scene_id,pre,post,pre_date\nnorth,{pre / 'a.tif'},{post / 'a.tif'},2023-09-30\n")
    out = tmp_path / "out"
    res = _processing().run(ALG, _params(tiny_model, out, MANIFEST=str(manifest)), feedback=feedback)
    assert res["N_DONE"] == 1 and res["N_FAILED"] == 0
    report = _report(out)
    assert report["source"] == str(manifest)
    assert [(s["scene_id"], s["status"], s["pre_date"]) for s in report["scenes"]] == [("north", "done", "2023-09-30")]
    command = [m for kind, m in feedback.log if kind == "command"][0]
    assert command.endswith(f"--progress json -- '{manifest}'") and "--pre-dir" not in command
    assert _count(res["CHANGES"].split("|")[0], "scenes") == 1


def test_a_broken_pair_fails_alone(provider, project, cli, tiny_model, broken_folders, tmp_path):
    """Exit 3 (some scenes failed) is a result: the algorithm succeeds, loads the merged
    layers and warns with the failed scene and its error."""
    fb = RecordingFeedback.make()
    out = tmp_path / "partly"
    params = _params(tiny_model, out, PRE_DIR=broken_folders["pre"], POST_DIR=broken_folders["post"])
    del params["OPEN_REPORT"]  # the default, True: no screen here, so it says where the report is
    res = _processing().runAndLoadResults(ALG, params, feedback=fb)
    assert res["N_DONE"] == 1 and res["N_FAILED"] == 1
    statuses = {s["scene_id"]: s["status"] for s in _report(out)["scenes"]}
    assert statuses == {"broken": "failed", "good": "done"}
    warnings = [m for kind, m in fb.log if kind == "warning"]
    assert len(warnings) == 1 and warnings[0].startswith("1 of 2 scenes failed")
    assert re.search(r"broken: .*broken\.tif: not a raster GDAL can read", warnings[0]), warnings[0]
    assert f"No screen to open the report on: {out / 'report.html'}" in fb.text()
    layers = {l.name(): l for l in project.mapLayers().values()}
    assert layers["scenes — batch partly"].featureCount() == 1
    assert layers["changes — batch partly"].featureCount() == _count(str(out / "all_changes.gpkg"), "changes")
    del layers


def test_every_scene_failing_is_a_failure(provider, cli, tiny_model, broken_folders, tmp_path, feedback):
    from qgis.core import QgsProcessingException

    params = _params(tiny_model, tmp_path / "none", PRE_DIR=broken_folders["pre"], POST_DIR=broken_folders["post"])
    params["PATTERN"] = "broken.*"
    with pytest.raises(QgsProcessingException, match=r"Every scene failed:\n  broken: .*not a raster"):
        _processing().run(ALG, params, feedback=feedback)


def test_neither_or_both_inputs_are_refused(provider, cli, folders, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingException

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    manifest, pre_label, post_label = (
        alg.parameterDefinition(p).description() for p in ("MANIFEST", "PRE_DIR", "POST_DIR")
    )
    csv = tmp_path / "m.csv"
    csv.write_text("scene_id,pre,post\n")
    out = tmp_path / "never"
    for params, needle in (
        ({}, f'No scenes: give a "{manifest}" or the two folders ("{pre_label}", "{post_label}").'),
        ({"MANIFEST": str(csv), "PRE_DIR": folders["pre"]}, "not both."),
        ({"MANIFEST": str(csv), "PRE_DIR": folders["pre"], "POST_DIR": folders["post"]}, "not both."),
        ({"PRE_DIR": folders["pre"]}, f'"{pre_label}" and "{post_label}" go together: give both folders'),
    ):
        with pytest.raises(QgsProcessingException, match=re.escape(needle)):
            _processing().run(ALG, {**params, "OUTPUT": str(out)})
    assert not out.exists()


def test_cli_errors_name_the_dialog_parameters(provider, cli, tiny_model, folders, tmp_path, feedback):
    from qgis.core import QgsApplication, QgsProcessingException

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    pattern = alg.parameterDefinition("PATTERN").description()
    params = _params(tiny_model, tmp_path / "out", PRE_DIR=folders["pre"], POST_DIR=folders["post"], PATTERN="*.png")
    with pytest.raises(QgsProcessingException) as exc:
        _processing().run(ALG, params, feedback=feedback)
    msg = str(exc.value)
    assert msg.startswith("s2m-geo failed (exit code 2)")
    assert (
        "no file matching '*.png' has a partner of the same name" in msg and f'check the folders and "{pattern}"' in msg
    )
    assert "--pattern" not in msg and "Traceback" not in msg
