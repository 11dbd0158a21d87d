"""The Processing algorithm "Detect changes (batch, S2M)" (``s2m:batch``): ``s2m-geo batch``."""

import json
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices, QGuiApplication

from . import runner
from .algorithm import DetectChangesAlgorithm, LoadStoredStyle
from .base import DEVICES, S2MAlgorithm

#: What ``s2m-geo batch`` writes into its output folder (s2m_geo.batch.layout.MERGED_NAME, the reports).
MERGED_NAME = "all_changes.gpkg"
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
#: ``s2m-geo batch``'s exit code when some scenes failed and the others completed.
SOME_SCENES_FAILED = 3
#: Qt platforms without a screen: no browser is opened from them (tests, qgis_process).
HEADLESS_PLATFORMS = ("offscreen", "minimal")


def _given(value):
    """Whether a parameter value is set (not None, not an empty string)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def can_open_urls():
    """Whether this QGIS has a screen to open the report on (not qgis_process, not offscreen)."""
    app = QGuiApplication.instance()
    return app is not None and QGuiApplication.platformName() not in HEADLESS_PLATFORMS


def failed_scenes(report):
    """``(scene_id, error)`` of each failed scene of a batch's report.json data."""
    return [(s.get("scene_id"), s.get("error")) for s in report.get("scenes", []) if s.get("status") == "failed"]


class BatchProgressWords:
    """Says in the log how far the batch is, from its ``scenes`` lines: how many scenes there
    are, each one that finished, and the merged layers and reports at the end."""

    def __init__(self, push, tr):
        self.push = push
        self.tr = tr
        self.finished = None

    def __call__(self, stage, done, total):
        if stage != "scenes":
            return
        try:
            done, total = int(done), int(total)
        except (TypeError, ValueError):
            return
        if done == self.finished:
            return
        if self.finished is None and done == 0:
            self.push(self.tr("{0} scene pairs to run").format(total))
        elif done:
            self.push(self.tr("Scene {0} of {1} finished").format(done, total))
        if done >= total:
            self.push(self.tr("Merging the changes of all scenes and writing the report"))
        self.finished = done


