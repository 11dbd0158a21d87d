"""The "Set up s2m-geo" window and the message that points to it when s2m-geo is missing.

The set-up is tested for real (a venv made by the system's python3, pip run in it) with a
tiny stand-in wheel and ``--no-index --no-deps``: the real stack needs PyPI."""

import sys
import zipfile
from pathlib import Path

import pytest
from harness import PLUGIN_NAME, PLUGIN_PARENT, ROOT, spin_until

PY = "/usr/bin/python3"


def fake_wheel(folder, broken=False):
    """A tiny wheel named s2m-geo whose ``s2m-geo --version`` prints a line (or, ``broken``,
    exits 1 with an error)."""
    path = Path(folder) / "s2m_geo-0.0.1-py3-none-any.whl"
    code = "import sys\ndef main():\n    print('s2m-geo, version 0.0.1 (fake)')\n"
    if broken:
        code = "import sys\ndef main():\n    sys.exit('s2m-geo: error: No module named numpy')\n"
    info = "s2m_geo-0.0.1.dist-info/"
    files = {
        "fake_s2m_geo.py": code,
        info + "METADATA": "Metadata-Version: 2.1\nName: s2m-geo\nVersion: 0.0.1\n",
        info + "WHEEL": "Wheel-Version: 1.0\nGenerator: tests_qgis\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        info + "entry_points.txt": "[console_scripts]\ns2m-geo = fake_s2m_geo:main\n",
    }
    files[info + "RECORD"] = "".join(f"{n},,\n" for n in files) + info + "RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return str(path)


# --- the pure part (setup_env) --------------------------------------------------------------
def test_setup_commands_are_argument_lists_in_order(tmp_path):
    from s2m_geo_qgis import setup_env

    env = str(tmp_path / "env")
    steps = setup_env.setup_commands(PY, env, "/src/s2m_geo_source", ("--no-index", "--find-links", "/w"))
    assert [s.cmd for s in steps] == [
        [PY, "-m", "venv", env],
        [
            env + "/bin/python",
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links",
            "/w",
            "/src/s2m_geo_source",
        ],
        [env + "/bin/s2m-geo", "--version"],
    ]
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # an environment already: reused
    assert [s.cmd[1:3] for s in setup_env.setup_commands(PY, env, "x.whl")] == [["-m", "pip"], ["--version"]]


