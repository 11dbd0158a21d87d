"""The plugin object QGIS creates: registers the provider, adds the toolbar button and menu."""

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QObject, QUrl, pyqtSlot
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QAction, QPushButton

from . import runner
from .base import SETTINGS_URL, SETUP_URL
from .provider import S2MProvider
from .resources import icon

ALGORITHM_ID = "s2m:detect_changes"
MENU = "&S2M change detection"
URL_SCHEME = SETUP_URL.split(":")[0]


class LinkHandler(QObject):
    """Answers the ``s2m-geo:`` links of the "cannot be run" message (QDesktopServices)."""

    def __init__(self, plugin):
        super().__init__()
        self.plugin = plugin

    @pyqtSlot(QUrl)
    def open(self, url):
        if url.toString() == SETUP_URL:
            self.plugin.show_setup()
        elif url.toString() == SETTINGS_URL:
            self.plugin.show_settings()


class S2MPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None  # keep a reference: a provider without one is garbage collected
        self.action = None
        self.setup_action = None
        self.setup_dialog = None
        self.links = None

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
        self.setup_action = QAction(icon(), "Set up s2m-geo…", self.iface.mainWindow())
        self.setup_action.setObjectName("s2mSetup")
        self.setup_action.setToolTip("Create s2m-geo's Python environment and point the plugin at it")
        self.setup_action.triggered.connect(self.show_setup)
        self.iface.addPluginToMenu(MENU, self.setup_action)
        self.links = LinkHandler(self)
        QDesktopServices.setUrlHandler(URL_SCHEME, self.links, "open")

    def unload(self):
        if self.links is not None:
            QDesktopServices.unsetUrlHandler(URL_SCHEME)
            self.links = None
        if self.setup_action is not None:
            self.iface.removePluginMenu(MENU, self.setup_action)
            self.setup_action.deleteLater()
            self.setup_action = None
        if self.setup_dialog is not None:
            self.setup_dialog.close()
            self.setup_dialog = None
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
            bar = dlg.messageBar()
            item = bar.createMessage("s2m-geo not found", str(exc).split("\n\n")[0])
            for text, slot in (("Set up s2m-geo…", self.show_setup), ("Settings…", self.show_settings)):
                button = QPushButton(text)
                button.clicked.connect(slot)
                item.layout().addWidget(button)
            item.setToolTip(str(exc))
            bar.pushWidget(item, Qgis.Warning, 0)
        return dlg

    def show_setup(self):
        """The "Set up s2m-geo" window (one at a time, not modal: pip takes minutes)."""
        from .setup_dialog import SetupDialog

        if self.setup_dialog is None:
            self.setup_dialog = SetupDialog(self.iface.mainWindow())
        self.setup_dialog.show()
        self.setup_dialog.raise_()
        self.setup_dialog.activateWindow()
        return self.setup_dialog

    def show_settings(self):
        """QGIS's options at the Processing page (the "s2m-geo executable" is under Providers ▸ S2M)."""
        self.iface.showOptionsDialog(self.iface.mainWindow(), currentPage="processingOptions")

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
