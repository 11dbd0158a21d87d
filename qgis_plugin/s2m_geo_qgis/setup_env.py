"""The "Set up s2m-geo" action: make s2m-geo's own Python environment and install it there, without QGIS.

The steps are argument lists built by :func:`setup_commands` (pure) and run one after the
other by :func:`run_setup` through ``runner.run_cli`` (same clean environment, process group
and cancel as a prediction). No QGIS imports: ``setup_dialog.py`` is the window around it.

What gets installed, first match wins (:func:`default_source`): the source that
``build_zip.py`` bundles in the plugin (``s2m_geo_source/``), else the source checkout the
plugin runs from; or a wheel, sdist or source folder the user picks. pip fetches the
dependencies (torch, rasterio, ...) from PyPI, or from wherever the pip options point
(``--no-index --find-links DIR`` for a machine without internet).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import runner

#: The oldest Python s2m-geo runs on (pyproject.toml's requires-python).
MIN_PYTHON = (3, 10)
#: Where build_zip.py puts the project's source inside the plugin folder.
BUNDLED_SOURCE = "s2m_geo_source"
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ENV_DIR = os.path.join("~", "s2m-geo-env")
_VERSION_CODE = "import sys, venv; print('%d.%d' % sys.version_info[:2])"


class SetupError(Exception):
    """Why the environment cannot be set up; the message says what to change."""


@dataclass
class Step:
    """One command of the set-up, with the words the log shows before it."""

    title: str
    cmd: list


@dataclass
class SetupResult:
    ok: bool
    executable: str = ""
    message: str = ""  # on failure: which step failed and its last lines
    canceled: bool = False
    log: list = field(default_factory=list)


def python_version(python: str) -> Optional[tuple]:
    """(major, minor) of ``python`` when it runs and has ``venv``, else None."""
    try:
        out = subprocess.run(
            [python, "-c", _VERSION_CODE],
            capture_output=True,
            text=True,
            timeout=30,
            env=runner.clean_env(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        major, minor = out.stdout.strip().split(".")
        return int(major), int(minor)
    except ValueError:
        return None


def python_candidates(environ: Optional[dict] = None) -> list:
    """Python interpreters on PATH that could host s2m-geo, newest name first."""
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", os.defpath)
    names = [f"python3.{m}" for m in range(14, MIN_PYTHON[1] - 1, -1)] + ["python3", "python"]
    found = []
    for name in names:
        exe = shutil.which(name, path=path)
        if exe and os.path.realpath(exe) not in {os.path.realpath(f) for f in found}:
            found.append(exe)
    return found


def find_python(environ: Optional[dict] = None) -> str:
    """The first Python >= 3.10 with ``venv`` on PATH, or :class:`SetupError`."""
    seen = []
    for exe in python_candidates(environ):
        version = python_version(exe)
        if version is not None and version >= MIN_PYTHON:
            return exe
        seen.append(f"{exe} ({'%d.%d' % version if version else 'does not run or has no venv module'})")
    raise SetupError(
        "No Python {0}.{1} or newer with the venv module was found on PATH{2}.\n"
        "Install one (Debian/Ubuntu: sudo apt install python3 python3-venv; Windows/macOS: "
        "python.org), or choose its python executable here.".format(
            *MIN_PYTHON, (": " + ", ".join(seen)) if seen else ""
        )
    )


def default_source(plugin_dir: str = PLUGIN_DIR) -> str:
    """The s2m-geo source bundled with the plugin, else the checkout it runs from, else ''."""
    for folder in (os.path.join(plugin_dir, BUNDLED_SOURCE), os.path.dirname(os.path.dirname(plugin_dir))):
        if _is_s2m_source(folder):
            return folder
    return ""


def _is_s2m_source(folder: str) -> bool:
    pyproject = os.path.join(folder, "pyproject.toml")
    if not os.path.isfile(pyproject) or not os.path.isdir(os.path.join(folder, "s2m_geo")):
        return False
    with open(pyproject, encoding="utf-8") as f:
        return 'name = "s2m-geo"' in f.read()


def env_python(env_dir: str) -> str:
    """The interpreter of the environment at ``env_dir``."""
    if os.name == "nt":
        return os.path.join(env_dir, "Scripts", "python.exe")
    return os.path.join(env_dir, "bin", "python")


def env_executable(env_dir: str) -> str:
    """The ``s2m-geo`` command that pip installs in the environment at ``env_dir``."""
    if os.name == "nt":
        return os.path.join(env_dir, "Scripts", "s2m-geo.exe")
    return os.path.join(env_dir, "bin", runner.EXECUTABLE_NAME)


def check_inputs(python: str, env_dir: str, source: str) -> None:
    """:class:`SetupError` naming the field to fix, before anything is started."""
    if not python or not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise SetupError(f"Python: {python or '(empty)'} is not an executable file; choose python3 (3.10 or newer).")
    if not source:
        raise SetupError("Install from: choose an s2m-geo wheel (.whl), sdist (.tar.gz) or source folder.")
    if not os.path.exists(source):
        raise SetupError(f"Install from: {source} does not exist.")
    if not env_dir:
        raise SetupError("Environment folder: choose a folder for s2m-geo's environment.")
    if os.path.isdir(env_dir) and os.listdir(env_dir) and not os.path.isfile(os.path.join(env_dir, "pyvenv.cfg")):
        raise SetupError(
            f"Environment folder: {env_dir} holds files and is not a Python environment; choose an empty or new folder."
        )


def setup_commands(python: str, env_dir: str, source: str, pip_options: tuple = ()) -> list:
    """The steps that set s2m-geo up in ``env_dir`` (argument lists, never shell strings):
    create the environment with ``python`` unless it is one already, pip-install ``source``
    (with ``pip_options`` before it), then run the installed ``s2m-geo --version``."""
    steps = []
    if not os.path.isfile(os.path.join(env_dir, "pyvenv.cfg")):
        steps.append(Step(f"Creating the environment {env_dir}", [python, "-m", "venv", env_dir]))
    steps.append(
        Step(
            f"Installing s2m-geo from {source} (with its dependencies: this downloads about 1 GB the first time)",
            [env_python(env_dir), "-m", "pip", "install", "--disable-pip-version-check", *pip_options, source],
        )
    )
    steps.append(Step("Checking the installed command", [env_executable(env_dir), "--version"]))
    return steps


def run_setup(
    steps: list,
    on_line: Callable[[str], None] = lambda line: None,
    is_canceled: Callable[[], bool] = lambda: False,
) -> SetupResult:
    """Run ``steps`` in turn, each line of their output to ``on_line``; stop at the first
    that fails (its last lines in the result's message) or at a cancel."""
    result = SetupResult(ok=False)

    def say(line):
        result.log.append(line)
        on_line(line)

    for step in steps:
        say(step.title + "…")
        say("$ " + shlex.join(step.cmd))
        try:
            run = runner.run_cli(step.cmd, on_output=say, on_error=say, is_canceled=is_canceled)
        except OSError as exc:
            result.message = f"{step.title} failed: {step.cmd[0]} could not be started ({exc.strerror or exc})."
            say(result.message)
            return result
        if run.canceled:
            result.canceled = True
            result.message = f"Cancelled while {step.title[0].lower() + step.title[1:]}."
            say(result.message)
            return result
        if run.returncode != 0:
            tail = "\n".join(line for line in run.errors[-8:] if line.strip())
            result.message = f"{step.title} failed (exit code {run.returncode})" + (f":\n{tail}" if tail else ".")
            say(result.message)
            return result
    result.ok = True
    result.executable = os.path.abspath(steps[-1].cmd[0])
    say(f"s2m-geo is set up: {result.executable}")
    return result


__all__ = [
    "BUNDLED_SOURCE",
    "DEFAULT_ENV_DIR",
    "MIN_PYTHON",
    "SetupError",
    "SetupResult",
    "Step",
    "check_inputs",
    "default_source",
    "env_executable",
    "env_python",
    "find_python",
    "python_candidates",
    "python_version",
    "run_setup",
    "setup_commands",
]
