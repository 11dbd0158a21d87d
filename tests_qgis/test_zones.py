"""'Summarize changes by zone (S2M)' in real QGIS, with the real s2m-geo CLI: zones in another
CRS than the changes (one outside the scene: not covered), a memory layer exported first, a
grid, the loaded layer against the CLI's own --json, and errors in the dialog's words."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from harness import RecordingFeedback, _clean_env

ALG = "s2m:zones"
WGS84 = "EPSG:4326"


def _processing():
    import processing

    return processing


def _layer(uri, name):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(uri, name, "ogr")
    assert layer.isValid(), uri
    return layer


def _changes_layer(changes, name="changes"):
    return _layer(changes + "|layername=" + name, name)


def _zone_boxes(changes, crs):
    """West half, east half (5 % inside the scene's edges, so still inside once their
    rectangles in ``crs`` are drawn) and a box east of the scene."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRectangle

    scenes = _changes_layer(changes, "scenes")
    e = scenes.extent()
    xm, w, h = (e.xMinimum() + e.xMaximum()) / 2, e.width(), e.height()
    x0, x1, y0, y1 = e.xMinimum() + w / 20, e.xMaximum() - w / 20, e.yMinimum() + h / 20, e.yMaximum() - h / 20
    boxes = {
        "west half": QgsRectangle(x0, y0, xm, y1),
        "east half": QgsRectangle(xm, y0, x1, y1),
        "outside": QgsRectangle(e.xMaximum() + w, e.yMinimum(), e.xMaximum() + 2 * w, e.yMaximum()),
    }
    to = QgsCoordinateTransform(scenes.crs(), QgsCoordinateReferenceSystem(crs), QgsProject.instance())
    return scenes.crs(), {name: to.transformBoundingBox(box) for name, box in boxes.items()}


def _zones_layer(changes, crs, provider="memory"):
    """A memory layer of the three zones in ``crs`` with fields name and id."""
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    _, boxes = _zone_boxes(changes, crs)
    layer = QgsVectorLayer(f"Polygon?crs={crs}&field=name:string&field=id:integer", "districts", provider)
    feats = []
    for i, (name, box) in enumerate(boxes.items(), 1):
        f = QgsFeature(layer.fields())
        f.setAttributes([name, i])
        f.setGeometry(QgsGeometry.fromRect(box))
        feats.append(f)
    assert layer.dataProvider().addFeatures(feats)[0]
    return layer


@pytest.fixture(scope="module")
def zones_gpkg(qgis_app, changes, tmp_path_factory):
    """The three zones as a GeoPackage in EPSG:4326 (the changes are in UTM)."""
    from qgis.core import QgsCoordinateTransformContext, QgsVectorFileWriter

    path = tmp_path_factory.mktemp("zones-in") / "districts.gpkg"
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName, opts.layerName = "GPKG", "districts"
    err = QgsVectorFileWriter.writeAsVectorFormatV3(
        _zones_layer(changes, WGS84), str(path), QgsCoordinateTransformContext(), opts
    )
    assert err[0] == QgsVectorFileWriter.NoError, err
    return str(path)


def _cli_json(cli, *args):
    """The CLI's own --json rows for the same inputs (written to a throwaway output)."""
    res = subprocess.run([cli, "zones", *map(str, args), "--json"], env=_clean_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _same_as_cli(layer, rows):
    """The loaded layer's values are the CLI's --json rows, zone by zone."""
    from qgis.core import NULL

    feats = list(layer.getFeatures())
    assert [f["zone"] for f in feats] == [r["zone"] for r in rows]
    for f, r in zip(feats, rows):
        assert f["status"] == r["status"]
        assert f["covered_fraction"] == pytest.approx(r["covered_fraction"], abs=1e-9)
        assert f["description"] == r["description"]
        if r["classes"] is None:  # not covered: unknown, so empty, not zero
            unknown = ["changes", "changed_area_m2"] + [
                n for n in f.fields().names() if n.startswith(("n_", "area_m2_"))
            ]
            assert len(unknown) > 4 and [f[n] for n in unknown] == [NULL] * len(unknown)
            continue
        assert f["changes"] == r["changes"]
        assert f["changed_area_m2"] == pytest.approx(r["changed_area_m2"], rel=1e-9)
        for name, v in r["classes"].items():
            assert f["n_" + name] == v["count"], name
            assert f["area_m2_" + name] == pytest.approx(v["area_m2"], rel=1e-9, abs=1e-9), name


def _no_output(out):
    out = Path(out)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith("." + out.name)]


