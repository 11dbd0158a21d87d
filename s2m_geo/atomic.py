"""The one way s2m-geo writes a file: under a temporary name beside it, then ``os.replace``
(and :func:`sha256_file`, the content hash that records of written files key on).

A reader never sees a half-written output, and an interrupted run leaves only temporary
names, which :func:`is_partial` recognises (``s2m-geo batch`` sweeps them; the QGIS runner
keeps its own copy of :data:`PARTIAL_MARK` and the name pattern, tested equal to this one).

The temporary name of ``DIR/NAME.EXT`` is ``DIR/.NAME.EXT.<pid>.<random>.partial.EXT``:
hidden, starting with ``.NAME.``, holding ``.partial``, and ending in the final extension, so
GDAL and OGR choose the same driver for it as for the final name; ``<pid>`` is the writing
process, so :func:`sweep_stale` can remove what a killed run left without touching the files
of a live one.

Within :func:`published_together`, publishing is held back and done for all of a run's
outputs at the end of the block, or for none: a run that fails, is interrupted or is killed
before the end leaves no output under a final name. A published file gets the
permissions of a normally created one (``0o666 & ~umask``); the umask is read without
changing it (``os.umask`` can only be read by setting it, which would briefly give every
other thread of the process — Dask workers write files — a umask of 0).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

PARTIAL_MARK = ".partial"


def temp_prefix(final: str | Path) -> str:
    """The start of every temporary name of ``final``: ``.NAME.``."""
    return f".{Path(final).name}."


def is_partial(name: str) -> bool:
    """Whether a file or folder name is a temporary name of this module."""
    return name.startswith(".") and PARTIAL_MARK in name


def _own_prefix(final: Path) -> str:
    return f"{temp_prefix(final)}{os.getpid()}."


#: The most digits of a process id (Linux: pid_max is at most 2**22) and the length of the
#: random part ``tempfile`` puts into a name.
_PID_DIGITS, _RANDOM_CHARS = 7, 8


def temp_name_bytes(final_name: str) -> int:
    """The longest the temporary name of a file named ``final_name`` can be, in bytes (what
    file systems limit: a temporary needs room beside the final name)."""
    suffix = Path(final_name).suffix
    longest = f".{final_name}.{'9' * _PID_DIGITS}.{'x' * _RANDOM_CHARS}{PARTIAL_MARK}{suffix}"
    return len(longest.encode("utf-8", "surrogatepass"))


def temp_path(final: str | Path, create: bool = True) -> Path:
    """A new unique temporary name beside ``final`` (an empty file when ``create``)."""
    final = Path(final)
    fd, name = tempfile.mkstemp(prefix=_own_prefix(final), suffix=PARTIAL_MARK + final.suffix, dir=final.parent)
    os.close(fd)
    if not create:
        os.unlink(name)
    return Path(name)


def temp_dir(final: str | Path) -> Path:
    """A new hidden staging folder beside ``final`` (the same name pattern)."""
    final = Path(final)
    return Path(tempfile.mkdtemp(prefix=_own_prefix(final), suffix=PARTIAL_MARK, dir=final.parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale(final: str | Path) -> list[Path]:
    """Remove the temporary files and folders of ``final`` that a process no longer running
    left behind (killed, or the machine went down); those of live processes stay."""
    final = Path(final)
    prefix = temp_prefix(final)
    removed: list[Path] = []
    try:
        names = os.listdir(final.parent)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and is_partial(name)):
            continue
        pid = name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            discard(final.parent / name)
            removed.append(final.parent / name)
    return removed


#: The files held back by the innermost :func:`published_together` of this thread.
_HELD: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("s2m_geo_held", default=None)


@contextmanager
def published_together() -> Iterator[None]:
    """Hold back every :func:`publish` in this block and publish them all at its end, or none.

    If the block raises, the held-back files are removed. If the renames at the end are
    interrupted, the outputs already renamed are removed again. A nested block joins the
    outer one. (Per thread: a Dask worker thread publishes immediately.)
    """
    if _HELD.get() is not None:
        yield
        return
    held: list[tuple[Path, Path]] = []
    token = _HELD.set(held)
    try:
        yield
    except BaseException:
        _HELD.reset(token)
        discard(*(tmp for tmp, _ in held))
        raise
    _HELD.reset(token)
    done: list[Path] = []
    try:
        for tmp, final in held:
            os.replace(tmp, final)
            done.append(final)
    except BaseException:
        discard(*done, *(tmp for tmp, _ in held))
        raise


def current_umask() -> int:
    """The process umask, read without changing it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # elsewhere: the mode a new file actually gets tells the umask's file bits
    probe = Path(tempfile.gettempdir()) / f".s2m-umask-{uuid.uuid4().hex}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return 0o666 & ~os.fstat(fd).st_mode & 0o777
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def file_mode() -> int:
    """The permissions of a normally created file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


@contextmanager
def published_now() -> Iterator[None]:
    """Publish immediately within this block, also inside :func:`published_together`: for
    files that are not a run's outputs but are read during it (caches, notes)."""
    token = _HELD.set(None)
    try:
        yield
    finally:
        _HELD.reset(token)


def publish(tmp: str | Path, final: str | Path) -> Path:
    """Give ``tmp`` a normal file's permissions and rename it to ``final`` (atomic); within
    :func:`published_together`, at the end of that block."""
    os.chmod(tmp, file_mode())
    held = _HELD.get()
    if held is not None:
        held.append((Path(tmp), Path(final)))
    else:
        os.replace(tmp, final)
    return Path(final)


def discard(*paths: str | Path | None) -> None:
    """Remove temporary files or folders (missing ones are fine); a file held back for
    :func:`published_together` belongs to that block and stays."""
    held = {tmp for tmp, _ in _HELD.get() or ()}
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p in held:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


@contextmanager
def atomic_path(final: str | Path, create: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; publish it there when the block succeeds,
    remove it when the block raises."""
    tmp = temp_path(final, create=create)
    try:
        yield tmp
        publish(tmp, final)
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:  # a full disk on write(): say where
            raise OSError(exc.errno, exc.strerror or str(exc), str(final)) from exc
        raise
    finally:
        discard(tmp)  # a no-op once published (or held back for published_together)


def write_bytes(final: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically (flushed to disk before the rename)."""
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(final)


def write_text(final: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``final`` atomically."""
    return write_bytes(final, text.encode("utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's content, read in chunks (what done markers and caches key on)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json(final: str | Path, data: Any) -> Path:
    """Write ``data`` as indented UTF-8 JSON to ``final`` atomically."""
    return write_text(final, json.dumps(data, indent=2, ensure_ascii=False))
