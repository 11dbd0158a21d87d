"""What a run may write: every output checked against the run's inputs and its other
outputs, before any work starts (docs/design.md §3.6, docs/errors.md "Rules").

Two names are one file when the operating system says so for existing files
(``os.path.samefile``: links, hard links, ``..``, case on case-insensitive file systems);
two outputs not written yet are one when their resolved paths differ only in case (the same
file on a case-insensitive file system, and a trap on any other). An output that does not
exist yet cannot be an existing input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import InputError

__all__ = ["check_output", "check_outputs", "same_file"]

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
