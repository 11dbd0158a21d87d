"""The one way s2m-geo writes a file: under a temporary name beside it, then ``os.replace``
(and :func:`sha256_file`, the content hash that records of written files key on).

A reader never sees a half-written output, and an interrupted run leaves only temporary
names, which :func:`is_partial` recognises (``s2m-geo batch`` sweeps them; the QGIS runner
keeps its own copy of :data:`PARTIAL_MARK` and the name pattern, tested equal to this one).

The temporary name of ``DIR/NAME.EXT`` is ``DIR/.NAME.EXT.<random>.partial.EXT``: hidden,
starting with ``.NAME.``, holding ``.partial``, and ending in the final extension, so GDAL and
OGR choose the same driver for it as for the final name. A published file gets the
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
from pathlib import Path
from typing import Any

PARTIAL_MARK = ".partial"


def temp_prefix(final: str | Path) -> str:
    """The start of every temporary name of ``final``: ``.NAME.``."""
    return f".{Path(final).name}."


def is_partial(name: str) -> bool:
    """Whether a file or folder name is a temporary name of this module."""
    return name.startswith(".") and PARTIAL_MARK in name


def temp_path(final: str | Path, create: bool = True) -> Path:
    """A new unique temporary name beside ``final`` (an empty file when ``create``)."""
    final = Path(final)
    fd, name = tempfile.mkstemp(prefix=temp_prefix(final), suffix=PARTIAL_MARK + final.suffix, dir=final.parent)
    os.close(fd)
    if not create:
        os.unlink(name)
    return Path(name)


def temp_dir(final: str | Path) -> Path:
    """A new hidden staging folder beside ``final`` (the same name pattern)."""
    final = Path(final)
    return Path(tempfile.mkdtemp(prefix=temp_prefix(final), suffix=PARTIAL_MARK, dir=final.parent))


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


def publish(tmp: str | Path, final: str | Path) -> Path:
    """Give ``tmp`` a normal file's permissions and rename it to ``final`` (atomic)."""
    os.chmod(tmp, file_mode())
    os.replace(tmp, final)
    return Path(final)


def discard(*paths: str | Path | None) -> None:
    """Remove temporary files or folders (missing ones are fine)."""
    for p in paths:
        if p is None:
            continue
        p = Path(p)
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
    finally:
        discard(tmp)


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
