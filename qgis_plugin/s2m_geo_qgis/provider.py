"""The Processing provider "S2M" (id ``s2m``)."""

from qgis.core import QgsProcessingProvider

from . import runner
from .algorithm import DetectChangesAlgorithm
from .ask_algorithm import AskChangesAlgorithm
from .batch_algorithm import BatchAlgorithm
from .resources import icon
from .zones_algorithm import ZonesAlgorithm


class S2MProvider(QgsProcessingProvider):
    def id(self):
        return "s2m"

    def name(self):
        return "S2M"

    def longName(self):
        return "S2M change detection (s2m-geo)"

    def icon(self):
        return icon()

    def svgIconPath(self):  # noqa: N802 - QGIS's name
        from .resources import ICON_PATH

        return ICON_PATH

    def load(self):
        # The executable setting shows up in Settings > Options > Processing > Providers > S2M
        # and is stored in QgsSettings under runner.SETTINGS_KEY.
        try:
            from processing.core.ProcessingConfig import ProcessingConfig, Setting
        except ImportError:  # Processing plugin disabled: the algorithm still reads QgsSettings
            return super().load()
        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(
            Setting(
                self.name(),
                runner.SETTING_NAME,
                "s2m-geo executable (empty: S2M_GEO_EXECUTABLE, then PATH)",
                "",
                valuetype=Setting.FILE,
            )
        )
        ProcessingConfig.readSettings()
        return super().load()

    def unload(self):
        try:
            from processing.core.ProcessingConfig import ProcessingConfig

            ProcessingConfig.removeSetting(runner.SETTING_NAME)
        except (ImportError, KeyError):
            pass
        super().unload()

    def loadAlgorithms(self):
        self.addAlgorithm(DetectChangesAlgorithm())
        self.addAlgorithm(BatchAlgorithm())
        self.addAlgorithm(AskChangesAlgorithm())
        self.addAlgorithm(ZonesAlgorithm())

    def supportsNonFileBasedOutput(self):
        return False  # the CLI writes files: a temporary output becomes a .gpkg path

    def supportedOutputVectorLayerExtensions(self):
        return ["gpkg"]

    def defaultVectorFileExtension(self, hasGeometry=True):
        return "gpkg"

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def defaultRasterFileExtension(self):
        return "tif"