def test_algorithm_registered_with_its_parameters(provider):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    assert alg is not None and alg.displayName() == "Summarize changes by zone (S2M)"
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert list(params) == ["INPUT", "ZONES", "FIELD", "GRID", "CLASSES", "OUTPUT"]
    assert {n for n, p in params.items() if p.flags() & p.FlagOptional} == {"ZONES", "FIELD", "GRID", "CLASSES"}
    assert params["FIELD"].parentLayerParameterName() == "ZONES"
    assert {o.name() for o in alg.outputDefinitions()} >= {"OUTPUT", "N_ZONES", "N_NOT_COVERED"}
    assert "<code>s2m-geo zones CHANGES ZONES -o OUTPUT --field NAME</code>" in alg.shortHelpString()
    assert not alg.icon().isNull()


def test_build_zones_command_is_an_argument_list():
    from s2m_geo_qgis import runner

    cmd = runner.build_zones_command("/x/s2m-geo", "/d/all changes.gpkg", "/o/z.gpkg", zones="/d/d.gpkg", field="a b")
    assert cmd == [
        "/x/s2m-geo",
        "zones",
        "/d/all changes.gpkg",
        "/d/d.gpkg",
        "-o",
        "/o/z.gpkg",
        "--field",
        "a b",
        "--overwrite",
        "--progress",
        "json",
    ]
    cmd = runner.build_zones_command("s2m-geo", "c.gpkg", "z.gpkg", grid="3x3", classes="binary_change")
    assert cmd[3:] == [
        "-o",
        "z.gpkg",
        "--grid",
        "3x3",
        "--classes",
        "binary_change",
        "--overwrite",
        "--progress",
        "json",
    ]


def test_zones_in_another_crs_loaded_and_equal_to_the_cli(provider, project, cli, changes, zones_gpkg, tmp_path):
    from qgis.core import QgsWkbTypes

    fb = RecordingFeedback.make()
    out = tmp_path / "summary.gpkg"
    changes_layer = _changes_layer(changes)
    project.addMapLayer(changes_layer)
    res = _processing().runAndLoadResults(
        ALG, {"INPUT": changes_layer, "ZONES": zones_gpkg, "FIELD": "name", "OUTPUT": str(out)}, feedback=fb
    )
    assert res["OUTPUT"] == str(out) and out.is_file()
    assert res["N_ZONES"] == 3 and res["N_NOT_COVERED"] == 1
    command = [m for kind, m in fb.log if kind == "command"]
    assert command and f"zones {changes} {zones_gpkg} -o {out} --field name" in command[0]  # the file as it is
    text = fb.text()
    assert f"{out}: 3 zones (2 covered, 0 partly covered, 1 not covered)" in text  # the CLI's table
    assert any(m.startswith("outside ") and "not covered" in m for _, m in fb.log)
    assert ("warning", "No imagery covers 1 zone(s) (outside): their changes are unknown, not zero.") in fb.log
    assert fb.progress[: fb.progress.index(100) + 1] == sorted(fb.progress[: fb.progress.index(100) + 1])
    assert "No stored style" not in text  # the style the CLI stored in the GeoPackage was applied

    layers = {l.name(): l for l in project.mapLayers().values()}
    assert "districts — changes" in layers, list(layers)
    zones = layers["districts — changes"]
    assert zones.source().endswith("|layername=zones") and zones.featureCount() == 3
    assert zones.geometryType() == QgsWkbTypes.PolygonGeometry
    assert zones.crs().authid() == WGS84 != changes_layer.crs().authid()  # the zones keep their CRS
    assert [f["status"] for f in zones.getFeatures()] == ["covered", "covered", "not covered"]
    halves = [f["changed_area_m2"] for f in zones.getFeatures()][:2]
    assert all(a > 0 for a in halves)
    _same_as_cli(zones, _cli_json(cli, changes, zones_gpkg, "-o", tmp_path / "cli.gpkg", "--field", "name"))
    del zones, layers


def test_a_memory_layer_is_exported_first(provider, cli, changes, zones_gpkg, tmp_path, feedback):
    """Zones in memory (and in a third CRS) go to the CLI as a temporary GeoPackage; the
    figures are those of the same zones from a file."""
    mem = _zones_layer(changes, "EPSG:3857")
    out = tmp_path / "from memory.gpkg"
    res = _processing().run(
        ALG,
        {"INPUT": changes + "|layername=changes", "ZONES": mem, "FIELD": "name", "OUTPUT": str(out)},
        feedback=feedback,
    )
    assert res["N_ZONES"] == 3 and res["N_NOT_COVERED"] == 1
    assert "Zones exported to a temporary GeoPackage: " in feedback.text()
    got = _layer(str(out) + "|layername=zones", "zones")
    assert got.crs().authid() == "EPSG:3857"
    _same_as_cli(got, _cli_json(cli, changes, zones_gpkg, "-o", tmp_path / "cli.gpkg", "--field", "name"))


