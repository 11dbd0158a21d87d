"""Screenshots of the QGIS desktop with the plugin: the dialog, the styled map, the attribute
table, and the box the toolbox shows when s2m-geo is missing.

Run by ``scripts/qgis_screenshots.sh`` inside the real ``qgis`` desktop (``qgis --code``),
headless (``QT_QPA_PLATFORM=offscreen``). It reads ``S2M_SHOTS_RUN`` (a folder with
``post.gpkg`` and ``post_changes.tif`` from ``s2m-geo predict`` on ``sample_data/``),
``S2M_SHOTS_OUT`` (where the PNGs go) and ``S2M_SHOTS_REPO`` (the checkout), then quits QGIS.
"""

import os
import sys
import time
import traceback

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface

REPO = os.environ["S2M_SHOTS_REPO"]
RUN = os.environ["S2M_SHOTS_RUN"]
OUT = os.environ["S2M_SHOTS_OUT"]
SAMPLE = os.path.join(REPO, "sample_data")


def spin(seconds, until=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until and until()):
        QApplication.processEvents()
        time.sleep(0.02)


def save(widget, name, width=None):
    """Grab ``widget`` and save it as a small PNG (scaled to ``width``, 8-bit palette)."""
    from qgis.PyQt.QtGui import QImage

    img = widget.grab().toImage()
    if width and img.width() > width:
        img = img.scaledToWidth(width, Qt.SmoothTransformation)
    img = img.convertToFormat(QImage.Format_Indexed8, Qt.ThresholdDither)
    path = os.path.join(OUT, name)
    assert img.save(path, "PNG", 9), path
    print(path, img.width(), "x", img.height(), os.path.getsize(path), "bytes", flush=True)


def load_layers():
    project = QgsProject.instance()
    post = QgsRasterLayer(os.path.join(SAMPLE, "post.tif"), "post (sample_data)")
    pre = QgsRasterLayer(os.path.join(SAMPLE, "pre.tif"), "pre (sample_data)")
    raster = QgsRasterLayer(os.path.join(RUN, "post_changes.tif"), "change raster — post")
    raster.loadDefaultStyle()
    gpkg = os.path.join(RUN, "post.gpkg")
    scenes = QgsVectorLayer(gpkg + "|layername=scenes", "scenes — post", "ogr")
    changes = QgsVectorLayer(gpkg + "|layername=changes", "changes — post", "ogr")
    for layer in (scenes, changes):
        layer.loadDefaultStyle()
    for layer in (pre, post, raster, scenes, changes):
        assert layer.isValid(), layer.source()
    project.addMapLayers([changes, scenes, raster, post, pre])  # the first on top
    root = project.layerTreeRoot()
    root.findLayer(pre.id()).setItemVisibilityChecked(False)
    for layer in (pre, post, scenes):
        root.findLayer(layer.id()).setExpanded(False)
    return post, changes


def main():
    sys.path.insert(0, os.path.join(REPO, "qgis_plugin"))
    from s2m_geo_qgis import classFactory

    plugin = classFactory(iface)
    plugin.initGui()
    win = iface.mainWindow()
    win.resize(QSize(1400, 860))
    win.show()
    post, changes = load_layers()
    canvas = iface.mapCanvas()
    canvas.setExtent(post.extent())
    canvas.refresh()
    spin(8, until=lambda: not canvas.isDrawing())
    spin(1)
    save(win, "qgis_map.png", width=1200)

    from qgis.PyQt.QtWidgets import QTableView

    table = iface.showAttributeTable(changes)
    table.resize(1500, 430)
    spin(3)
    for view in table.findChildren(QTableView):
        view.resizeColumnsToContents()
        for col in range(view.model().columnCount() if view.model() else 0):
            view.setColumnWidth(col, min(view.columnWidth(col), 300))
    spin(1)
    save(table, "qgis_attributes.png", width=1300)
    table.close()

    pre = QgsProject.instance().mapLayersByName("pre (sample_data)")[0]
    dlg = plugin.create_dialog({"PRE": pre.id(), "POST": post.id(), "MIN_AREA": 4.0})
    dlg.resize(1000, 760)
    dlg.show()
    spin(30, until=lambda: _model_info_done(dlg))
    spin(0.5)
    save(dlg, "qgis_dialog.png")
    dlg.close()
    save_missing_box()
    plugin.unload()


def save_missing_box():
    """What the toolbox shows when s2m-geo cannot be found (ProcessingToolbox's own box)."""
    from processing.gui.MessageDialog import MessageDialog

    env = {k: os.environ.pop(k, None) for k in ("S2M_GEO_EXECUTABLE", "PATH")}
    try:
        alg = QgsApplication.processingRegistry().createAlgorithmById("s2m:detect_changes")
        ok, message = alg.canExecute()
    finally:
        os.environ.update({k: v for k, v in env.items() if v is not None})
    assert not ok
    box = MessageDialog()
    box.setTitle("Error executing algorithm")
    box.setMessage(f"<h3>This algorithm cannot be run :-( </h3>\n{message}")  # as the toolbox does
    box.resize(760, 450)
    box.show()
    spin(0.5)
    save(box, "qgis_missing.png")
    box.close()


def _model_info_done(dlg):
    from qgis.PyQt.QtWidgets import QLabel

    labels = dlg.findChildren(QLabel, "s2mModelInfo")
    return bool(labels) and labels[0].text().startswith("Default model")


try:
    main()
except Exception:
    traceback.print_exc()
    sys.stdout.flush()
    os._exit(1)
QgsApplication.instance().exit(0)
os._exit(0)
