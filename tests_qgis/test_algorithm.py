"""The Processing algorithm in real QGIS: parameters, processing.run, loading, cancel, errors."""

import os

import pytest
from harness import RecordingFeedback, layer_aliases

ALG = "s2m:detect_changes"


def _processing():
    import processing

    return processing


def test_algorithm_registered_with_its_parameters(provider):
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QUrl

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    assert alg is not None and alg.displayName() == "Detect changes (S2M)"
    assert provider.name() == "S2M"
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert list(params) == [
        "PRE",
        "POST",
        "MODEL",
        "TILE_SIZE",
        "OVERLAP",
        "DEVICE",
        "MIN_AREA",
        "OUTPUT",
        "OUTPUT_RASTER",
    ]
    optional = {n for n, p in params.items() if p.flags() & p.FlagOptional}
    assert optional == {"MODEL", "TILE_SIZE", "OVERLAP", "OUTPUT_RASTER"}
    assert params["DEVICE"].options() == ["auto", "cpu", "cuda", "mps"]  # s2m-geo's --device choices
    advanced = {n for n, p in params.items() if p.flags() & p.FlagAdvanced}
    assert advanced == {"TILE_SIZE", "OVERLAP", "DEVICE"}
    assert params["OUTPUT"].defaultFileExtension() == "gpkg"
    assert alg.svgIconPath().endswith("/s2m_geo_qgis/icon.svg") and os.path.isfile(alg.svgIconPath())
    assert provider.svgIconPath() == alg.svgIconPath()
    assert "<" not in alg.shortHelpString()  # qgis_process prints it as it is
    help_url = QUrl(alg.helpUrl())  # the README, offline
    assert help_url.isLocalFile() and os.path.isfile(help_url.toLocalFile()), alg.helpUrl()
    assert help_url.toLocalFile().endswith("README.md") and help_url.fragment() == "qgis-plugin"
    assert {o.name() for o in alg.outputDefinitions()} >= {"OUTPUT", "OUTPUT_RASTER", "SCENES", "N_CHANGES"}


def test_arguments_passed_to_the_cli(provider, fake_cli, tmp_path, scene, feedback):
    """Empty model/tile/overlap are left to the CLI (its default model); the enum maps to names."""
    out = tmp_path / "c.gpkg"
    _processing().run(
        ALG, {"PRE": scene["pre"], "POST": scene["post"], "OUTPUT": str(out), "DEVICE": 1}, feedback=feedback
    )
    argv = fake_cli.record()["argv"]
    assert argv[:5] == ["predict", scene["pre"], scene["post"], "-o", str(out)]
    assert "--model" not in argv and "--tile-size" not in argv and "--raster" not in argv
    assert argv[argv.index("--device") + 1] == "cpu"
    assert argv[argv.index("--progress") + 1] == "json"
    assert feedback.progress[-1] == 100
    _processing().run(
        ALG,
        {
            "PRE": scene["pre"],
            "POST": scene["post"],
            "OUTPUT": str(out),
            "MODEL": __file__,
            "TILE_SIZE": 128,
            "OVERLAP": 0,
            "MIN_AREA": 12.5,
            "OUTPUT_RASTER": str(tmp_path / "c.tif"),
        },
        feedback=feedback,
    )
    argv = fake_cli.record()["argv"]
    for flag, value in (
        ("--model", __file__),
        ("--tile-size", "128"),
        ("--overlap", "0"),
        ("--min-area", "12.5"),
        ("--raster", str(tmp_path / "c.tif")),
    ):
        assert argv[argv.index(flag) + 1] == value
    res = _processing().run(ALG, {"PRE": scene["pre"], "POST": scene["post"], "OUTPUT": "TEMPORARY_OUTPUT"})
    argv = fake_cli.record()["argv"]
    assert argv[argv.index("-o") + 1] == res["OUTPUT"] and res["OUTPUT"].endswith(".gpkg")  # a file


def test_same_scene_as_pre_and_post_is_refused(provider, fake_cli, tmp_path, scene, feedback):
    """Pre = post (the dialog's default: the active layer in both) is refused before s2m-geo
    runs, by checkParameterValues (dialog, processing.run) and by the run itself (batch)."""
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException

    out = tmp_path / "same.gpkg"
    params = {"PRE": scene["pre"], "POST": scene["pre"], "OUTPUT": str(out)}
    with pytest.raises(QgsProcessingException) as exc:
        _processing().run(ALG, params, feedback=feedback)
    assert '"Pre scene (before)" and "Post scene (after)" are the same file' in str(exc.value)
    assert scene["pre"] in str(exc.value)
    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    ok, msg = alg.checkParameterValues(params, QgsProcessingContext())
    assert not ok and "nothing to compare" in msg
    results, ok = alg.run(params, QgsProcessingContext(), feedback)  # no check first, as batch mode
    assert not ok and any("nothing to compare" in m for kind, m in feedback.log if kind == "error")
    assert not fake_cli.log_path.exists() and not out.exists()  # s2m-geo never ran
    ok, msg = alg.checkParameterValues(dict(params, POST=scene["post"]), QgsProcessingContext())
    assert ok, msg


