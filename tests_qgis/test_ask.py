"""'Ask changes (S2M)' in real QGIS, with the real s2m-geo CLI: the answer, the selection, the
new layer, and a question it cannot read. Expected values come from QGIS's own expressions."""

import pytest

ALG = "s2m:ask_changes"


def _processing():
    import processing

    return processing


def _layer(changes, name="changes"):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(changes + "|layername=" + name, name, "ogr")
    assert layer.isValid()
    return layer


def _where(layer, expression):
    from qgis.core import QgsFeatureRequest

    return {f.id(): f["area_m2"] for f in layer.getFeatures(QgsFeatureRequest().setFilterExpression(expression))}


def test_algorithm_registered_with_its_parameters(provider):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    assert alg is not None and alg.displayName() == "Ask changes (S2M)"
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert list(params) == ["INPUT", "QUESTION", "SELECT", "OUTPUT"]
    assert {n for n, p in params.items() if p.flags() & p.FlagOptional} == {"OUTPUT"}
    assert {o.name() for o in alg.outputDefinitions()} >= {"ANSWER", "COUNT", "AREA", "OUTPUT"}


def test_answer_in_the_log_and_matching_polygons_selected(provider, project, cli, changes, feedback):
    layer = _layer(changes)
    project.addMapLayer(layer)
    new = "category = 'greenhouse' AND change_type = 'newly built'"
    directions = [f["direction"] for f in layer.getFeatures(new)]
    where = max(set(directions), key=directions.count)  # the direction with the most of them
    expected = _where(layer, new + f" AND direction = '{where}'")
    assert 0 < len(expected) < len(directions)  # the direction filter matters here
    res = _processing().run(
        ALG, {"INPUT": layer, "QUESTION": f"How many new glasshouses are in the {where}?"}, feedback=feedback
    )
    assert res["COUNT"] == len(expected)
    assert res["AREA"] == pytest.approx(sum(expected.values()))
    n = len(expected)
    place = "center of the image" if where == "center" else where + " region"
    be, s = ("is", "") if n == 1 else ("are", "s")
    assert res["ANSWER"].startswith(f"There {be} {n} newly built greenhouse{s} in the {place}, ")
    assert ("info", res["ANSWER"]) in feedback.log
    assert set(layer.selectedFeatureIds()) == set(expected)


def test_matching_polygons_as_a_new_layer(provider, cli, changes, tmp_path):
    layer = _layer(changes)
    expected = _where(layer, "category = 'greenhouse' AND change_type = 'newly built' AND area_m2 > 300")
    out = tmp_path / "new greenhouses.gpkg"
    res = _processing().run(
        ALG,
        {
            "INPUT": changes + "|layername=changes",
            "QUESTION": "which new greenhouses are larger than 300 m2?",
            "SELECT": False,
            "OUTPUT": str(out),
        },
    )
    assert res["OUTPUT"] == str(out) and res["COUNT"] == len(expected) > 0
    written = _layer(str(out))
    assert written.featureCount() == len(expected)
    assert [f.name() for f in written.fields()] == [f.name() for f in layer.fields()]
    assert sorted(f["area_m2"] for f in written.getFeatures()) == sorted(expected.values())


def test_a_question_it_cannot_read_is_one_clear_error(provider, cli, changes, tmp_path, feedback):
    from qgis.core import QgsProcessingException

    layer = _layer(changes)
    out = tmp_path / "never.gpkg"
    with pytest.raises(QgsProcessingException) as exc:
        _processing().run(ALG, {"INPUT": layer, "QUESTION": "how many tanks?", "OUTPUT": str(out)}, feedback=feedback)
    msg = str(exc.value)
    assert msg.startswith("s2m-geo failed (exit code 2)") and "unknown word(s) 'tanks'" in msg
    assert "house(s)" in msg and "Traceback" not in msg
    assert not out.exists() and layer.selectedFeatureCount() == 0
    with pytest.raises(QgsProcessingException, match="ask its 'changes' layer"):
        _processing().run(ALG, {"INPUT": _layer(changes, "scenes"), "QUESTION": "how many changes"})
