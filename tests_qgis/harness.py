"""Fixtures for the QGIS plugin tests (loaded by conftest.py): real QGIS 3.22, headless.

Run these under QGIS's Python, never the project's venv (the two stacks cannot share a
process, see qgis_plugin/README.md):

    ./scripts/test_qgis.sh                     # or, by hand:
    S2M_GEO_EXECUTABLE=$(./scripts/venv.sh)/bin/s2m-geo \\
        /usr/bin/python3 -m pytest -c tests_qgis/pytest.ini tests_qgis

``S2M_GEO_EXECUTABLE`` names the real s2m-geo CLI (its own venv); tests that need it fail
in CI (``CI`` set) and skip elsewhere when it is missing.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PARENT = ROOT / "qgis_plugin"
PLUGIN_NAME = "s2m_geo_qgis"
QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # not /usr/bin/qgis_process: Debian's wrapper is broken
PROCESSING_PLUGINS = "/usr/share/qgis/python/plugins"  # `processing`
QGIS_PYTHON = "/usr/share/qgis/python"  # `pyplugin_installer`

# Before any Qt object exists: no display here, and a throwaway QGIS profile.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_runtime = os.environ.setdefault("XDG_RUNTIME_DIR", os.path.join(tempfile.gettempdir(), f"runtime-{os.getuid()}"))
os.makedirs(_runtime, mode=0o700, exist_ok=True)
PROFILE_DIR = tempfile.mkdtemp(prefix="s2m-qgis-profile-")
os.environ["QGIS_CUSTOM_CONFIG_PATH"] = PROFILE_DIR
for p in (QGIS_PYTHON, PROCESSING_PLUGINS, str(PLUGIN_PARENT)):
    if p not in sys.path:
        sys.path.insert(0, p)

import pytest  # noqa: E402

IN_CI = bool(os.environ.get("CI"))
_EXIT_STATUS = {}


# --- exit code 139 ------------------------------------------------------------------------
# QGIS can segfault while it tears down (a layer or provider still alive at exitQgis). The
# pytest summary has been printed by then, so leave right here with pytest's own status:
# a crash at shutdown can turn neither a green run red nor a red run green.
def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if "status" in _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        # the profile made here, and the one qgis.testing.start_app() switched to
        for d in {PROFILE_DIR, os.environ.get("QGIS_CUSTOM_CONFIG_PATH", PROFILE_DIR)}:
            if os.path.basename(d).startswith(("s2m-qgis-profile-", "QGIS-PythonTestConfigPath-")):
                shutil.rmtree(d, ignore_errors=True)
        os._exit(_EXIT_STATUS["status"])


def need(reason):
    """Fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(reason + " (CI is set: the QGIS tests must run)")
    pytest.skip(reason)


# --- QGIS ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def qgis_app():
    from qgis.testing import start_app

    app = start_app(cleanup=False)  # exit handled above
    # processing.* does `from qgis.utils import iface` at import time: install the mock first.
    import qgis.utils
    from qgis.gui import QgsBrowserGuiModel, QgsMessageBar
    from qgis.testing.mocked import get_iface

    iface = get_iface()
    iface.browserModel.return_value = QgsBrowserGuiModel()  # sip rejects a Mock here
    iface.messageBar.return_value = QgsMessageBar()
    iface.activeLayer.return_value = None
    qgis.utils.iface = iface
    from processing.core.Processing import Processing

    Processing.initialize()
    yield app


@pytest.fixture
def iface(qgis_app):
    import qgis.utils

    qgis.utils.iface.reset_mock()  # keeps the return values set above
    return qgis.utils.iface


@pytest.fixture
def provider(qgis_app):
    """The S2M provider, registered for one test (the GUI tests register their own)."""
    from qgis.core import QgsApplication
    from s2m_geo_qgis.provider import S2MProvider

    reg = QgsApplication.processingRegistry()
    prov = S2MProvider()  # keep the reference for the whole test
    assert reg.addProvider(prov)
    yield prov
    if reg.providerById("s2m") is not None:
        reg.removeProvider("s2m")


@pytest.fixture
def project(qgis_app):
    from qgis.core import QgsProject

    QgsProject.instance().removeAllMapLayers()
    yield QgsProject.instance()
    QgsProject.instance().removeAllMapLayers()  # no live layers at exit


