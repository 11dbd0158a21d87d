"""Find and run the ``s2m-geo`` command line from QGIS, without importing anything from it.

QGIS's own Python cannot import s2m-geo's stack (numpy 2 / GDAL / GEOS wheels clash with the
libraries QGIS links), so the plugin runs ``s2m-geo predict ... --progress json`` in a child
process of the s2m-geo environment and reads its progress lines. This module has no QGIS
imports, so it can be used and tested on its own.

Where the executable comes from, first match wins:

1. the plugin setting (QGIS Settings > Options > Processing > Providers > S2M, stored in
   QgsSettings under :data:`SETTINGS_KEY`);
2. the ``S2M_GEO_EXECUTABLE`` environment variable;
3. ``s2m-geo`` on ``PATH``.

A setting or variable that names a missing file is an error, not a reason to look further.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

SETTING_NAME = "S2M_GEO_EXECUTABLE"
#: QgsSettings key of the plugin setting (what Processing's options dialog writes).
SETTINGS_KEY = "Processing/Configuration/" + SETTING_NAME
ENV_VAR = "S2M_GEO_EXECUTABLE"
EXECUTABLE_NAME = "s2m-geo"

#: What "Set up s2m-geo" is called in the plugin's menu (setup_dialog.py, over setup_env.py).
SETUP_ACTION = "Plugins > S2M change detection > Set up s2m-geo…"
INSTALL_HINT = (
    f"Easiest: {SETUP_ACTION} creates its environment from the copy bundled with the plugin\n"
    "and sets the plugin up to use it.\n\n"
    "Or install s2m-geo yourself, in its own Python environment (not QGIS's Python):\n"
    "    python3 -m venv ~/s2m-geo-env\n"
    "    ~/s2m-geo-env/bin/pip install s2m-geo\n"
    "(from a source checkout: ./scripts/venv.sh, which prints the environment's folder).\n"
    "Then set the executable, ~/s2m-geo-env/bin/s2m-geo (Windows: Scripts\\s2m-geo.exe), in\n"
    'Settings > Options > Processing > Providers > S2M > "s2m-geo executable",\n'
    "or in the S2M_GEO_EXECUTABLE environment variable, or put it on PATH."
)

#: Seconds a cancelled child gets to clean up after SIGTERM before it is killed.
TERMINATE_GRACE_S = 5.0

# Variables that would make the child's Python or its GDAL/PROJ wheels load QGIS's copies.
_DROP_EXACT = {
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "PROJ_LIB",
    "PROJ_DATA",
    "PYTHONPATH",
    "PYTHONHOME",
    "SIP_API_ARGS",
    "__PYVENV_LAUNCHER__",
    "DYLD_LIBRARY_PATH",
    "DYLD_FALLBACK_LIBRARY_PATH",
    "DYLD_FRAMEWORK_PATH",
}
_DROP_PREFIXES = ("PYTHON", "QGIS_")


class ExecutableNotFound(Exception):
    """No usable ``s2m-geo`` executable; the message says how to install and configure it."""


def same_file(a: str, b: str) -> bool:
    """Whether two layer sources are one file (links and ``..`` resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _usable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_executable(setting: Optional[str] = None, environ: Optional[dict] = None) -> str:
    """The absolute path of the ``s2m-geo`` executable, or :class:`ExecutableNotFound`."""
    environ = os.environ if environ is None else environ
    setting = (setting or "").strip()
    if setting:
        path = os.path.expanduser(setting)
        if _usable(path):
            return os.path.abspath(path)
        raise ExecutableNotFound(
            f"The s2m-geo executable set in the plugin settings does not exist or is not "
            f"executable: {setting}\nFix it in QGIS Settings > Options > Processing > Providers > "
            f"S2M, or clear it to use S2M_GEO_EXECUTABLE or PATH.\n\n{INSTALL_HINT}"
        )
    env_value = (environ.get(ENV_VAR) or "").strip()
    if env_value:
        path = os.path.expanduser(env_value)
        if _usable(path):
            return os.path.abspath(path)
        raise ExecutableNotFound(
            f"{ENV_VAR} names a file that does not exist or is not executable: {env_value}\n\n{INSTALL_HINT}"
        )
    found = shutil.which(EXECUTABLE_NAME, path=environ.get("PATH", os.defpath))
    if found:
        return os.path.abspath(found)
    raise ExecutableNotFound(
        f"The s2m-geo command line was not found (no plugin setting, no {ENV_VAR}, not on PATH).\n\n{INSTALL_HINT}"
    )


def message_html(text: str) -> str:
    """A plain-text message (such as :data:`INSTALL_HINT`) as HTML, for the places where QGIS
    shows a message as HTML and plain newlines vanish (the toolbox's "cannot be run" box):
    blank lines separate paragraphs, a run of indented lines (commands) becomes a ``<pre>``
    block, other lines are joined and wrapped by the reader."""
    import html

    out = []
    for para in text.strip().split("\n\n"):
        kind, lines = None, []  # a run of command lines ("pre") or of text lines ("p")
        for line in para.split("\n") + [None]:
            this = None if line is None else ("pre" if line.startswith("    ") else "p")
            if this != kind and lines:
                out.append(f"<{kind}>" + ("\n" if kind == "pre" else " ").join(lines) + f"</{kind}>")
                lines = []
            if line is not None:
                kind = this
                lines.append(html.escape(line.strip()))
    return "\n".join(out)


def clean_env(environ: Optional[dict] = None) -> dict:
    """The environment for the child: QGIS's Python, GDAL and PROJ settings removed."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k not in _DROP_EXACT and not k.startswith(_DROP_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def build_command(
    exe: str,
    pre: str,
    post: str,
    output: str,
    *,
    model: Optional[str] = None,
    raster: Optional[str] = None,
    tile_size: Optional[int] = None,
    overlap: Optional[int] = None,
    device: str = "auto",
    min_area: float = 0.0,
) -> list:
    """The argument list of ``s2m-geo predict`` (never a shell string)."""
    cmd = [exe, "predict", pre, post, "-o", output]
    if raster:
        cmd += ["--raster", raster]
    if model:
        cmd += ["--model", model]
    if tile_size is not None:
        cmd += ["--tile-size", str(int(tile_size))]
    if overlap is not None:
        cmd += ["--overlap", str(int(overlap))]
    cmd += ["--device", device, "--min-area", repr(float(min_area)), "--overwrite", "--progress", "json"]
    return cmd


def build_model_info_command(exe: str, model: Optional[str] = None) -> list:
    """The argument list of ``s2m-geo model-info --json`` (no ``model``: the default model)."""
    return [exe, "model-info", *([model] if model else []), "--json"]


def describe_model(meta: dict) -> str:
    """One short paragraph on what a model is, from ``model-info --json``: its classes (the
    changes it can find) and its tile size and overlap."""
    table = meta.get("class_table") or {}
    names = [str(c.get("name", "?")).replace("_", " ") for c in table.get("classes", []) if c.get("id") != 0]
    tile, overlap = meta.get("tile_size"), meta.get("default_overlap")
    classes = f"{len(names)} change classes ({table.get('name', '?')}): " + ", ".join(names)
    return f"{classes}\ntile {tile} px, overlap {overlap} px, architecture {meta.get('architecture', '?')}"


def build_zones_command(
    exe: str,
    changes: str,
    output: str,
    *,
    zones: Optional[str] = None,
    field: Optional[str] = None,
    grid: Optional[str] = None,
    classes: Optional[str] = None,
) -> list:
    """The argument list of ``s2m-geo zones`` (never a shell string): ``zones`` (a file) with
    an optional name ``field``, or a ``grid`` such as ``3x3``; the CLI checks that exactly one
    of them is given."""
    cmd = [exe, "zones", changes]
    if zones:
        cmd.append(zones)
    cmd += ["-o", output]
    if field:
        cmd += ["--field", field]
    if grid:
        cmd += ["--grid", grid]
    if classes:
        cmd += ["--classes", classes]
    cmd += ["--overwrite", "--progress", "json"]
    return cmd


def build_batch_command(
    exe: str,
    output: str,
    *,
    manifest: Optional[str] = None,
    pre_dir: Optional[str] = None,
    post_dir: Optional[str] = None,
    pattern: Optional[str] = None,
    model: Optional[str] = None,
    workers: Optional[int] = None,
    tile_size: Optional[int] = None,
    overlap: Optional[int] = None,
    device: str = "auto",
    min_area: float = 0.0,
) -> list:
    """The argument list of ``s2m-geo batch`` (never a shell string): a ``manifest`` or the
    two folders ``pre_dir`` and ``post_dir`` (with an optional file ``pattern``); the CLI
    checks that exactly one of them is given. No ``--overwrite``: scenes already complete in
    the output folder are skipped (resume). The manifest comes last, after ``--``, so no file
    name can be read as an option."""
    cmd = [exe, "batch", "-o", output]
    if pre_dir:
        cmd += ["--pre-dir", pre_dir]
    if post_dir:
        cmd += ["--post-dir", post_dir]
    if pattern:
        cmd += ["--pattern", pattern]
    if model:
        cmd += ["--model", model]
    if workers is not None:
        cmd += ["--workers", str(int(workers))]
    if tile_size is not None:
        cmd += ["--tile-size", str(int(tile_size))]
    if overlap is not None:
        cmd += ["--overlap", str(int(overlap))]
    cmd += ["--device", device, "--min-area", repr(float(min_area)), "--progress", "json"]
    if manifest:
        cmd += ["--", manifest]
    return cmd


#: Share of the whole run each CLI stage covers (start, end), in percent.
STAGE_SPAN = {"infer": (0.0, 90.0), "write": (90.0, 95.0), "vectorize": (95.0, 100.0)}


def overall_percent(stage: str, done: float, total: float) -> Optional[float]:
    """Progress of the whole run for one ``{"stage", "done", "total"}`` line."""
    try:
        frac = float(done) / float(total)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not frac == frac or float(total) < 0:  # NaN or nonsense: ignore the line
        return None
    frac = min(max(frac, 0.0), 1.0)
    start, end = STAGE_SPAN.get(stage, (0.0, 100.0))
    return start + frac * (end - start)


#: Where the scenes of a batch end, in percent; the rest is the merged layers and the reports.
BATCH_SCENES_END = 95.0


class BatchPercent:
    """Progress of a whole ``s2m-geo batch`` from its ``scenes`` and ``tiles`` lines.

    The finished scenes count first; the tiles done since the last scene finished fill in
    the step to the next one (not further: several scenes may run at once). The tile total
    grows as scenes start, so the tiles alone would go backwards; the percent never does.
    Call it with each line; it returns the percent, or None for a line it does not use.
    """

    def __init__(self) -> None:
        self.scenes = (0.0, 0.0)  # finished, total
        self.tiles = (0.0, 0.0)  # done, total (of the scenes started so far)
        self.tiles_at_scene = 0.0  # tiles done when the last scene finished
        self.last = 0.0

    def __call__(self, stage: str, done: float, total: float) -> Optional[float]:
        try:
            done, total = float(done), float(total)
        except (TypeError, ValueError):
            return None
        if not (done == done and total == total) or total < 0 or done < 0:  # NaN or nonsense
            return None
        if stage == "scenes":
            if total == 0:
                return None
            self.scenes = (min(done, total), total)
            self.tiles_at_scene = self.tiles[0]
        elif stage == "tiles":
            self.tiles = (min(done, total), total)
        else:
            return None
        finished, n = self.scenes
        if n == 0:
            return None
        running = self.tiles[1] - self.tiles_at_scene
        step = (self.tiles[0] - self.tiles_at_scene) / running if running > 0 and finished < n else 0.0
        pct = BATCH_SCENES_END * min((finished + min(max(step, 0.0), 1.0)) / n, 1.0)
        self.last = max(self.last, pct)
        return self.last


@dataclass
class RunResult:
    returncode: Optional[int]
    canceled: bool = False
    errors: list = field(default_factory=list)  # plain-text stderr lines (the CLI's messages)
    stdout: list = field(default_factory=list)
    pid: Optional[int] = None
    removed: list = field(default_factory=list)  # leftovers deleted after a cancel or failure


def _snapshot(paths: Iterable[str]) -> dict:
    """What is at each output path and which temp siblings exist, before the run."""
    snap = {}
    for p in paths:
        path = Path(p)
        try:
            st = path.stat()
            snap[str(path)] = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            snap[str(path)] = None
        snap[("siblings", str(path))] = set(_temp_siblings(path))
    return snap


# The CLI's temporary names (s2m_geo/atomic.py, whose tests hold this copy equal to it):
# ``.NAME.<random>.partial.EXT`` beside ``NAME``, and staging folders ``.NAME.<random>.partial``.
PARTIAL_MARK = ".partial"


def temp_prefix(path: Path) -> str:
    """The start of every temporary name the CLI uses for ``path``: ``.NAME.``."""
    return f".{Path(path).name}."


def _temp_siblings(path: Path) -> list:
    """The CLI's temporary files for ``path`` beside it."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    prefix = temp_prefix(path)
    return [str(path.parent / n) for n in names if n.startswith(prefix) and PARTIAL_MARK in n]


def remove_leftovers(snapshot: dict, paths: Iterable[str]) -> list:
    """Delete outputs this run created or replaced and the temp files it left; return them."""
    removed = []
    for p in paths:
        path = Path(p)
        before = snapshot.get(str(path))
        try:
            st = path.stat()
            now = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            now = None
        if now is not None and now != before and path.is_file():
            try:
                path.unlink()
                removed.append(str(path))
            except OSError:
                pass
        for sib in _temp_siblings(path):
            if sib not in snapshot.get(("siblings", str(path)), set()):
                try:
                    os.unlink(sib)
                    removed.append(sib)
                except OSError:
                    pass
    return removed


def _exited_unreaped(pid: int) -> bool:
    """Has ``pid`` exited? Does not reap it, so its process group id stays reserved."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_tree(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the child's process group (the CLI cleans up on it), SIGKILL after ``grace``.

    Whatever is left in the group (the child's own children) is killed too. The child is
    reaped only at the end, so the group id cannot have been reused by then.
    """
    if proc.returncode is not None:
        return
    if os.name != "posix":
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.wait()
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    if hasattr(os, "waitid"):
        deadline = time.monotonic() + grace
        while not _exited_unreaped(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:  # macOS: no waitid; wait() reaps, a tiny window for group id reuse remains
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _start(cmd: list, env: Optional[dict]) -> subprocess.Popen:
    """Start the CLI in its own process group (so cancel stops it and all it started)."""
    kwargs = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True
    else:
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(
            subprocess, "CREATE_NO_WINDOW", 0
        )
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env() if env is None else env,
        shell=False,
        **kwargs,
    )


def _wait_exit(proc: subprocess.Popen, is_canceled: Callable[[], bool], grace: float, poll_s: float) -> bool:
    """Its streams closed, the child is exiting: wait for it; True when canceled meanwhile."""
    while proc.poll() is None:
        if is_canceled():
            _kill_tree(proc, grace)
            return True
        time.sleep(poll_s)
    return False


#: ``{name}`` in an error's template stands for the parameter ``name``; the same rule as
#: ``s2m_geo.errors`` (tested equal), which this module cannot import.
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def render_error(event: dict, labels: Optional[dict] = None) -> str:
    """The text of a ``{"error": ...}`` line, its parameters named by ``labels`` (parameter
    name -> the dialog's label) where given, else by the CLI's flag."""
    template, params = event.get("template"), event.get("params")
    if not isinstance(template, str) or not isinstance(params, dict):
        return str(event.get("error", ""))
    labels = labels or {}

    def name(m):
        p = m.group(1)
        if p not in params:
            return m.group(0)
        return '"{0}"'.format(labels[p]) if p in labels else str(params[p])

    return PLACEHOLDER.sub(name, template)


def _dispatch_event(line: str, on_progress, on_message, on_warning, on_error_event=None) -> bool:
    """Send one stderr line of the CLI's JSON progress protocol to its callback; False when
    the line is not such an event (then it is plain text, e.g. a traceback)."""
    if not line.startswith("{"):
        return False
    try:
        event = json.loads(line)
    except ValueError:
        return False
    if not isinstance(event, dict):
        return False
    if "stage" in event:
        on_progress(str(event["stage"]), event.get("done", 0), event.get("total", 0))
    elif "message" in event:
        on_message(str(event["message"]))
    elif "warning" in event:
        on_warning(str(event["warning"]))
    elif "error" in event and on_error_event is not None:
        on_error_event(event)
    else:
        return False
    return True


def run_cli(
    cmd: list,
    *,
    outputs: Iterable[str] = (),
    on_progress: Callable[[str, float, float], None] = lambda s, d, t: None,
    on_message: Callable[[str], None] = lambda m: None,
    on_warning: Optional[Callable[[str], None]] = None,
    on_output: Callable[[str], None] = lambda line: None,
    on_error: Callable[[str], None] = lambda line: None,
    on_start: Callable[[int], None] = lambda pid: None,
    labels: Optional[dict] = None,
    is_canceled: Callable[[], bool] = lambda: False,
    env: Optional[dict] = None,
    grace: Optional[float] = None,
    poll_s: float = 0.1,
    ok_codes: Iterable[int] = (0,),
) -> RunResult:
    """Run ``cmd`` and report its ``--progress json`` lines; stop it when ``is_canceled()``.

    stderr JSON lines go to ``on_progress(stage, done, total)``, ``on_message(text)`` or
    ``on_warning(text)`` (default: ``on_message``); the CLI's errors (``{"error": ...}``,
    their parameters named by ``labels``, see :func:`render_error`) and any other stderr
    line to ``on_error``; stdout lines to ``on_output``.
    On cancel the child's process group is terminated (then killed) and, like after a
    failure (an exit code not in ``ok_codes``), every output this run created and every temp
    file it left is removed.
    """
    outputs = [str(o) for o in outputs if o]
    on_warning = on_warning or on_message
    grace = TERMINATE_GRACE_S if grace is None else grace
    snap = _snapshot(outputs)
    proc = _start(cmd, env)
    result = RunResult(returncode=None, pid=proc.pid)
    on_start(proc.pid)
    lines: "queue.Queue" = queue.Queue()

    def on_error_event(event):
        text = "s2m-geo: error: " + render_error(event, labels)
        result.errors.append(text)
        on_error(text)

    def pump(stream, name):
        try:
            for raw in iter(stream.readline, b""):
                lines.put((name, raw.decode("utf-8", errors="replace").rstrip("\r\n")))
        finally:
            stream.close()
            lines.put((name, None))

    readers = [
        threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True),
    ]
    for t in readers:
        t.start()
    open_streams = 2
    try:
        while open_streams:
            if is_canceled():
                result.canceled = True
                _kill_tree(proc, grace)
                break
            try:
                name, line = lines.get(timeout=poll_s)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
                continue
            if name == "out":
                result.stdout.append(line)
                on_output(line)
                continue
            if not _dispatch_event(line, on_progress, on_message, on_warning, on_error_event) and line.strip():
                result.errors.append(line)
                on_error(line)
        if not result.canceled:
            result.canceled = _wait_exit(proc, is_canceled, grace, poll_s)
    except BaseException:
        _kill_tree(proc, grace)
        remove_leftovers(snap, outputs)
        raise
    result.returncode = proc.wait()
    for t in readers:
        t.join(timeout=2)
    if result.canceled or result.returncode not in tuple(ok_codes):
        result.removed = remove_leftovers(snap, outputs)
    return result


def describe_failure(result: RunResult) -> str:
    """A one-paragraph reason for a failed run, from the CLI's own error lines."""
    msgs = [e for e in result.errors if e.startswith(("s2m-geo:", "Error:"))]
    detail = "\n".join((msgs or result.errors)[-5:]).strip()
    code = result.returncode
    if code is not None and code < 0:
        how = f"was stopped by signal {-code}"
    else:
        how = f"failed (exit code {code})"
    return f"s2m-geo {how}" + (f":\n{detail}" if detail else ".")


__all__ = [
    "BatchPercent",
    "ENV_VAR",
    "ExecutableNotFound",
    "INSTALL_HINT",
    "RunResult",
    "SETTINGS_KEY",
    "SETUP_ACTION",
    "SETTING_NAME",
    "build_batch_command",
    "build_command",
    "build_model_info_command",
    "build_zones_command",
    "clean_env",
    "describe_failure",
    "describe_model",
    "find_executable",
    "message_html",
    "overall_percent",
    "remove_leftovers",
    "render_error",
    "run_cli",
]
