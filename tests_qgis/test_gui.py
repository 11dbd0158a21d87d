"""The desktop side with a mocked iface: initGui/unload, the toolbar action, the dialog."""

import pytest
from harness import spin_until

ALG = "s2m:detect_changes"


@pytest.fixture
def plugin(iface, project):
    from s2m_geo_qgis import classFactory

    p = classFactory(iface)
    p.initGui()
    yield p
    p.unload()


@pytest.fixture
def no_exec(monkeypatch):
    """AlgorithmDialog.exec_ returns at once (headless) and records the dialog."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    opened = []
    monkeypatch.setattr(AlgorithmDialog, "exec_", lambda self: opened.append(self) or 0)
    return opened


def test_initgui_registers_provider_button_and_menu_and_unload_removes_them(iface, project):
    from qgis.core import QgsApplication
    from s2m_geo_qgis import classFactory
    from s2m_geo_qgis.plugin import MENU

    reg = QgsApplication.processingRegistry()
    assert reg.providerById("s2m") is None
    plugin = classFactory(iface)
    plugin.initGui()  # the desktop calls only initGui
    action = plugin.action
    assert reg.providerById("s2m") is plugin.provider
    assert reg.algorithmById(ALG) is not None
    iface.addToolBarIcon.assert_called_once_with(action)
    assert iface.addPluginToMenu.call_args_list == [((MENU, action),), ((MENU, plugin.setup_action),)]
    setup_action = plugin.setup_action
    assert action.text().startswith("Detect changes (S2M)") and not action.icon().isNull()
    plugin.unload()
    iface.removeToolBarIcon.assert_called_once_with(action)
    assert sorted(map(id, (c[0][1] for c in iface.removePluginMenu.call_args_list))) == sorted(
        map(id, (action, setup_action))
    )
    assert reg.providerById("s2m") is None and reg.algorithmById(ALG) is None
    assert plugin.action is None and plugin.provider is None
    from processing.core.ProcessingConfig import ProcessingConfig
    from s2m_geo_qgis import runner

    assert runner.SETTING_NAME not in ProcessingConfig.settings  # the option went with it


def test_initprocessing_alone_as_qgis_process_does(iface):
    from qgis.core import QgsApplication
    from s2m_geo_qgis import classFactory

    plugin = classFactory(iface)
    plugin.initProcessing()
    try:
        assert QgsApplication.processingRegistry().algorithmById(ALG) is not None
        iface.addToolBarIcon.assert_not_called()
    finally:
        plugin.unload()
    assert QgsApplication.processingRegistry().providerById("s2m") is None


def test_toolbar_action_opens_the_algorithm_dialog(plugin, no_exec, fake_cli, clean_settings):
    plugin.action.trigger()
    assert len(no_exec) == 1
    dlg = no_exec[0]
    assert dlg.algorithm().id() == ALG
    assert dlg.messageBar().currentItem() is None  # s2m-geo found: no warning


def test_dialog_warns_with_the_install_command_when_s2m_geo_is_missing(
    plugin, no_exec, clean_settings, monkeypatch, tmp_path
):
    monkeypatch.delenv("S2M_GEO_EXECUTABLE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    plugin.action.trigger()
    dlg = no_exec[0]
    item = dlg.messageBar().currentItem()
    assert item is not None and "not found" in item.text() and "pip install s2m-geo" in item.toolTip()
    from qgis.core import QgsProcessingContext

    ok, msg = dlg.algorithm().checkParameterValues({}, QgsProcessingContext())  # what Run shows
    assert not ok and "s2m-geo command line was not found" in msg and "Traceback" not in msg


def test_dialog_refuses_the_active_layer_as_both_scenes(plugin, project, iface, scene, fake_cli, monkeypatch):
    """QGIS fills both scene boxes with the active layer; Run then says why it will not run,
    and s2m-geo is not started."""
    from processing import createAlgorithmDialog
    from qgis.core import QgsProcessingContext, QgsRasterLayer
    from qgis.PyQt.QtWidgets import QMessageBox

    pre = QgsRasterLayer(scene["pre"], "pre")
    post = QgsRasterLayer(scene["post"], "post")
    project.addMapLayers([pre, post])
    iface.activeLayer.return_value = post
    try:
        dlg = createAlgorithmDialog(ALG, {})
    finally:
        iface.activeLayer.return_value = None
    params = dlg.createProcessingParameters()
    assert params["PRE"] == params["POST"] == post.id()  # QGIS's default for both
    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: warned.append(a[1:]) or QMessageBox.Ok)
    dlg.runButton().click()
    assert len(warned) == 1, warned
    title, text = warned[0]
    assert title == "Unable to execute algorithm"
    assert '"Pre scene (before)" and "Post scene (after)" are the same file' in text and scene["post"] in text
    assert not fake_cli.log_path.exists()
    dlg.setParameters({"PRE": pre.id(), "POST": post.id()})
    context = QgsProcessingContext()
    context.setProject(project)
    ok, msg = dlg.algorithm().checkParameterValues(dlg.createProcessingParameters(), context)
    assert ok, msg
    dlg.close()
    del pre, post


def _png_ok(path):
    from qgis.PyQt.QtGui import QImage

    img = QImage(str(path))
    assert not img.isNull() and img.width() >= 600 and img.height() >= 400, (img.width(), img.height())
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 20, "the screenshot looks blank"


def test_dialog_screenshot_then_run_loads_even_an_empty_result(
    plugin, project, cli, tiny_model, scene, tmp_path, clean_settings
):
    """The real dialog, offscreen: screenshot it, fill it, click Run (a worker-thread task),
    and get the result layer loaded into the project, styled, even when no change is left."""
    from processing import createAlgorithmDialog
    from qgis.core import QgsRasterLayer, QgsWkbTypes

    pre = QgsRasterLayer(scene["pre"], "pre")
    post = QgsRasterLayer(scene["post"], "Gaza north 2024-01-12")
    project.addMapLayers([pre, post])
    dlg = createAlgorithmDialog(ALG, {"PRE": pre.id(), "POST": post.id()})
    dlg.show()
    dlg.resize(1040, 800)
    spin_until(lambda: False, 0.3)
    png = tmp_path / "qgis_dialog.png"
    assert dlg.grab().save(str(png))
    _png_ok(png)

    out = tmp_path / "dialog_changes.gpkg"
    dlg.setParameters(
        {"PRE": pre.id(), "POST": post.id(), "MODEL": tiny_model, "DEVICE": 1, "MIN_AREA": 1e12, "OUTPUT": str(out)}
    )
    finished = []
    dlg.algorithmFinished.connect(lambda ok, res: finished.append((ok, res)))
    dlg.runButton().click()
    assert spin_until(lambda: finished, 180), "the dialog's run did not finish"
    ok, res = finished[0]
    assert ok and res["N_CHANGES"] == 0 and out.is_file()
    layer = project.mapLayersByName("changes — Gaza north 2024-01-12")[0]  # the post layer's name
    assert layer.isValid() and layer.featureCount() == 0
    assert layer.geometryType() == QgsWkbTypes.PolygonGeometry  # not a geometry-less table
    assert layer.renderer().type() == "categorizedSymbol" and layer.renderer().classAttribute() == "class_id"
    dlg.close()
    del layer, pre, post