@pytest.fixture
def clean_settings(qgis_app):
    """No executable set in the plugin settings (restored afterwards)."""
    from qgis.core import QgsSettings
    from s2m_geo_qgis import runner

    s = QgsSettings()
    old = s.value(runner.SETTINGS_KEY, None)
    s.remove(runner.SETTINGS_KEY)
    yield s
    if old is None:
        s.remove(runner.SETTINGS_KEY)
    else:
        s.setValue(runner.SETTINGS_KEY, old)


class RecordingFeedback:
    """Build a QgsProcessingFeedback that records what the algorithm reports."""

    @staticmethod
    def make():
        from qgis.core import QgsProcessingFeedback

        class _Feedback(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.log = []
                self.progress = []
                self.progressChanged.connect(self.progress.append)

            def pushInfo(self, info):
                self.log.append(("info", info))
                super().pushInfo(info)

            def pushDebugInfo(self, info):
                self.log.append(("debug", info))
                super().pushDebugInfo(info)

            def pushCommandInfo(self, info):
                self.log.append(("command", info))
                super().pushCommandInfo(info)

            def pushWarning(self, warning):
                self.log.append(("warning", warning))
                super().pushWarning(warning)

            def pushConsoleInfo(self, info):
                self.log.append(("console", info))
                super().pushConsoleInfo(info)

            def reportError(self, error, fatalError=False):
                self.log.append(("error", error))
                super().reportError(error, fatalError)

            def text(self):
                return "\n".join(m for _, m in self.log)

            def child_pid(self):
                for _kind, msg in self.log:
                    if msg.startswith("s2m-geo started as process "):
                        return int(msg.rsplit(" ", 1)[1])
                return None

        return _Feedback()


@pytest.fixture
def feedback(qgis_app):
    return RecordingFeedback.make()


# --- the real s2m-geo CLI and small inputs -----------------------------------------------
@pytest.fixture(scope="session")
def cli():
    """The real s2m-geo executable (S2M_GEO_EXECUTABLE)."""
    exe = os.environ.get("S2M_GEO_EXECUTABLE") or shutil.which("s2m-geo")
    if not exe or not os.access(exe, os.X_OK):
        need("S2M_GEO_EXECUTABLE does not name the s2m-geo CLI; run ./scripts/test_qgis.sh")
    return os.path.abspath(exe)


def _cli_python(exe):
    """The interpreter of the CLI's environment (the console script's shebang)."""
    with open(exe, "rb") as f:
        first = f.readline().decode("utf-8", "replace").strip()
    if first.startswith("#!") and "python" in first:
        return first[2:].strip().split()[0]
    return str(Path(exe).with_name("python"))


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory):
    """The CLI's exported models go to a temporary cache, never the user's."""
    os.environ["S2M_GEO_CACHE"] = str(tmp_path_factory.mktemp("s2m-cache"))


def _clean_env():
    from s2m_geo_qgis.runner import clean_env

    return clean_env()


@pytest.fixture(scope="session")
def scene(cli, tmp_path_factory):
    """A 256x256 synthetic pre/post pair written by the CLI (`s2m-geo sample-data`)."""
    out = tmp_path_factory.mktemp("scene")
    subprocess.run(
        [cli, "sample-data", str(out), "--size", "256", "--seed", "0", "--progress", "none"],
        check=True,
        env=_clean_env(),
        stdout=subprocess.DEVNULL,
    )
    return {"pre": str(out / "pre.tif"), "post": str(out / "post.tif")}


TINY_MODEL = """
import sys
from s2m_geo.testing import tiny_model
print(tiny_model(sys.argv[1]))
"""


@pytest.fixture(scope="session")
def tiny_model(cli, tmp_path_factory):
    """A random, tiny S2M package (64-px tiles): a real model that runs in a second."""
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    subprocess.run(
        [_cli_python(cli), "-c", TINY_MODEL, str(path)], check=True, env=_clean_env(), stdout=subprocess.DEVNULL
    )
    return str(path)


CHANGES_FROM_LABEL = """
import sys
from s2m_geo.testing import changes_from_label
changes_from_label(sys.argv[1], sys.argv[2])
"""


@pytest.fixture(scope="session")
def changes(cli, scene, tmp_path_factory):
    """changes.gpkg made from the synthetic scene's label (as predict writes it, no model)."""
    out = tmp_path_factory.mktemp("changes") / "changes.gpkg"
    label = str(Path(scene["pre"]).with_name("label.tif"))
    subprocess.run(
        [_cli_python(cli), "-c", CHANGES_FROM_LABEL, label, str(out)],
        check=True,
        env=_clean_env(),
        stdout=subprocess.DEVNULL,
    )
    return str(out)


