"""What every s2m-geo Processing algorithm shares: where it sits in the toolbox, its icon and
help, the check that s2m-geo is installed, and running the command line with the dialog's
words for its parameters and progress. The algorithms (``algorithm``, ``ask_algorithm``,
``zones_algorithm``) add their parameters and what they make of the result."""

import dataclasses

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsSettings,
)
from qgis.PyQt.QtCore import QCoreApplication

from . import runner
from .resources import ICON_PATH, help_url, icon

#: s2m-geo's --device choices; a new one goes last (qgis_process and saved models use the index).
DEVICES = ["auto", "cpu", "cuda", "mps"]
#: How the CLI's own error lines start (``s2m-geo: error: ...``; click's ``Error: ...``).
CLI_ERROR_PREFIXES = ("s2m-geo:", "Error:")


def executable_setting() -> str:
    """The plugin setting (QgsSettings) naming the s2m-geo executable; '' when unset."""
    value = QgsSettings().value(runner.SETTINGS_KEY, "")
    return str(value or "")


def find_executable() -> str:
    """The s2m-geo executable from the setting, S2M_GEO_EXECUTABLE or PATH (or an exception)."""
    return runner.find_executable(executable_setting())


def quote(arg) -> str:
    """For the log only: the command is run as a list, never through a shell."""
    arg = str(arg)
    return arg if arg and all(c.isalnum() or c in "-_./:=+,@" for c in arg) else "'" + arg.replace("'", "'\\''") + "'"