def test_cli_warning_reaches_the_log_as_a_warning(provider, fake_cli, tmp_path, scene, feedback, monkeypatch):
    monkeypatch.setenv("FAKE_S2M_MODE", "warn")
    _processing().run(
        ALG, {"PRE": scene["pre"], "POST": scene["post"], "OUTPUT": str(tmp_path / "c.gpkg")}, feedback=feedback
    )
    assert [m for kind, m in feedback.log if kind == "warning"] == ["post overlaps pre by only 40%"]
    other = RecordingFeedback.make()
    monkeypatch.setenv("FAKE_S2M_MODE", "ok")
    _processing().run(
        ALG, {"PRE": scene["pre"], "POST": scene["post"], "OUTPUT": str(tmp_path / "two.gpkg")}, feedback=other
    )
    assert not [m for kind, m in other.log if kind == "warning"]


def test_plugin_setting_wins_over_the_environment(provider, fake_cli, clean_settings, tmp_path, scene, monkeypatch):
    from s2m_geo_qgis import runner

    monkeypatch.setenv("S2M_GEO_EXECUTABLE", "/nonexistent/s2m-geo")
    clean_settings.setValue(runner.SETTINGS_KEY, fake_cli.path)
    res = _processing().run(ALG, {"PRE": scene["pre"], "POST": scene["post"], "OUTPUT": str(tmp_path / "c.gpkg")})
    assert res["OUTPUT"] == str(tmp_path / "c.gpkg") and fake_cli.log_path.exists()


def test_executable_setting_in_processing_options(provider, fake_cli, clean_settings, monkeypatch):
    """Options > Processing > Providers > S2M writes the QgsSettings key the algorithm reads."""
    from processing.core.ProcessingConfig import ProcessingConfig
    from qgis.core import QgsSettings
    from s2m_geo_qgis import runner
    from s2m_geo_qgis.base import find_executable

    monkeypatch.delenv("S2M_GEO_EXECUTABLE")
    assert runner.SETTING_NAME in ProcessingConfig.settings
    ProcessingConfig.setSettingValue(runner.SETTING_NAME, fake_cli.path)
    assert QgsSettings().value(runner.SETTINGS_KEY) == fake_cli.path
    assert find_executable() == fake_cli.path