FIELD_ALIASES = """
import json
from s2m_geo.classes import load_class_table
from s2m_geo.vector.output import CHANGE_ALIASES, scenes_aliases
print(json.dumps({"changes": CHANGE_ALIASES, "scenes": scenes_aliases(load_class_table())}))
"""


@pytest.fixture(scope="session")
def field_aliases(cli):
    """The aliases s2m-geo gives the fields of ``changes`` and ``scenes`` (their one home,
    s2m_geo.vector.output, read in the CLI's environment), by layer."""
    out = subprocess.run(
        [_cli_python(cli), "-c", FIELD_ALIASES], check=True, env=_clean_env(), capture_output=True, text=True
    ).stdout
    return json.loads(out)


def layer_aliases(layer):
    """What QGIS shows for each field of a vector layer (its alias), the GeoPackage's fid aside."""
    return {f.name(): layer.attributeAlias(i) for i, f in enumerate(layer.fields()) if f.name() != "fid"}


# --- a fake CLI (no torch; fast, scriptable) ----------------------------------------------
FAKE_CLI = r'''#!/usr/bin/python3
"""Stands in for s2m-geo: FAKE_S2M_MODE = ok | warn | hang | fail | crash; records argv/env in FAKE_S2M_LOG."""
import json, os, signal, subprocess, sys, time
argv = sys.argv[1:]
mode = os.environ.get("FAKE_S2M_MODE", "ok")
with open(os.environ["FAKE_S2M_LOG"], "w") as f:
    json.dump({"argv": argv, "env": dict(os.environ), "pid": os.getpid()}, f)
out = argv[argv.index("-o") + 1]
err = sys.stderr
def progress(stage, done, total):
    err.write(json.dumps({"stage": stage, "done": done, "total": total}) + "\n"); err.flush()
if mode == "fail":
    err.write("s2m-geo: error: " + argv[1] + ": not a raster GDAL can read; check the path\n")
    sys.exit(2)
if mode == "crash":
    err.write('Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nRuntimeError: boom\n')
    sys.exit(1)
err.write(json.dumps({"message": "fake model loaded"}) + "\n"); err.flush()
if argv[1] == argv[2]:
    err.write(json.dumps({"warning": argv[1] + " is given as both pre and post"}) + "\n")
    err.flush()
if mode == "warn":
    err.write(json.dumps({"warning": "post overlaps pre by only 40%"}) + "\n")
    err.flush()
if mode == "hang":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a child that will not stop: needs SIGKILL
    d, name = os.path.split(out)
    open(os.path.join(d, "." + name + ".x1y2.partial.gpkg"), "w").write("half")
    open(os.path.join(d, "." + name + ".k9.partial.tif"), "w").write("half")
    grandchild = subprocess.Popen(["sleep", "300"])
    with open(os.environ["FAKE_S2M_LOG"] + ".grandchild", "w") as f:
        f.write(str(grandchild.pid))
    for i in range(1, 1000):
        progress("infer", i, 1000)
        time.sleep(0.05)
    sys.exit(0)
for i in range(1, 5):
    progress("infer", i, 4)
progress("write", 1, 1)
progress("vectorize", 1, 1)
open(out, "w").write("")
print(out + ": fake run, 0 change polygons")
'''


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    """A scriptable stand-in CLI, set as S2M_GEO_EXECUTABLE; returns (path, log path)."""
    exe = tmp_path / "bin" / "s2m-geo"
    exe.parent.mkdir()
    exe.write_text(FAKE_CLI)
    exe.chmod(0o755)
    log = tmp_path / "fake.json"
    monkeypatch.setenv("S2M_GEO_EXECUTABLE", str(exe))
    monkeypatch.setenv("FAKE_S2M_LOG", str(log))
    monkeypatch.setenv("FAKE_S2M_MODE", "ok")

    class Fake:
        path = str(exe)
        log_path = log

        @staticmethod
        def record():
            return json.loads(log.read_text())

    return Fake


def qgis_process_env(plugin_parent, profile):
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile), QGIS_PLUGINPATH=str(plugin_parent))
    env.pop("PYTHONPATH", None)
    return env


def spin_until(pred, timeout: float) -> bool:
    """Run Qt's event loop until ``pred()`` holds or ``timeout`` seconds pass; its last value."""
    from qgis.PyQt.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)
    return pred()
