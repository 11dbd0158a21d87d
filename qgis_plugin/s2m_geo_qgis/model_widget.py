"""The "Model package" field of the prediction dialogs: a file picker for ``.safetensors`` and
``.onnx`` alike, with what the chosen model is (its change classes, tile size) written under
it, from ``s2m-geo model-info --json`` run in the background (QProcess: the dialog never waits).

Processing builds it from the parameter's ``widget_wrapper`` metadata (see
``S2MAlgorithm.add_model_parameter``). In the batch table the description is the cell's
tooltip; in the graphical modeler it is QGIS's own widget, which can take model inputs.
"""

import json
import os

from processing.gui.wrappers import DIALOG_BATCH, DIALOG_MODELER, WidgetWrapper, dialogTypes
from qgis.gui import QgsFileWidget, QgsGui
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QProcess, QProcessEnvironment
from qgis.PyQt.QtWidgets import QLabel, QVBoxLayout, QWidget

from . import runner
from .base import find_executable

#: What a model is, by (path, size, mtime): model-info reads the whole package once.
_CACHE: dict = {}


class ModelWidgetWrapper(WidgetWrapper):
    """File picker + the model's description (standard dialog: a label under it)."""

    def __new__(cls, param, dialog, row=0, col=0, **kwargs):
        if dialogTypes.get(dialog.__class__.__name__) == DIALOG_MODELER:
            # QGIS's own modeler widget (static value, model input or expression): Processing
            # takes whatever this returns as the wrapper, and __init__ is skipped for it.
            return QgsGui.processingGuiRegistry().createModelerParameterWidget(
                dialog.model, dialog.childId, param, dialog.context
            )
        return super().__new__(cls)

    def createWidget(self, **kwargs):  # noqa: N802 - QGIS's name
        self.process = None
        self.pending = None
        self.file = QgsFileWidget()
        self.file.setStorageMode(QgsFileWidget.GetFile)
        self.file.setFilter(self.parameterDefinition().fileFilter())
        self.file.setDialogTitle(self.parameterDefinition().description())
        self.info = QLabel()
        self.info.setObjectName("s2mModelInfo")
        self.info.setWordWrap(True)
        self.file.fileChanged.connect(self.describe)
        if self.dialogType == DIALOG_BATCH:
            self.describe("")
            return self.file
        widget = QWidget()
        layout = QVBoxLayout(widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.file)
        layout.addWidget(self.info)
        self.describe("")
        return widget

    def setValue(self, value):  # noqa: N802 - QGIS's name
        self.file.setFilePath("" if value is None else str(value))

    def value(self):
        path = self.file.filePath().strip()
        return path or None

    # -- the description ------------------------------------------------------------------
    def show_info(self, text, error=False):
        self.info.setText(text)
        self.info.setStyleSheet("color: #b42318" if error else "color: #4a4a4a")
        self.file.setToolTip(text)

    def describe(self, path):
        """Say what the model at ``path`` is (empty: the default model), in the background."""
        path = (path or "").strip()
        if path and not os.path.isfile(path):
            self.show_info("No such file: {0}".format(path), error=True)
            return
        key = _key(path)
        if key in _CACHE:
            self.show_info(*_CACHE[key])
            return
        try:
            exe = find_executable()
        except runner.ExecutableNotFound:
            self.show_info("What the model is shows here once s2m-geo is set up (Plugins > S2M change detection).")
            return
        if self.process is not None:  # a newer choice: the running look-up is ignored
            self.pending = path
            return
        self.show_info("Reading the model…")
        cmd = runner.build_model_info_command(exe, path or None)
        process = QProcess(self.file)
        env = QProcessEnvironment()
        for k, v in runner.clean_env().items():
            env.insert(k, v)
        process.setProcessEnvironment(env)
        process.finished.connect(lambda code, status: self._done(process, path, code))
        process.errorOccurred.connect(lambda err: self._failed_to_start(process, path, err))
        self.process = process
        process.start(cmd[0], cmd[1:])

    def _gone(self, process):
        """The dialog was closed and deleted (its QProcess with it, which still reports)."""
        return sip.isdeleted(process) or sip.isdeleted(self.file) or sip.isdeleted(self.info)

    def _failed_to_start(self, process, path, err):
        if self._gone(process):
            return
        if err == QProcess.FailedToStart:
            self._finish(process, path, ("s2m-geo could not be started: " + process.errorString(), True), cache=False)

    def _done(self, process, path, code):
        if self._gone(process):
            return
        out = bytes(process.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(process.readAllStandardError()).decode("utf-8", "replace")
        if code == 0:
            try:
                text = runner.describe_model(json.loads(out))
                if not path:
                    text = "Default model: " + text
                self._finish(process, path, (text, False))
                return
            except (ValueError, AttributeError, TypeError):
                pass
        lines = [line for line in err.splitlines() if line.strip()]
        self._finish(
            process, path, (lines[-1] if lines else "s2m-geo model-info failed (exit code {0})".format(code), True)
        )

    def _finish(self, process, path, shown, cache=True):
        if cache:
            _CACHE[_key(path)] = shown
        if process is self.process:
            self.process = None
            process.deleteLater()
        pending, self.pending = self.pending, None
        if pending is not None and pending != path:
            self.describe(pending)
        elif self.value() == (path or None):
            self.show_info(*shown)


def _key(path):
    if not path:
        return ("", 0, 0)
    try:
        st = os.stat(path)
    except OSError:
        return (path, 0, 0)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)