def test_inputs_are_checked_before_anything_starts(tmp_path):
    from s2m_geo_qgis import setup_env

    whl = fake_wheel(tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    for args, says in (
        (("/nope/python3", str(tmp_path / "e"), whl), "Python: /nope/python3 is not an executable file"),
        ((PY, str(tmp_path / "e"), ""), "Install from: choose an s2m-geo wheel"),
        ((PY, str(tmp_path / "e"), "/nope.whl"), "Install from: /nope.whl does not exist"),
        ((PY, str(full), whl), "holds files and is not a Python environment"),
    ):
        with pytest.raises(setup_env.SetupError, match=says):
            setup_env.check_inputs(*args)
    setup_env.check_inputs(PY, str(tmp_path / "new"), whl)


def test_find_python_takes_a_python_3_10_or_newer_from_path(tmp_path):
    from s2m_geo_qgis import setup_env

    found = setup_env.find_python({"PATH": "/usr/bin"})
    assert setup_env.python_version(found) >= (3, 10)
    old = tmp_path / "python3"
    old.write_text("#!/bin/sh\necho 3.8\n")
    old.chmod(0o755)
    with pytest.raises(setup_env.SetupError) as err:
        setup_env.find_python({"PATH": str(tmp_path)})
    assert "No Python 3.10 or newer" in str(err.value) and f"{old} (3.8)" in str(err.value)
    assert "python3-venv" in str(err.value)


def test_default_source_is_the_bundled_one_else_the_checkout(tmp_path):
    from s2m_geo_qgis import setup_env

    assert setup_env.default_source(str(PLUGIN_PARENT / PLUGIN_NAME)) == str(ROOT)  # a checkout
    plugin = tmp_path / "profile" / "python" / "plugins" / PLUGIN_NAME
    assert setup_env.default_source(str(plugin)) == ""
    src = plugin / setup_env.BUNDLED_SOURCE
    (src / "s2m_geo").mkdir(parents=True)
    (src / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    assert setup_env.default_source(str(plugin)) == str(src)


def test_the_plugin_zip_bundles_the_installable_source(tmp_path):
    import subprocess

    zpath = tmp_path / "p.zip"
    subprocess.run(
        [sys.executable, str(PLUGIN_PARENT / "build_zip.py"), "-o", str(zpath)], check=True, stdout=subprocess.DEVNULL
    )
    names = set(zipfile.ZipFile(zpath).namelist())
    src = PLUGIN_NAME + "/s2m_geo_source/"
    for name in (
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "s2m_geo/__init__.py",
        "s2m_geo/cli/main.py",
        "s2m_geo/weights/s2m_small_cpu.safetensors",
        "s2m_geo/configs/classes/gaza_change.yaml",
    ):
        assert src + name in names, name
    assert not any("__pycache__" in n for n in names)


def test_run_setup_reports_a_failed_step_readably(tmp_path):
    from s2m_geo_qgis import setup_env

    steps = setup_env.setup_commands(PY, str(tmp_path / "env"), str(tmp_path / "not-a-wheel.whl"), ("--no-index",))
    (tmp_path / "not-a-wheel.whl").write_text("no zip")
    lines = []
    result = setup_env.run_setup(steps, lines.append)
    assert not result.ok and not result.executable
    assert result.message.startswith("Installing s2m-geo from " + str(tmp_path / "not-a-wheel.whl"))
    assert "failed (exit code 1):" in result.message and "Traceback" not in result.message
    assert lines[0].startswith("Creating the environment") and lines[-1] == result.message


# --- the window, in QGIS --------------------------------------------------------------------
@pytest.fixture
def setup_dialog(qgis_app, clean_settings):
    from s2m_geo_qgis.setup_dialog import SetupDialog

    dlg = SetupDialog()
    yield dlg
    if dlg.task is not None:
        dlg.task.cancel()
        spin_until(lambda: dlg.task is None, 30)
    dlg.close()


def test_setup_window_installs_into_a_new_environment_and_fills_the_setting(setup_dialog, tmp_path, clean_settings):
    from processing.core.ProcessingConfig import ProcessingConfig
    from s2m_geo_qgis import runner
    from s2m_geo_qgis.base import executable_setting

    dlg = setup_dialog
    assert setup_env_python_ok(dlg.python.filePath())  # found on PATH
    assert dlg.source.filePath() == str(ROOT)  # the checkout the plugin runs from
    env = tmp_path / "s2m env"  # a space in the path: argument lists, no shell
    dlg.python.setFilePath(PY)
    dlg.env_dir.setFilePath(str(env))
    dlg.source.setFilePath(fake_wheel(tmp_path))
    dlg.pip_options.setText("--no-index --no-deps")
    dlg.show()
    dlg.setup_button.click()
    assert dlg.task is not None
    assert spin_until(lambda: dlg.result is not None, 240), dlg.log.toPlainText()
    exe = str(env / "bin" / "s2m-geo")
    assert dlg.result.ok, dlg.result.message
    assert executable_setting() == exe == runner.find_executable(executable_setting())
    if runner.SETTING_NAME in ProcessingConfig.settings:  # what the options page shows
        assert ProcessingConfig.getSetting(runner.SETTING_NAME) == exe
    log = dlg.log.toPlainText()
    assert "Creating the environment" in log and "Successfully installed s2m-geo-0.0.1" in log
    assert "s2m-geo, version 0.0.1 (fake)" in log
    assert "s2m-geo is set up" in dlg.status.text() and exe in dlg.status.text()


def setup_env_python_ok(path):
    from s2m_geo_qgis import setup_env

    return bool(path) and setup_env.python_version(path) >= (3, 10)


def test_setup_window_says_why_it_failed_and_leaves_the_setting(setup_dialog, tmp_path, clean_settings):
    from s2m_geo_qgis.base import executable_setting

    dlg = setup_dialog
    dlg.python.setFilePath(PY)
    dlg.env_dir.setFilePath(str(tmp_path / "env"))
    dlg.source.setFilePath(fake_wheel(tmp_path, broken=True))  # installs, but does not run
    dlg.pip_options.setText("--no-index --no-deps")
    dlg.setup_button.click()
    assert spin_until(lambda: dlg.result is not None, 240), dlg.log.toPlainText()
    assert not dlg.result.ok and executable_setting() == ""
    text = dlg.status.text()
    assert text.startswith("Checking the installed command failed (exit code 1):")
    assert "s2m-geo: error: No module named numpy" in text
    dlg.source.setFilePath("")
    dlg.setup_button.click()  # a field left empty: said at once, nothing started
    assert dlg.task is None and dlg.status.text().startswith("Install from: choose")


# --- the message when s2m-geo is missing -------------------------------------------------------
@pytest.fixture
def no_s2m(clean_settings, monkeypatch, tmp_path):
    monkeypatch.delenv("S2M_GEO_EXECUTABLE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.fixture
def plugin(iface, project):
    from s2m_geo_qgis import classFactory

    p = classFactory(iface)
    p.initGui()
    yield p
    p.unload()


def test_cannot_be_run_message_is_readable_and_its_links_work(plugin, iface, no_s2m):
    """What the toolbox shows (Processing's own MessageDialog, as ProcessingToolbox does):
    the commands on their own lines, and links that open Set up and the settings."""
    from processing.gui.MessageDialog import MessageDialog
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QUrl

    alg = QgsApplication.processingRegistry().createAlgorithmById("s2m:detect_changes")
    ok, message = alg.canExecute()
    assert not ok
    dlg = MessageDialog()
    dlg.setMessage(f"<h3>This algorithm cannot be run :-( </h3>\n{message}")  # Processing's words
    text = dlg.txtMessage.toPlainText()
    lines = text.splitlines()
    assert "python3 -m venv ~/s2m-geo-env" in lines and "~/s2m-geo-env/bin/pip install s2m-geo" in lines
    assert "The s2m-geo command line was not found (no plugin setting, no S2M_GEO_EXECUTABLE, not on PATH)." in lines
    assert any('in Settings > Options > Processing > Providers > S2M > "s2m-geo executable"' in line for line in lines)
    assert "Set up s2m-geo…" in text
    assert plugin.setup_dialog is None
    dlg.txtMessage.anchorClicked.emit(QUrl("s2m-geo:setup"))  # what clicking the link does
    assert plugin.setup_dialog is not None and plugin.setup_dialog.isVisible()
    dlg.txtMessage.anchorClicked.emit(QUrl("s2m-geo:settings"))
    iface.showOptionsDialog.assert_called_once_with(iface.mainWindow(), currentPage="processingOptions")
    dlg.close()


def test_setup_action_is_in_the_plugin_menu(plugin, iface):
    from s2m_geo_qgis.plugin import MENU

    iface.addPluginToMenu.assert_any_call(MENU, plugin.setup_action)
    assert plugin.setup_action.text() == "Set up s2m-geo…"
    plugin.setup_action.trigger()
    assert plugin.setup_dialog.windowTitle() == "Set up s2m-geo"
    action = plugin.setup_action
    plugin.unload()
    iface.removePluginMenu.assert_any_call(MENU, action)
    plugin.initGui()  # for the fixture's unload


def test_dialog_message_bar_offers_setup_and_settings(plugin, no_s2m, monkeypatch):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.PyQt.QtWidgets import QPushButton

    monkeypatch.setattr(AlgorithmDialog, "exec_", lambda self: 0)
    dlg = plugin.create_dialog()
    item = dlg.messageBar().currentItem()
    assert item.title() == "s2m-geo not found" and "not found" in item.text()
    buttons = {b.text(): b for b in item.findChildren(QPushButton)}
    buttons["Set up s2m-geo…"].click()
    assert plugin.setup_dialog is not None and plugin.setup_dialog.isVisible()
    dlg.close()


def test_setup_window_says_at_once_when_no_python_is_found(qgis_app, monkeypatch, tmp_path):
    from s2m_geo_qgis.setup_dialog import SetupDialog

    monkeypatch.setenv("PATH", str(tmp_path))
    dlg = SetupDialog()
    assert dlg.python.filePath() == ""
    assert dlg.status.text().startswith("No Python 3.10 or newer with the venv module was found on PATH")
    dlg.close()
