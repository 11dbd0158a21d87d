"""The plugin object QGIS creates: registers the provider, adds the toolbar button and menu."""

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtWidgets import QAction

from . import runner
from .provider import S2MProvider
from .resources import icon

ALGORITHM_ID = "s2m:detect_changes"
MENU = "&S2M change detection"


class S2MPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None  # keep a reference: a provider without one is garbage collected
        self.action = None

    # qgis_process calls only this; the desktop calls only initGui (which calls this).
    def initProcessing(self):
        if self.provider is None:
            self.provider = S2MProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()
        self.action = QAction(icon(), "Detect changes (S2M)…", self.iface.mainWindow())
        self.action.setObjectName("s2mDetectChanges")
        self.action.setToolTip("Detect and describe change between two scenes (S2M)")
        self.action.setWhatsThis("Opens the Processing algorithm 'Detect changes (S2M)'")
        self.action.triggered.connect(self.run)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToMenu(MENU, self.action)

    def unload(self):
        if self.action is not None:
            self.iface.removeToolBarIcon(self.action)
            self.iface.removePluginMenu(MENU, self.action)
            self.action.triggered.disconnect(self.run)
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def create_dialog(self, parameters=None):
        """The algorithm's Processing dialog; warns in it when s2m-geo cannot be found."""
        from processing import createAlgorithmDialog

        from .base import find_executable

        dlg = createAlgorithmDialog(ALGORITHM_ID, parameters or {})
        if dlg is None:
            return None
        try:
            find_executable()
        except runner.ExecutableNotFound as exc:
            dlg.messageBar().pushMessage("s2m-geo not found", str(exc), Qgis.Warning, 0)
        return dlg

    def run(self):
        """Open the dialog (modal), as Processing's toolbox does."""
        dlg = self.create_dialog()
        if dlg is None:
            return None
        canvas = self.iface.mapCanvas()
        prev_tool = canvas.mapTool() if canvas is not None else None
        dlg.show()
        dlg.exec_()
        if canvas is not None and canvas.mapTool() != prev_tool and prev_tool is not None:
            canvas.setMapTool(prev_tool)
        results = dlg.results()
        dlg.close()
        return results