def test_a_layer_of_a_multi_layer_file_is_the_one_summarized(provider, cli, changes, tmp_path, feedback):
    """The CLI reads a file's first polygon layer: another layer of the file is exported."""
    from qgis.core import QgsCoordinateTransformContext, QgsVectorFileWriter

    path = tmp_path / "two layers.gpkg"
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName = "GPKG"
    for name in ("blocks", "districts"):
        layer = _zones_layer(changes, WGS84)
        if name == "blocks":  # its first zone only
            layer.dataProvider().deleteFeatures([f.id() for f in layer.getFeatures()][1:])
        opts.layerName = name
        err = QgsVectorFileWriter.writeAsVectorFormatV3(layer, str(path), QgsCoordinateTransformContext(), opts)
        assert err[0] == QgsVectorFileWriter.NoError, err
        opts.actionOnExistingFile = QgsVectorFileWriter.CreateOrOverwriteLayer
    for name, n in (("districts", 3), ("blocks", 1)):
        out = tmp_path / (name + ".gpkg")
        res = _processing().run(
            ALG,
            {"INPUT": changes, "ZONES": f"{path}|layername={name}", "FIELD": "name", "OUTPUT": str(out)},
            feedback=feedback,
        )
        assert res["N_ZONES"] == n
    assert feedback.text().count("Zones exported to a temporary GeoPackage") == 1  # districts only


def test_a_grid_instead_of_zones(provider, project, cli, changes, tmp_path, feedback):
    out = tmp_path / "grid.gpkg"
    res = _processing().runAndLoadResults(
        ALG, {"INPUT": changes + "|layername=changes", "GRID": "3x3", "OUTPUT": str(out)}, feedback=feedback
    )
    assert res["N_ZONES"] == 9 and res["N_NOT_COVERED"] == 0
    layers = {l.name(): l for l in project.mapLayers().values()}
    grid = layers["grid 3x3 — changes"]
    assert [f["zone"] for f in grid.getFeatures()] == ["A1", "A2", "A3", "B1", "B2", "B3", "C1", "C2", "C3"]
    _same_as_cli(grid, _cli_json(cli, changes, "--grid", "3x3", "-o", tmp_path / "cli.gpkg"))
    del grid, layers


def test_errors_name_the_dialog_parameters_and_leave_nothing(provider, cli, changes, zones_gpkg, tmp_path, feedback):
    from qgis.core import QgsApplication, QgsProcessingException

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    field_label = alg.parameterDefinition("FIELD").description()
    grid_label = alg.parameterDefinition("GRID").description()
    out = tmp_path / "never.gpkg"
    base = {"INPUT": changes + "|layername=changes", "OUTPUT": str(out)}

    with pytest.raises(QgsProcessingException) as exc:  # the CLI's error, in the dialog's words
        _processing().run(ALG, {**base, "ZONES": zones_gpkg, "FIELD": "district"}, feedback=feedback)
    msg = str(exc.value)
    assert msg.startswith("s2m-geo failed (exit code 2)")
    assert f"has no field 'district' (fields: name, id); pass one of them to \"{field_label}\"" in msg
    assert "--field" not in msg and "Traceback" not in msg
    _no_output(out)

    with pytest.raises(QgsProcessingException) as exc:
        _processing().run(ALG, {**base, "GRID": "3by3"})
    assert f'"{grid_label}" 3by3: give ROWSxCOLS' in str(exc.value) and "--grid" not in str(exc.value)
    _no_output(out)

    out.write_text("an earlier file")  # a failed run leaves what was there before as it was
    with pytest.raises(QgsProcessingException, match=re.escape(f'zones are named A1, A2, …; drop "{field_label}"')):
        _processing().run(ALG, {**base, "OUTPUT": str(out), "GRID": "2x2", "FIELD": "name"})
    assert out.read_text() == "an earlier file"
    out.unlink()

    for params, needle in (
        ({}, "Give either Zones (a polygon layer) or a Grid such as 3x3, not neither."),
        ({"ZONES": zones_gpkg, "GRID": "3x3"}, "not both"),
    ):
        with pytest.raises(QgsProcessingException, match=re.escape(needle)):
            _processing().run(ALG, {**base, **params})
    with pytest.raises(QgsProcessingException, match="choose its 'changes' layer"):
        _processing().run(ALG, {**base, "INPUT": changes + "|layername=scenes", "GRID": "3x3"})
    with pytest.raises(QgsProcessingException, match="is not a file layer"):
        _processing().run(ALG, {**base, "INPUT": _zones_layer(changes, WGS84), "GRID": "3x3"})
    _no_output(out)
