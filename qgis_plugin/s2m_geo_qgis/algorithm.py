"""The Processing algorithm "Detect changes (S2M)" (``s2m:detect_changes``)."""

import collections
import dataclasses
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
    QgsSettings,
    QgsVectorLayer,
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


def _tr(text):
    return QCoreApplication.translate("S2M", text)


class ProgressWords:
    """Says in the log what s2m-geo is doing, from its progress lines: each stage once, in
    words, and the tiles at every tenth of the inference (not a line per batch of tiles)."""

    def __init__(self, push, raster):
        self.push = push
        self.raster = raster
        self.stage = None
        self.next_tenth = 0

    def __call__(self, stage, done, total):
        if stage != self.stage:
            self.stage, self.next_tenth = stage, 0
            if stage == "write":
                if self.raster:
                    self.push(_tr("Writing the change raster"))
            elif stage == "vectorize":
                self.push(_tr("Describing the change polygons"))
            elif stage != "infer":
                self.push("{0}…".format(stage))
        if stage != "infer":
            return
        try:
            tenths = 10 * float(done) / float(total)
        except (TypeError, ValueError, ZeroDivisionError):
            return
        if tenths >= self.next_tenth:
            self.push(_tr("Detecting changes: tile {0} of {1}").format(int(done), int(total)))
            self.next_tenth = 11 if tenths >= 10 else int(tenths) + 1


class LoadStoredStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies a result's default style: the one stored in the GeoPackage (``layer_styles``)
    for the two vector layers, ``NAME.qml`` beside the change raster.

    Processing loads result layers without their default style, so the class colours (and,
    for the raster, the transparent "no change" class) the CLI writes would be lost without this.
    """

    # The context takes ownership of (and deletes) each post-processor, so every layer gets a
    # new one; Python must still hold the wrapper until QGIS has called it (PyQGIS cookbook).
    _recent = collections.deque(maxlen=256)

    @classmethod
    def create(cls):
        processor = cls()
        cls._recent.append(processor)
        return processor

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS's name
        msg, ok = layer.loadDefaultStyle()
        if ok:
            layer.triggerRepaint()
        else:
            feedback.pushInfo("No stored style for {0}: {1}".format(layer.name(), msg))


class DetectChangesAlgorithm(QgsProcessingAlgorithm):
    PRE = "PRE"
    POST = "POST"
    MODEL = "MODEL"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    DEVICE = "DEVICE"
    MIN_AREA = "MIN_AREA"
    OUTPUT = "OUTPUT"
    OUTPUT_RASTER = "OUTPUT_RASTER"
    SCENES = "SCENES"
    N_CHANGES = "N_CHANGES"

    def tr(self, text):
        return QCoreApplication.translate("S2M", text)

    def createInstance(self):
        return DetectChangesAlgorithm()

    def name(self):
        return "detect_changes"

    def displayName(self):
        return self.tr("Detect changes (S2M)")

    def group(self):
        return self.tr("Change detection")

    def groupId(self):
        return "change_detection"

    def icon(self):
        return icon()

    def svgIconPath(self):  # noqa: N802 - QGIS's name
        return ICON_PATH

    def tags(self):
        return self.tr("change,damage,s2m,siamese,masks can talk,building,destroyed,gaza").split(",")

    def shortHelpString(self):
        return self.tr(
            "Finds and describes change between a pre and a post scene with an S2M change model, "
            "by running the s2m-geo command line (s2m-geo predict) in its own Python environment.\n\n"
            "The result is a GeoPackage with two layers, styled by class and named after the post "
            "scene: changes (one polygon per change region: what, how, where, how many, area, "
            "confidence and a sentence) and scenes (the footprint with the scene's sentences). "
            "Optionally the change raster (class ids, GeoTIFF; no change is transparent) too.\n\n"
            "Pre and post must be two different files: the scenes before and after the event.\n\n"
            "Model package: a .safetensors package or ONNX model; empty = s2m-geo's default model. "
            "Minimum area drops smaller change polygons (m²). Advanced parameters: tile size and "
            "overlap (empty = the model's) and the device.\n\n"
            "The s2m-geo executable is taken from Settings > Options > Processing > Providers > S2M, "
            "else from the S2M_GEO_EXECUTABLE environment variable, else from PATH."
        )

    def helpUrl(self):
        return help_url("qgis-plugin")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.PRE, self.tr("Pre scene (before)")))
        self.addParameter(QgsProcessingParameterRasterLayer(self.POST, self.tr("Post scene (after)")))
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                self.tr("Model package (empty: the default model)"),
                behavior=QgsProcessingParameterFile.File,
                optional=True,
                fileFilter=self.tr("S2M model (*.safetensors *.onnx);;All files (*)"),
            )
        )
        self._add_advanced(
            QgsProcessingParameterNumber(
                self.TILE_SIZE,
                self.tr("Tile size in pixels (empty: the model's)"),
                type=QgsProcessingParameterNumber.Integer,
                defaultValue=None,
                optional=True,
                minValue=32,
                maxValue=8192,
            )
        )
        self._add_advanced(
            QgsProcessingParameterNumber(
                self.OVERLAP,
                self.tr("Tile overlap in pixels (empty: the model's)"),
                type=QgsProcessingParameterNumber.Integer,
                defaultValue=None,
                optional=True,
                minValue=0,
                maxValue=4096,
            )
        )
        self._add_advanced(QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=DEVICES, defaultValue=0))
        min_area = QgsProcessingParameterNumber(
            self.MIN_AREA,
            self.tr("Minimum change area, m²"),
            type=QgsProcessingParameterNumber.Double,
            defaultValue=0.0,
            minValue=0.0,
        )
        min_area.setMetadata({"widget_wrapper": {"decimals": 1}})
        self.addParameter(min_area)
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, self.tr("Changes"), type=QgsProcessing.TypeVectorPolygon
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_RASTER, self.tr("Change raster"), optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputVectorLayer(self.SCENES, self.tr("Scenes"), QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputNumber(self.N_CHANGES, self.tr("Number of change polygons")))

    def _add_advanced(self, parameter):
        """A parameter under "Advanced parameters" (collapsed: the model's values are right)."""
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def cli_labels(self) -> dict:
        """The s2m-geo parameter each dialog parameter sets -> its label, so the CLI's errors
        name what the analyst sees (``{tile_size}`` -> "Tile size")."""
        ids = {
            "model": self.MODEL,
            "tile_size": self.TILE_SIZE,
            "overlap": self.OVERLAP,
            "device": self.DEVICE,
            "min_area": self.MIN_AREA,
            "output": self.OUTPUT,
            "raster": self.OUTPUT_RASTER,
        }
        labels = {}
        for name, pid in ids.items():
            definition = self.parameterDefinition(pid)
            if definition is not None:
                labels[name] = definition.description()
        return labels

    # -- checks -------------------------------------------------------------------------
    def canExecute(self):
        try:
            find_executable()
        except runner.ExecutableNotFound as exc:
            return False, str(exc)
        return True, ""

    def checkParameterValues(self, parameters, context):
        try:
            find_executable()
        except runner.ExecutableNotFound as exc:
            return False, str(exc)
        ok, msg = super().checkParameterValues(parameters, context)
        if ok:
            same = self._same_scenes(parameters, context)
            if same:
                return False, same
        return ok, msg

    def _same_scenes(self, parameters, context):
        """Why the run is refused when pre and post are one file (the dialog puts the active
        layer in both by default), else ''."""
        pre = self.parameterAsRasterLayer(parameters, self.PRE, context)
        post = self.parameterAsRasterLayer(parameters, self.POST, context)
        if pre is None or post is None or not runner.same_file(pre.source(), post.source()):
            return ""
        return self.tr(
            "{0} and {1} are the same file ({2}): there is nothing to compare, so no change could be "
            "found. Choose the scene from before the event as {0} and the one from after it as {1}."
        ).format(
            '"{0}"'.format(self.parameterDefinition(self.PRE).description()),
            '"{0}"'.format(self.parameterDefinition(self.POST).description()),
            pre.source(),
        )

    def _raster_path(self, parameters, name, context):
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                self.tr(
                    "{0}: layer '{1}' is not a GDAL raster (provider '{2}'); s2m-geo reads files "
                    "(GeoTIFF, VRT, ...). Export it to a GeoTIFF first."
                ).format(name, layer.name(), layer.providerType())
            )
        return layer.source()

    @staticmethod
    def _optional_int(alg, parameters, name, context):
        value = parameters.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return alg.parameterAsInt(parameters, name, context)

    def _output_paths(self, parameters, context):
        """(GeoPackage, change raster or None), checked, their folders made."""
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if not out.lower().endswith(".gpkg"):
            raise QgsProcessingException(self.tr("Changes must be a GeoPackage file (.gpkg), got: {0}").format(out))
        raster = self.parameterAsOutputLayer(parameters, self.OUTPUT_RASTER, context) or None
        if not raster:
            _forget_unset_output(context, self.OUTPUT_RASTER)
        elif not raster.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException(
                self.tr("Change raster must be a GeoTIFF file (.tif), got: {0}").format(raster)
            )
        for path in filter(None, (out, raster)):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return out, raster

    # -- run ------------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        try:
            exe = find_executable()
        except runner.ExecutableNotFound as exc:
            raise QgsProcessingException(str(exc)) from None
        pre = self._raster_path(parameters, self.PRE, context)
        post = self._raster_path(parameters, self.POST, context)
        same = self._same_scenes(parameters, context)  # batch mode does not call checkParameterValues
        if same:
            raise QgsProcessingException(same)
        model = self.parameterAsFile(parameters, self.MODEL, context) or None
        if model and not os.path.isfile(model):
            raise QgsProcessingException(self.tr("Model package not found: {0}").format(model))
        tile = self._optional_int(self, parameters, self.TILE_SIZE, context)
        overlap = self._optional_int(self, parameters, self.OVERLAP, context)
        device = DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        min_area = self.parameterAsDouble(parameters, self.MIN_AREA, context)
        out, raster = self._output_paths(parameters, context)

        cmd = runner.build_command(
            exe,
            pre,
            post,
            out,
            model=model,
            raster=raster,
            tile_size=tile,
            overlap=overlap,
            device=device,
            min_area=min_area,
        )
        feedback.pushCommandInfo(" ".join(_quote(a) for a in cmd))
        progress_words = ProgressWords(feedback.pushInfo, raster=bool(raster))

        def on_progress(stage, done, total):
            progress_words(stage, done, total)
            pct = runner.overall_percent(stage, done, total)
            if pct is not None:
                feedback.setProgress(pct)

        def on_error(line):
            # The CLI's own error lines make the failure's message: shown there, once.
            if not line.startswith(CLI_ERROR_PREFIXES):
                feedback.pushConsoleInfo(line)

        result = runner.run_cli(
            cmd,
            outputs=[out, raster, raster_style_path(raster)],
            on_start=lambda pid: feedback.pushDebugInfo("s2m-geo started as process {0}".format(pid)),
            on_progress=on_progress,
            on_message=feedback.pushInfo,
            on_warning=feedback.pushWarning,
            on_output=lambda line: feedback.pushInfo(line) if line.strip() else None,
            on_error=on_error,
            labels=self.cli_labels(),
            is_canceled=feedback.isCanceled,
        )

        if result.canceled:
            for path in result.removed:
                feedback.pushDebugInfo("removed {0}".format(path))
            raise QgsProcessingException(self.tr("Cancelled: s2m-geo was stopped and no output was written."))
        if result.returncode != 0:
            raise QgsProcessingException(self._failure(result))
        if not os.path.isfile(out):
            raise QgsProcessingException(self.tr("s2m-geo finished but wrote no {0}").format(out))

        changes_uri = out + "|layername=changes"
        scenes_uri = out + "|layername=scenes"
        layer = QgsVectorLayer(changes_uri, "changes", "ogr")
        n_changes = layer.featureCount() if layer.isValid() else None
        del layer
        post_name = self.parameterAsRasterLayer(parameters, self.POST, context).name()
        self._load_results(context, out, raster, changes_uri, scenes_uri, post_name)
        feedback.setProgress(100)
        return {self.OUTPUT: out, self.OUTPUT_RASTER: raster, self.SCENES: scenes_uri, self.N_CHANGES: n_changes}

    def _failure(self, result):
        """The message of a failed run, without repeating what the log already shows: the
        CLI's error lines when it wrote any (they were kept out of the log), else only how it
        ended (its other lines are in the log above)."""
        if any(e.startswith(CLI_ERROR_PREFIXES) for e in result.errors):
            return runner.describe_failure(result)
        ended = runner.describe_failure(dataclasses.replace(result, errors=[]))
        return ended + " " + self.tr("What it wrote is in the log above.") if result.errors else ended

    def _load_results(self, context, out, raster, changes_uri, scenes_uri, post_name):
        """Load the GeoPackage's two layers by name (not "the first layer of the file") and the
        change raster, each named after the post scene ("changes — NAME", so the results of
        several runs can be told apart) and given its stored style."""
        layers = dict(context.layersToLoadOnCompletion())
        details = layers.pop(out, None)
        if details is not None:
            vectors = ((changes_uri, self.tr("changes"), self.OUTPUT), (scenes_uri, self.tr("scenes"), self.SCENES))
            for uri, label, output in vectors:
                layers[uri] = QgsProcessingContext.LayerDetails(
                    "", details.project, output, QgsProcessingUtils.LayerHint.Vector
                )
                self._name_and_style(layers[uri], label, post_name)
        if raster in layers:
            self._name_and_style(layers[raster], self.tr("change raster"), post_name)
        context.setLayersToLoadOnCompletion(layers)

    def _name_and_style(self, details, label, post_name):
        details.name = self.tr("{0} — {1}").format(label, post_name)
        details.forceName = True  # not the file's name ("Prefer output filename for layer names")
        details.setPostProcessor(LoadStoredStyle.create())


def _forget_unset_output(context, name):
    """Unregister the optional output ``name`` left empty from loading on completion.

    The batch dialog passes every output as a QgsProcessingOutputLayerDefinition, and QGIS
    registers even an empty one for loading, under the path ''; Processing then reports it
    as a layer that was "not correctly generated" and marks the row as failed.
    """
    layers = dict(context.layersToLoadOnCompletion())
    kept = {path: d for path, d in layers.items() if path or d.outputName != name}
    if len(kept) != len(layers):
        context.setLayersToLoadOnCompletion(kept)


def raster_style_path(raster):
    """The style s2m-geo writes beside the change raster (``NAME.qml``; QGIS's default style
    name for a file), or None without a raster."""
    return os.path.splitext(raster)[0] + ".qml" if raster else None


def _quote(arg: str) -> str:
    """For the log only: the command is run as a list, never through a shell."""
    arg = str(arg)
    return arg if arg and all(c.isalnum() or c in "-_./:=+,@" for c in arg) else "'" + arg.replace("'", "'\\''") + "'"
