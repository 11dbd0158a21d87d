"""What a run may write: every output checked against the run's inputs and its other
outputs before any work starts, and claimed for the run's duration (docs/design.md §3.6,
docs/errors.md "Rules").

Two names are one file when the operating system says so for existing files
(``os.path.samefile``: links, hard links, ``..``, case on case-insensitive file systems);
two outputs not written yet are one when their resolved paths differ only in case (the same
file on a case-insensitive file system, and a trap on any other). An output that does not
exist yet cannot be an existing input.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .atomic import sweep_stale
from .errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, names are not claimed
    fcntl = None  # type: ignore[assignment]

__all__ = ["check_output", "check_outputs", "claimed", "lock_path", "same_file"]

PathArg = str | os.PathLike[str] | None
#: Paths by parameter name: a mapping, or (name, path) pairs where one parameter names
#: several files (a single-layer vector output and its ``NAME_scenes.EXT`` sibling).
Named = Mapping[str, PathArg] | Iterable[tuple[str, PathArg]]


def _pairs(named: Named) -> list[tuple[str, Path]]:
    items = named.items() if isinstance(named, Mapping) else named
    return [(name, Path(p)) for name, p in items if p is not None]


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one and the same file (existing or to be written)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        if os.path.exists(a) != os.path.exists(b):
            return False
        return str(Path(a).resolve()).casefold() == str(Path(b).resolve()).casefold()


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse an existing output without ``overwrite`` and an unwritable folder (exit 2)."""
    if path.exists() and not overwrite:
        raise InputError(f"{path}: already exists; pass {{overwrite}} or choose another name", params=("overwrite",))
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{parent}: output folder does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{parent}: output folder is not writable; choose another place")


def check_outputs(outputs: Named, inputs: Named, overwrite: bool = False) -> None:
    """Check a run's outputs (parameter name -> path; None = not asked for): none of them is
    one of the ``inputs`` (parameter name -> path) or another output, each can be written
    (:func:`check_output`). Raises :class:`InputError` naming the parameters."""
    outs, ins = _pairs(outputs), _pairs(inputs)
    for i, (oname, out) in enumerate(outs):
        for iname, inp in ins:
            if same_file(out, inp):
                raise InputError(
                    f"{out}: {{{oname}}} is the {iname} input {inp}; writing it would destroy the input, "
                    f"choose another output name",
                    params=(oname,),
                )
        for other_name, other in outs[:i]:
            if same_file(out, other):
                raise InputError(
                    f"{out}: {{{oname}}} is also the {{{other_name}}} output ({other}); give each output its own name",
                    params=(other_name, oname),
                )
    for _, out in outs:
        check_output(out, overwrite)


def lock_path(final: str | os.PathLike[str]) -> Path:
    """The lock file of an output: ``DIR/.NAME.lock`` (hidden, beside it)."""
    final = Path(final)
    return final.parent / f".{final.name}.lock"


_held: dict[str, tuple[int, int]] = {}  # lock file -> (descriptor, depth): reentrant per process
_held_lock = threading.Lock()


def _claim(final: Path) -> str | None:
    """Take the lock of ``final`` (or deepen ours); the lock's key, None without locking."""
    if fcntl is None:
        return None
    lock = lock_path(final)
    key = str(lock.resolve())
    with _held_lock:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            return key
        for _ in range(5):  # the file may be replaced between our open and our lock: retry
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise InputError(
                    f"{final}: another s2m-geo run (process {owner}) is writing it; wait for it to "
                    f"finish or choose another name"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode("ascii"))
                _held[key] = (fd, 1)
                break
            os.close(fd)
        else:  # pragma: no cover - another process kept swapping the file
            raise InputError(f"{final}: could not lock {lock}; try again")
    sweep_stale(final)  # temporaries of killed runs; ours and live ones stay
    return key


def _release(key: str | None) -> None:
    if key is None:
        return
    with _held_lock:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
            return
        del _held[key]
        try:
            os.unlink(key)  # while still locked: a waiting run then locks a new file
        except OSError:
            pass
        os.close(fd)


@contextmanager
def claimed(outputs: Iterable[str | os.PathLike[str] | None]) -> Iterator[None]:
    """Hold each output's name for this run: a second run that claims one of them meanwhile
    gets an :class:`InputError` instead of replacing our result (or we its). Locks are
    advisory (``flock``), released when the block ends or the process dies; taking one also
    removes the temporaries that killed runs left beside that output."""
    keys: list[str | None] = []
    try:
        for out in outputs:
            if out is not None:
                keys.append(_claim(Path(out)))
        yield
    finally:
        for key in reversed(keys):
            _release(key)
