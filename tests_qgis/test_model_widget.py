"""The model field of the prediction dialogs: .safetensors and .onnx alike, and what the
chosen model is (classes, tile size) written under it, from the real ``s2m-geo model-info``."""

import subprocess

import pytest
from harness import _clean_env, spin_until


@pytest.fixture(scope="session")
def tiny_onnx(cli, tiny_model, tmp_path_factory):
    """The tiny model exported to ONNX by the CLI (s2m-geo export)."""
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    subprocess.run(
        [cli, "export", tiny_model, "--onnx", str(out)], check=True, env=_clean_env(), stdout=subprocess.DEVNULL
    )
    return str(out)


def _model_info(dlg):
    from qgis.PyQt.QtWidgets import QLabel

    labels = dlg.findChildren(QLabel, "s2mModelInfo")
    assert len(labels) == 1
    return labels[0]


def _wrapper(dlg):
    return dlg.mainWidget().wrappers["MODEL"]


@pytest.mark.parametrize("alg_id", ["s2m:detect_changes", "s2m:batch"])
def test_dialog_says_what_the_chosen_model_is(alg_id, provider, project, cli, tiny_model, tiny_onnx, clean_settings):
    from processing import createAlgorithmDialog
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    assert alg is not None, [a.id() for a in provider.algorithms()]
    dlg = createAlgorithmDialog(alg_id, {})
    info = _model_info(dlg)
    wrapper = _wrapper(dlg)
    assert "*.safetensors *.onnx" in wrapper.file.filter()
    # empty: the default model
    assert spin_until(lambda: info.text().startswith("Default model: 6 change classes (gaza_change)"), 60), info.text()
    assert "building destroyed" in info.text() and "tile 256 px, overlap 32 px" in info.text()
    for model in (tiny_model, tiny_onnx):
        wrapper.setValue(model)
        assert spin_until(lambda: "tile 64 px" in info.text(), 60), (model, info.text())
        assert "change classes (" in info.text() and info.text() == wrapper.file.toolTip()
        assert wrapper.parameterValue() == model  # what the run gets
    wrapper.setValue("/nope/model.onnx")
    assert info.text() == "No such file: /nope/model.onnx"
    dlg.close()


def test_a_file_that_is_not_a_model_is_said_in_one_line(provider, project, cli, tmp_path, clean_settings):
    from processing import createAlgorithmDialog

    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model")
    dlg = createAlgorithmDialog("s2m:detect_changes", {"MODEL": str(bad)})
    info = _model_info(dlg)
    assert spin_until(lambda: info.text() and not info.text().startswith(("Reading", "Default")), 60)
    assert str(bad) in info.text() and "\n" not in info.text(), info.text()
    dlg.close()


def test_batch_table_and_qgis_process_keep_working(provider, project, cli, tiny_model, clean_settings):
    """Processing's batch mode: the picker in the cell, the description as its tooltip."""
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from qgis.core import QgsApplication
    from qgis.gui import QgsFileWidget

    alg = QgsApplication.processingRegistry().createAlgorithmById("s2m:detect_changes")
    dlg = BatchAlgorithmDialog(alg)
    panel = dlg.mainWidget()
    col = panel.parameter_to_column["MODEL"]
    wrapper = panel.wrappers[0][col]
    assert isinstance(panel.tblParameters.cellWidget(1, col), QgsFileWidget)
    wrapper.setValue(tiny_model)
    assert spin_until(lambda: "tile 64 px" in wrapper.file.toolTip(), 60), wrapper.file.toolTip()
    assert wrapper.parameterValue() == tiny_model
    dlg.close()


def test_modeler_gets_qgis_own_widget(provider, project, clean_settings):
    """In the graphical modeler the field stays QGIS's (a model input can feed it)."""
    from processing.modeler.ModelerParametersDialog import ModelerParametersDialog
    from qgis.core import QgsApplication, QgsProcessingModelAlgorithm
    from qgis.gui import QgsProcessingModelerParameterWidget

    alg = QgsApplication.processingRegistry().createAlgorithmById("s2m:detect_changes")
    dlg = ModelerParametersDialog(alg, QgsProcessingModelAlgorithm())
    wrappers = dlg.widget.widget.wrappers
    assert isinstance(wrappers["MODEL"], QgsProcessingModelerParameterWidget)
    dlg.close()


def test_closing_the_dialog_while_the_model_is_read_is_safe(provider, project, cli, tiny_model, tmp_path):
    """The look-up's QProcess dies with the deleted dialog and still reports its end: ignored
    (a slot raising there would abort QGIS)."""
    import shutil

    from processing import createAlgorithmDialog
    from qgis.PyQt import sip

    fresh = tmp_path / "copy.safetensors"  # not in the cache: model-info really runs
    shutil.copyfile(tiny_model, fresh)
    dlg = createAlgorithmDialog("s2m:detect_changes", {"MODEL": str(fresh)})
    wrapper = _wrapper(dlg)
    assert wrapper.process is not None
    sip.delete(dlg)
    spin_until(lambda: False, 2)
    assert sip.isdeleted(wrapper.file)
