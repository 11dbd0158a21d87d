"""The Processing algorithm "Detect changes (S2M)" (``s2m:detect_changes``)."""

import collections
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from . import runner
from .base import DEVICES, S2MAlgorithm


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


class DetectChangesAlgorithm(S2MAlgorithm):
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
    CLI_PARAMS = {
        "model": MODEL,
        "tile_size": TILE_SIZE,
        "overlap": OVERLAP,
        "device": DEVICE,
        "min_area": MIN_AREA,
        "output": OUTPUT,
        "raster": OUTPUT_RASTER,
    }

    def name(self):
        return "detect_changes"

    def displayName(self):
        return self.tr("Detect changes (S2M)")

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

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.PRE, self.tr("Pre scene (before)")))
        self.addParameter(QgsProcessingParameterRasterLayer(self.POST, self.tr("Post scene (after)")))
        self.add_model_parameter()
        self.add_tiling_parameters()
        self.add_min_area_parameter()
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

    # -- checks -------------------------------------------------------------------------
    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS's name
        missing = self.missing_executable()
        if missing:
            return False, missing
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
        exe = self.executable()
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
        progress_words = ProgressWords(feedback.pushInfo, raster=bool(raster))

        def on_progress(stage, done, total):
            progress_words(stage, done, total)
            pct = runner.overall_percent(stage, done, total)
            if pct is not None:
                feedback.setProgress(pct)

        self.run_command(
            cmd,
            [out, raster, raster_style_path(raster)],
            feedback,
            on_start=lambda pid: feedback.pushDebugInfo("s2m-geo started as process {0}".format(pid)),
            on_progress=on_progress,
            on_output=lambda line: feedback.pushInfo(line) if line.strip() else None,
        )
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