def test_missing_executable_gives_the_install_command(provider, clean_settings, tmp_path, scene, monkeypatch, feedback):
    from qgis.core import QgsApplication, QgsProcessingException

    monkeypatch.delenv("S2M_GEO_EXECUTABLE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "c.gpkg"
    with pytest.raises(QgsProcessingException) as exc:
        _processing().run(ALG, {"PRE": scene["pre"], "POST": scene["post"], "OUTPUT": str(out)}, feedback=feedback)
    msg = str(exc.value)
    assert "s2m-geo command line was not found" in msg and "pip install s2m-geo" in msg
    assert "Traceback" not in msg and "Traceback" not in feedback.text()
    assert not out.exists()
    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    ok, why = alg.canExecute()  # the toolbox shows this instead of opening the dialog
    assert not ok and "pip install s2m-geo" in why


def test_cli_failure_is_reported_without_traceback(provider, fake_cli, tmp_path, scene, feedback, monkeypatch):
    """The CLI's own one-line error becomes the exception's message; nothing is left behind."""
    from qgis.core import QgsProcessingException

    monkeypatch.setenv("FAKE_S2M_MODE", "fail")
    out = tmp_path / "out" / "c.gpkg"
    with pytest.raises(QgsProcessingException) as exc:
        _processing().run(ALG, {"PRE": scene["pre"], "POST": scene["post"], "OUTPUT": str(out)}, feedback=feedback)
    msg = str(exc.value)
    assert msg.startswith("s2m-geo failed (exit code 2)") and "s2m-geo: error:" in msg, msg
    assert "Traceback" not in msg + feedback.text()
    assert "not a raster" not in feedback.text()  # in the message only, not twice in the log
    assert os.listdir(out.parent) == []


def test_cli_crash_output_is_in_the_log_once(provider, fake_cli, tmp_path, scene, feedback, monkeypatch):
    """Without an error line of its own, what the CLI wrote goes to the log as it comes and
    the message only says how it ended."""
    from qgis.core import QgsProcessingException

    monkeypatch.setenv("FAKE_S2M_MODE", "crash")
    out = tmp_path / "c.gpkg"
    with pytest.raises(QgsProcessingException) as exc:
        _processing().run(ALG, {"PRE": scene["pre"], "POST": scene["post"], "OUTPUT": str(out)}, feedback=feedback)
    assert str(exc.value) == "s2m-geo failed (exit code 1). What it wrote is in the log above."
    console = [m for kind, m in feedback.log if kind == "console"]
    assert console.count("RuntimeError: boom") == 1 and console[0].startswith("Traceback")


def _renderer_by_class(layer):
    from qgis.core import QgsCategorizedSymbolRenderer

    r = layer.renderer()
    assert isinstance(r, QgsCategorizedSymbolRenderer), type(r).__name__
    assert r.classAttribute() == "class_id"
    values = {int(c.value()) for c in r.categories()}
    assert {1, 2, 3, 4, 5, 6} <= values
    return r


def test_run_and_load_styled_results(provider, project, cli, tiny_model, scene, tmp_path, field_aliases):
    """processing.runAndLoadResults: both layers and the raster are loaded, changes by class."""
    from qgis.core import QgsRasterLayer, QgsVectorLayer, QgsWkbTypes

    fb = RecordingFeedback.make()
    out, ras = tmp_path / "changes.gpkg", tmp_path / "changes.tif"
    res = _processing().runAndLoadResults(
        ALG,
        {
            "PRE": scene["pre"],
            "POST": scene["post"],
            "MODEL": tiny_model,
            "DEVICE": 1,
            "OUTPUT": str(out),
            "OUTPUT_RASTER": str(ras),
        },
        feedback=fb,
    )
    assert res["OUTPUT"] == str(out) and out.is_file() and ras.is_file()
    assert res["N_CHANGES"] > 0
    # progress from the JSON lines: rising to 100 (then Processing's own for loading 3 layers)
    run = fb.progress[: fb.progress.index(100) + 1]
    assert len(run) >= 5 and run == sorted(run) and run[0] < 50
    text = fb.text()
    assert "change polygons" in text and "There " in text  # the CLI's sentences
    # what it is doing, in words: the tiles at most every tenth of the way, then each stage once
    info = [m for kind, m in fb.log if kind == "info"]
    tiles = [m for m in info if m.startswith("Detecting changes: tile ")]
    assert 1 <= len(tiles) <= 11 and tiles[-1] == "Detecting changes: tile 25 of 25", tiles
    assert info.count("Writing the change raster") == 1 and info.count("Describing the change polygons") == 1
    assert not [m for m in info if m.startswith(("infer", "write", "vectorize"))]
    layers = {l.name(): l for l in project.mapLayers().values()}
    # named after the post scene (a file here: its name), whatever "Prefer output filename" says
    assert set(layers) == {"changes — post", "scenes — post", "change raster — post"}, list(layers)
    changes = layers["changes — post"]
    assert isinstance(changes, QgsVectorLayer) and changes.isValid()
    assert changes.source().endswith("|layername=changes")
    assert changes.geometryType() == QgsWkbTypes.PolygonGeometry
    assert changes.featureCount() == res["N_CHANGES"]
    _renderer_by_class(changes)
    names = changes.fields().names()
    for field in ("class_id", "category", "change_type", "quantity", "direction", "area_m2", "description"):
        assert field in names
    f = next(changes.getFeatures())
    assert f["description"] and f["class_id"] >= 1
    assert layers["scenes — post"].featureCount() == 1
    # every field in words, exactly as s2m-geo names them
    assert layer_aliases(changes) == field_aliases["changes"]
    assert layer_aliases(layers["scenes — post"]) == field_aliases["scenes"]
    assert changes.attributeDisplayName(changes.fields().indexOf("area_m2")) == "Area (m²)"
    raster = layers["change raster — post"]
    assert isinstance(raster, QgsRasterLayer) and raster.isValid()
    _paletted_by_class(raster)
    del changes, layers, f, raster


def _paletted_by_class(layer):
    """The change raster's style: the table's classes by their legend labels, no change
    transparent, nodata 255 not drawn (checked by rendering pixels 0, 1 and 255)."""
    import shutil

    from osgeo import gdal
    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer
    from qgis.PyQt.QtGui import qAlpha, qRgb

    r = layer.renderer()
    assert isinstance(r, QgsPalettedRasterRenderer), type(r).__name__
    classes = {c.value: c for c in r.classes()}
    assert sorted(classes) == list(range(7))  # the default table's 7 classes; no entry for 255
    assert classes[0].label == "no change" and classes[0].color.alpha() == 0
    assert classes[1].label == "destroyed building" and classes[1].color.name() == "#e31a1c"
    assert all(classes[v].color.alpha() == 255 for v in range(1, 7))
    assert layer.dataProvider().sourceNoDataValue(1) == 255
    folder = os.path.dirname(layer.source())
    probe = os.path.join(folder, "probe.tif")
    ds = gdal.GetDriverByName("GTiff").Create(probe, 3, 1, 1, gdal.GDT_Byte)
    ds.SetGeoTransform((0, 1, 0, 1, 0, -1))
    ds.GetRasterBand(1).SetNoDataValue(255)
    ds.GetRasterBand(1).WriteRaster(0, 0, 3, 1, bytes([0, 1, 255]))
    ds = None
    shutil.copyfile(os.path.splitext(layer.source())[0] + ".qml", os.path.join(folder, "probe.qml"))
    probe_layer = QgsRasterLayer(probe, "probe")  # picks probe.qml up by itself
    block = probe_layer.renderer().block(1, probe_layer.extent(), 3, 1)
    no_change, destroyed, nodata = (block.color(0, c) for c in range(3))
    assert qAlpha(no_change) == 0 and qAlpha(nodata) == 0
    assert destroyed == qRgb(0xE3, 0x1A, 0x1C)
    del probe_layer


def test_batch_mode_without_the_change_raster_loads_cleanly(provider, project, cli, tiny_model, scene, tmp_path):
    """As the batch dialog runs a row: every output a QgsProcessingOutputLayerDefinition (the
    raster's empty), a new context, then Processing's loading. The empty raster is not
    registered, so no "not correctly generated" error marks the row as failed."""
    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects
    from qgis.core import QgsApplication, QgsProcessingOutputLayerDefinition

    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    fb = RecordingFeedback.make()
    context = dataobjects.createContext(fb)
    out = tmp_path / "row1.gpkg"
    params = alg.preprocessParameters(
        {
            "PRE": scene["pre"],
            "POST": scene["post"],
            "MODEL": tiny_model,
            "DEVICE": 1,
            "OUTPUT": QgsProcessingOutputLayerDefinition(str(out), project),
            "OUTPUT_RASTER": QgsProcessingOutputLayerDefinition("", project),
        }
    )
    results, ok = alg.run(params, context, fb)
    assert ok and results["OUTPUT_RASTER"] is None
    registered = context.layersToLoadOnCompletion()
    assert "" not in registered and "OUTPUT_RASTER" not in {d.outputName for d in registered.values()}
    assert handleAlgorithmResults(alg, context, fb, False, params)
    assert not [m for kind, m in fb.log if kind == "error"], fb.log
    assert len(project.mapLayers()) == 2 and not list(tmp_path.glob("*.tif"))


def test_cancel_stops_the_child_and_leaves_no_output(provider, cli, tiny_model, scene, tmp_path):
    from qgis.core import QgsProcessingException

    fb = RecordingFeedback.make()
    fb.progressChanged.connect(lambda p: fb.cancel() if 0 < p < 90 else None)  # mid-inference
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        _processing().run(
            ALG,
            {
                "PRE": scene["pre"],
                "POST": scene["post"],
                "MODEL": tiny_model,
                "DEVICE": 1,
                "OUTPUT": str(out_dir / "c.gpkg"),
                "OUTPUT_RASTER": str(out_dir / "c.tif"),
            },
            feedback=fb,
        )
    pid = fb.child_pid()
    assert pid and fb.isCanceled()
    for kill in (os.kill, os.killpg):  # neither the child nor anything in its process group
        with pytest.raises(ProcessLookupError):
            kill(pid, 0)
    assert os.listdir(out_dir) == []  # no output, no .partial temp files
    assert fb.progress and max(fb.progress) < 90


def test_cli_error_names_the_dialog_parameter(provider, cli, tiny_model, scene, tmp_path, feedback):
    """An error about a parameter names it by the dialog's label, not the CLI's flag."""
    from qgis.core import QgsApplication, QgsProcessingException

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    label = alg.parameterDefinition("OVERLAP").description()
    out = tmp_path / "c.gpkg"
    params = {"PRE": scene["pre"], "POST": scene["post"], "MODEL": tiny_model, "TILE_SIZE": 64, "OVERLAP": 40}
    with pytest.raises(QgsProcessingException) as exc:
        _processing().run(ALG, {**params, "DEVICE": 1, "OUTPUT": str(out)}, feedback=feedback)
    msg = str(exc.value)
    assert f'"{label}" 40: must be at least 0 and less than half the tile size (64)' in msg, msg
    assert "--overlap" not in msg and "{overlap}" not in msg
    assert not out.exists()
