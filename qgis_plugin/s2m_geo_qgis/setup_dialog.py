"""The "Set up s2m-geo" window: pick a Python, a folder and what to install, watch pip's log,
and on success the plugin's executable setting is filled. The work is ``setup_env``'s, run in
a QgsTask (QGIS's task manager shows it and can cancel it)."""

import os
import shlex

from qgis.core import QgsApplication, QgsSettings, QgsTask
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QFontDatabase
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
)

from . import runner, setup_env
from .resources import icon


def save_executable(exe: str) -> None:
    """Make ``exe`` the plugin's s2m-geo executable (what the Processing options page shows)."""
    QgsSettings().setValue(runner.SETTINGS_KEY, exe)
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return
    ProcessingConfig.setSettingValue(runner.SETTING_NAME, exe)


class SetupTask(QgsTask):
    """Runs the set-up steps on a worker thread; ``line`` carries the log to the window."""

    line = pyqtSignal(str)
    done = pyqtSignal(object)  # the SetupResult, in the main thread

    def __init__(self, steps):
        super().__init__("Setting up s2m-geo", QgsTask.CanCancel)
        self.steps = steps
        self.result = None

    def run(self):
        self.result = setup_env.run_setup(self.steps, self.line.emit, self.isCanceled)
        return self.result.ok

    def finished(self, ok):  # main thread
        if self.result is None:  # the task manager cancelled it before it started
            self.result = setup_env.SetupResult(ok=False, canceled=True, message="Cancelled before it started.")
        if self.result.ok:
            save_executable(self.result.executable)
        self.done.emit(self.result)


class SetupDialog(QDialog):
    """Pick, set up, watch; on success the setting is filled and the window says so."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.task = None
        self.result = None
        self.setWindowTitle("Set up s2m-geo")
        self.setWindowIcon(icon())
        self.resize(760, 520)
        intro = QLabel(
            "s2m-geo runs in its own Python environment, not QGIS's. This creates that environment, "
            "installs s2m-geo and its dependencies in it with pip (from PyPI: about 1 GB the first "
            "time), and sets the plugin to use it."
        )
        intro.setWordWrap(True)
        self.python = QgsFileWidget()
        self.python.setStorageMode(QgsFileWidget.GetFile)
        self.python.setDialogTitle("Python 3.10 or newer")
        self.env_dir = QgsFileWidget()
        self.env_dir.setStorageMode(QgsFileWidget.GetDirectory)
        self.env_dir.setFilePath(os.path.expanduser(setup_env.DEFAULT_ENV_DIR))
        self.source = QgsFileWidget()
        self.source.setStorageMode(QgsFileWidget.GetFile)
        self.source.setFilter("s2m-geo wheel or sdist (*.whl *.tar.gz *.zip);;All files (*)")
        self.source.setFilePath(setup_env.default_source())
        self.pip_options = QLineEdit()
        self.pip_options.setPlaceholderText("e.g. --no-index --find-links /media/usb/wheels (no internet)")
        python_missing = ""
        try:
            self.python.setFilePath(setup_env.find_python())
        except setup_env.SetupError as exc:
            python_missing = str(exc)
        form = QFormLayout()
        form.addRow("Python", self.python)
        form.addRow("Environment folder", self.env_dir)
        form.addRow("Install from", self.source)
        form.addRow("pip options", self.pip_options)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.setup_button = self.buttons.addButton("Set up", QDialogButtonBox.AcceptRole)
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self.cancel_or_close)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        if python_missing:
            self.show_status(python_missing, ok=False)

    def steps(self):
        """The set-up steps for what the fields say (SetupError naming the field to fix)."""
        python = self.python.filePath().strip()
        env_dir = (
            os.path.abspath(os.path.expanduser(self.env_dir.filePath().strip())) if self.env_dir.filePath() else ""
        )
        source = self.source.filePath().strip()
        setup_env.check_inputs(python, env_dir, source)
        return setup_env.setup_commands(python, env_dir, source, tuple(shlex.split(self.pip_options.text())))

    def start(self):
        """Start the set-up task (returns it), or say in the window why it cannot start."""
        if self.task is not None:
            return self.task
        try:
            steps = self.steps()
        except setup_env.SetupError as exc:
            self.show_status(str(exc), ok=False)
            return None
        except ValueError as exc:  # shlex: an unclosed quote
            self.show_status("pip options: {0}".format(exc), ok=False)
            return None
        self.log.clear()
        self.show_status("Setting up s2m-geo…", ok=None)
        self.setup_button.setEnabled(False)
        self.buttons.button(QDialogButtonBox.Close).setText("Cancel")
        self.task = SetupTask(steps)
        self.task.line.connect(self.log.appendPlainText)
        self.task.done.connect(self.finished)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def finished(self, result):
        self.result = result
        self.task = None
        self.setup_button.setEnabled(True)
        self.buttons.button(QDialogButtonBox.Close).setText("Close")
        if result.ok:
            where = "Settings > Options > Processing > Providers > S2M"
            self.show_status(
                "s2m-geo is set up. The plugin now uses {0} ({1}).".format(result.executable, where), ok=True
            )
        else:
            self.show_status(result.message, ok=False)

    def show_status(self, text, ok):
        colour = {True: "#1a7f37", False: "#b42318", None: ""}[ok]
        self.status.setStyleSheet("color: {0}".format(colour) if colour else "")
        self.status.setText(text)

    def cancel_or_close(self):
        if self.task is not None:
            self.task.cancel()
        else:
            self.reject()