class BatchAlgorithm(S2MAlgorithm):
    MANIFEST = "MANIFEST"
    PRE_DIR = "PRE_DIR"
    POST_DIR = "POST_DIR"
    PATTERN = "PATTERN"
    MODEL = "MODEL"
    MIN_AREA = "MIN_AREA"
    OPEN_REPORT = "OPEN_REPORT"
    WORKERS = "WORKERS"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"
    CHANGES = "CHANGES"
    SCENES = "SCENES"
    N_DONE = "N_DONE"
    N_FAILED = "N_FAILED"
    HELP_ANCHOR = "s2m-geo-batch--many-scene-pairs"
    CLI_PARAMS = {
        "manifest": MANIFEST,
        "pre_dir": PRE_DIR,
        "post_dir": POST_DIR,
        "pattern": PATTERN,
        "model": MODEL,
        "min_area": MIN_AREA,
        "workers": WORKERS,
        "tile_size": TILE_SIZE,
        "overlap": OVERLAP,
        "device": DEVICE,
        "out_dir": OUTPUT,
    }

    def name(self):
        return "batch"

    def displayName(self):
        return self.tr("Detect changes (batch, S2M)")

    def tags(self):
        return self.tr(
            "batch,many,scenes,folder,manifest,report,change,damage,s2m,masks can talk,building,destroyed"
        ).split(",")

    def shortHelpString(self):
        return self.tr(
            "Finds and describes change in many scene pairs at once, by running:\n\n"
            "<code>s2m-geo batch MANIFEST -o FOLDER</code>\n"
            "<code>s2m-geo batch --pre-dir PRE --post-dir POST --pattern '*.tif' -o FOLDER</code>\n\n"
            "Give either a <b>Manifest</b> (CSV with the header scene_id,pre,post[,pre_date,post_date], "
            "or YAML; relative paths are relative to the manifest) or a <b>Pre-scene folder</b> and a "
            "<b>Post-scene folder</b>, whose files matching the <b>File pattern</b> are paired by name; "
            "not both.\n\n"
            "The output folder gets, per scene, SCENE.gpkg, SCENE_changes.tif and a quicklook, and for "
            "the whole batch all_changes.gpkg (the changes and scenes layers of every complete scene, "
            "loaded styled by class as 'changes — batch FOLDER' and 'scenes — batch FOLDER') and "
            "report.md, report.html and report.json (per scene and in total: change polygons and "
            "areas by class, the scenes' sentences, the failed scenes with their errors). The HTML "
            "report opens at the end when <b>Open the report when done</b> is checked.\n\n"
            "A scene that fails (an unreadable file, footprints that do not overlap, a file without "
            "a partner) does not stop the others: the algorithm finishes with a warning naming it. "
            "Scenes already complete in the output folder are skipped, so running again after a "
            "failure or a cancel finishes the rest.\n\n"
            "Model package: a .safetensors package or ONNX model; empty = s2m-geo's default model. "
            "Minimum area drops smaller change polygons (m²). Advanced parameters: the number of "
            "worker processes (empty: one per CPU core, at most one per 2 GiB of memory), tile size "
            "and overlap (empty = the model's) and the device."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterFile(
                self.MANIFEST,
                self.tr("Manifest (CSV or YAML: scene_id, pre, post)"),
                behavior=QgsProcessingParameterFile.File,
                optional=True,
                fileFilter=self.tr("Manifest (*.csv *.yaml *.yml *.txt);;All files (*)"),
            )
        )
        for pid, label in (
            (self.PRE_DIR, self.tr("Pre-scene folder (instead of a manifest)")),
            (self.POST_DIR, self.tr("Post-scene folder (files named as in the pre-scene folder)")),
        ):
            self.addParameter(
                QgsProcessingParameterFile(pid, label, behavior=QgsProcessingParameterFile.Folder, optional=True)
            )
        self.addParameter(
            QgsProcessingParameterString(
                self.PATTERN, self.tr("File pattern of the scenes in the folders"), defaultValue="*.tif", optional=True
            )
        )
        self.add_model_parameter()
        self.add_min_area_parameter()
        self.add_advanced(
            QgsProcessingParameterNumber(
                self.WORKERS,
                self.tr("Worker processes (empty: one per CPU core)"),
                type=QgsProcessingParameterNumber.Integer,
                defaultValue=None,
                optional=True,
                minValue=1,
            )
        )
        self.add_tiling_parameters()
        self.addParameter(
            QgsProcessingParameterBoolean(self.OPEN_REPORT, self.tr("Open the report when done"), defaultValue=True)
        )
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputFile(self.REPORT, self.tr("Report (HTML)")))
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                self.CHANGES, self.tr("Changes of all scenes"), QgsProcessing.TypeVectorPolygon
            )
        )
        self.addOutput(
            QgsProcessingOutputVectorLayer(self.SCENES, self.tr("Scenes of the batch"), QgsProcessing.TypeVectorPolygon)
        )
        self.addOutput(QgsProcessingOutputNumber(self.N_DONE, self.tr("Scenes complete")))
        self.addOutput(QgsProcessingOutputNumber(self.N_FAILED, self.tr("Scenes failed")))

    # -- checks -------------------------------------------------------------------------
    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS's name
        missing = self.missing_executable()
        if missing:
            return False, missing
        why = self._which_scenes(parameters)
        if why:
            return False, why
        return super().checkParameterValues(parameters, context)

    def _label(self, pid):
        return '"{0}"'.format(self.parameterDefinition(pid).description())

    def _which_scenes(self, parameters):
        """Why the scenes are not given as exactly one manifest or two folders, else ''."""
        manifest = _given(parameters.get(self.MANIFEST))
        pre, post = _given(parameters.get(self.PRE_DIR)), _given(parameters.get(self.POST_DIR))
        if manifest and (pre or post):
            return self.tr("Give either a {0} or the two folders ({1}, {2}), not both.").format(
                self._label(self.MANIFEST), self._label(self.PRE_DIR), self._label(self.POST_DIR)
            )
        if not manifest and not (pre or post):
            return self.tr("No scenes: give a {0} or the two folders ({1}, {2}).").format(
                self._label(self.MANIFEST), self._label(self.PRE_DIR), self._label(self.POST_DIR)
            )
        if not manifest and not (pre and post):
            return self.tr("{0} and {1} go together: give both folders (or a {2} instead).").format(
                self._label(self.PRE_DIR), self._label(self.POST_DIR), self._label(self.MANIFEST)
            )
        return ""

    # -- run ------------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        exe = self.executable()
        why = self._which_scenes(parameters)  # batch mode does not call checkParameterValues
        if why:
            raise QgsProcessingException(why)
        manifest = self.parameterAsFile(parameters, self.MANIFEST, context) or None
        pre_dir = self.parameterAsFile(parameters, self.PRE_DIR, context) or None
        post_dir = self.parameterAsFile(parameters, self.POST_DIR, context) or None
        pattern = (self.parameterAsString(parameters, self.PATTERN, context) or "").strip() or None
        model = self.parameterAsFile(parameters, self.MODEL, context) or None
        if model and not os.path.isfile(model):
            raise QgsProcessingException(self.tr("Model package not found: {0}").format(model))
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not out:
            raise QgsProcessingException(self.tr("{0} is not set.").format(self._label(self.OUTPUT)))
        out = os.path.abspath(out)

        optional_int = DetectChangesAlgorithm._optional_int
        cmd = runner.build_batch_command(
            exe,
            out,
            manifest=os.path.abspath(manifest) if manifest else None,
            pre_dir=pre_dir if manifest is None else None,
            post_dir=post_dir if manifest is None else None,
            pattern=pattern if manifest is None else None,
            model=model,
            workers=optional_int(self, parameters, self.WORKERS, context),
            tile_size=optional_int(self, parameters, self.TILE_SIZE, context),
            overlap=optional_int(self, parameters, self.OVERLAP, context),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            min_area=self.parameterAsDouble(parameters, self.MIN_AREA, context),
        )
        words = BatchProgressWords(feedback.pushInfo, self.tr)
        percent = runner.BatchPercent()

        def on_progress(stage, done, total):
            words(stage, done, total)
            pct = percent(stage, done, total)
            if pct is not None:
                feedback.setProgress(pct)

        # No outputs to clean up after a failure or a cancel: the folder is the batch's own
        # (it resumes from the scenes already complete), and the CLI removes its temp files.
        result = self.run_command(
            cmd,
            [],
            feedback,
            ok_codes=(0, SOME_SCENES_FAILED),
            on_start=lambda pid: feedback.pushDebugInfo("s2m-geo started as process {0}".format(pid)),
            on_progress=on_progress,
            on_output=lambda line: feedback.pushInfo(line) if line.strip() else None,
        )
        report = self._read_report(out)
        failed = failed_scenes(report)
        n_done = int(report.get("complete", 0))
        merged = os.path.join(out, MERGED_NAME)
        if failed:
            lines = "\n".join("  {0}: {1}".format(sid, err) for sid, err in failed)
            summary = self.tr("{0} of {1} scenes failed (see the report; running again retries only them):").format(
                len(failed), len(report.get("scenes", []))
            )
            if not n_done or not os.path.isfile(merged):
                raise QgsProcessingException(
                    self.tr("Every scene failed:")
                    + "\n"
                    + lines
                    + "\n"
                    + self.tr("Report: {0}").format(os.path.join(out, REPORT_HTML))
                )
            feedback.pushWarning(summary + "\n" + lines)
        elif result.returncode == SOME_SCENES_FAILED:
            feedback.pushWarning(self.tr("s2m-geo says some scenes failed; see the report."))
        if not os.path.isfile(merged):
            raise QgsProcessingException(self.tr("s2m-geo finished but wrote no {0}").format(merged))

        changes_uri = merged + "|layername=changes"
        scenes_uri = merged + "|layername=scenes"
        self._load_results(context, out, changes_uri, scenes_uri)
        self._report = os.path.join(out, REPORT_HTML)
        self._open_report = self.parameterAsBoolean(parameters, self.OPEN_REPORT, context)
        feedback.pushInfo(self.tr("Report: {0}").format(self._report))
        feedback.setProgress(100)
        return {
            self.OUTPUT: out,
            self.REPORT: self._report,
            self.CHANGES: changes_uri,
            self.SCENES: scenes_uri,
            self.N_DONE: n_done,
            self.N_FAILED: len(failed),
        }

    def _read_report(self, out):
        path = os.path.join(out, REPORT_JSON)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise QgsProcessingException(
                self.tr("s2m-geo finished but its report {0} cannot be read: {1}").format(path, exc)
            ) from None

    def _load_results(self, context, out, changes_uri, scenes_uri):
        """Load all_changes.gpkg's two layers by name, named after the output folder
        ("changes — batch FOLDER") and with the styles the CLI stored. Only a run that loads
        its results (the dialog, runAndLoadResults) uses this; processing.run does not."""
        folder = os.path.basename(out.rstrip(os.sep)) or out
        layers = dict(context.layersToLoadOnCompletion())
        for uri, label, output in (
            (changes_uri, self.tr("changes"), self.CHANGES),
            (scenes_uri, self.tr("scenes"), self.SCENES),
        ):
            details = QgsProcessingContext.LayerDetails(
                self.tr("{0} — batch {1}").format(label, folder),
                context.project(),
                output,
                QgsProcessingUtils.LayerHint.Vector,
            )
            details.forceName = True
            details.setPostProcessor(LoadStoredStyle.create())
            layers[uri] = details
        context.setLayersToLoadOnCompletion(layers)

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802 - QGIS's name
        """Open the HTML report (on the main thread, where QGIS calls this), when asked and
        when there is a screen to open it on."""
        report = getattr(self, "_report", None)
        if report and getattr(self, "_open_report", False):
            if can_open_urls():
                if not QDesktopServices.openUrl(QUrl.fromLocalFile(report)):
                    feedback.pushWarning(self.tr("Could not open the report: {0}").format(report))
            else:
                feedback.pushInfo(self.tr("No screen to open the report on: {0}").format(report))
        return {}

    def cancelled_message(self):
        return self.tr(
            "Cancelled: s2m-geo was stopped. The scenes it had finished stay in the output folder; "
            "running again with the same folder skips them."
        )