class S2MAlgorithm(QgsProcessingAlgorithm):
    """Base of the s2m-geo algorithms (subclasses set the class attributes)."""

    #: The README section its help button opens (bundled with the plugin, works offline).
    HELP_ANCHOR = "qgis-plugin"
    #: s2m-geo's parameter name -> this algorithm's parameter id, so the CLI's errors name
    #: the dialog's labels (``{tile_size}`` -> "Tile size in pixels …").
    CLI_PARAMS: dict = {}
    #: Ids of the parameters the prediction algorithms share (add_model_parameter, ...).
    MODEL = "MODEL"
    MIN_AREA = "MIN_AREA"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    DEVICE = "DEVICE"

    def tr(self, text):
        return QCoreApplication.translate("S2M", text)

    def createInstance(self):  # noqa: N802 - QGIS's name
        return type(self)()

    def group(self):
        return self.tr("Change detection")

    def groupId(self):  # noqa: N802 - QGIS's name
        return "change_detection"

    def icon(self):
        return icon()

    def svgIconPath(self):  # noqa: N802 - QGIS's name
        return ICON_PATH

    def helpUrl(self):  # noqa: N802 - QGIS's name
        return help_url(self.HELP_ANCHOR)

    # -- parameters the prediction algorithms share (ids: MODEL, MIN_AREA, TILE_SIZE, ...) --
    def add_advanced(self, parameter):
        """A parameter under "Advanced parameters" (collapsed: the defaults are right)."""
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def add_model_parameter(self):
        """The model file (.safetensors or .onnx); the dialog says under it what the chosen
        model is (model_widget.py; named by path, so qgis_process never imports it)."""
        model = QgsProcessingParameterFile(
            self.MODEL,
            self.tr("Model package (empty: the default model)"),
            behavior=QgsProcessingParameterFile.File,
            optional=True,
            fileFilter=self.tr("S2M model (*.safetensors *.onnx);;All files (*)"),
        )
        model.setMetadata({"widget_wrapper": {"class": __package__ + ".model_widget.ModelWidgetWrapper"}})
        self.addParameter(model)

    def add_min_area_parameter(self):
        min_area = QgsProcessingParameterNumber(
            self.MIN_AREA,
            self.tr("Minimum change area, m²"),
            type=QgsProcessingParameterNumber.Double,
            defaultValue=0.0,
            minValue=0.0,
        )
        min_area.setMetadata({"widget_wrapper": {"decimals": 1}})
        self.addParameter(min_area)

    def add_tiling_parameters(self):
        """Tile size, overlap (empty: the model's) and device, under Advanced."""
        for pid, label, low, high in (
            (self.TILE_SIZE, self.tr("Tile size in pixels (empty: the model's)"), 32, 8192),
            (self.OVERLAP, self.tr("Tile overlap in pixels (empty: the model's)"), 0, 4096),
        ):
            self.add_advanced(
                QgsProcessingParameterNumber(
                    pid,
                    label,
                    type=QgsProcessingParameterNumber.Integer,
                    defaultValue=None,
                    optional=True,
                    minValue=low,
                    maxValue=high,
                )
            )
        self.add_advanced(QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=DEVICES, defaultValue=0))

    def cli_labels(self) -> dict:
        """s2m-geo parameter name -> the label of the dialog parameter that sets it."""
        labels = {}
        for name, pid in self.CLI_PARAMS.items():
            definition = self.parameterDefinition(pid)
            if definition is not None:
                labels[name] = definition.description()
        return labels

    def missing_executable(self) -> str:
        """Why s2m-geo cannot be run (the install help), '' when it can."""
        try:
            find_executable()
        except runner.ExecutableNotFound as exc:
            return str(exc)
        return ""

    def canExecute(self):  # noqa: N802 - QGIS's name
        why = self.missing_executable()
        return not why, missing_html(why) if why else ""

    def executable(self) -> str:
        """The s2m-geo executable, or a QgsProcessingException with the install help."""
        try:
            return find_executable()
        except runner.ExecutableNotFound as exc:
            raise QgsProcessingException(str(exc)) from None

    def run_command(self, cmd, outputs, feedback, ok_codes=(0,), **callbacks):
        """Run ``cmd`` (logged), report progress to ``feedback``, name parameters by their
        labels in errors; a cancel or an exit code not in ``ok_codes`` becomes a
        QgsProcessingException (the CLI's own error lines are in its message, once). Returns
        the runner's result."""
        feedback.pushCommandInfo(" ".join(quote(a) for a in cmd))

        def on_error(line):
            # the CLI's own error lines make the failure's message: shown there, once
            if not line.startswith(CLI_ERROR_PREFIXES):
                feedback.pushConsoleInfo(line)

        callbacks.setdefault("on_error", on_error)
        callbacks.setdefault("on_message", feedback.pushInfo)
        callbacks.setdefault("on_warning", feedback.pushWarning)
        callbacks.setdefault("on_progress", _percent_only(feedback))
        result = runner.run_cli(
            cmd,
            outputs=outputs,
            labels=self.cli_labels(),
            is_canceled=feedback.isCanceled,
            ok_codes=ok_codes,
            **callbacks,
        )
        if result.canceled:
            for path in result.removed:
                feedback.pushDebugInfo("removed {0}".format(path))
            raise QgsProcessingException(self.cancelled_message())
        if result.returncode not in ok_codes:
            raise QgsProcessingException(self._failure(result))
        return result

    def cancelled_message(self):
        """What a cancelled run tells the user."""
        return self.tr("Cancelled: s2m-geo was stopped and no output was written.")

    def _failure(self, result):
        """The message of a failed run, without repeating what the log already shows: the
        CLI's error lines when it wrote any (they were kept out of the log), else only how it
        ended (its other lines are in the log above)."""
        if any(e.startswith(CLI_ERROR_PREFIXES) for e in result.errors):
            return runner.describe_failure(result)
        ended = runner.describe_failure(dataclasses.replace(result, errors=[]))
        return ended + " " + self.tr("What it wrote is in the log above.") if result.errors else ended


#: Links the plugin answers (plugin.py registers the scheme with QDesktopServices).
SETUP_URL = "s2m-geo:setup"
SETTINGS_URL = "s2m-geo:settings"


def missing_html(why: str) -> str:
    """Why s2m-geo cannot be run, as the HTML the toolbox's "cannot be run" box shows: the
    commands on their own lines and links to "Set up s2m-geo…" and to the provider settings."""
    return runner.message_html(why) + (
        '\n<p><a href="{0}"><b>Set up s2m-geo…</b></a> &nbsp; · &nbsp; '
        '<a href="{1}">Open Settings ▸ Options ▸ Processing (Providers ▸ S2M)</a></p>'
    ).format(SETUP_URL, SETTINGS_URL)


def _percent_only(feedback):
    def on_progress(stage, done, total):
        pct = runner.overall_percent(stage, done, total)
        if pct is not None:
            feedback.setProgress(pct)

    return on_progress
