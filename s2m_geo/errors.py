"""Errors the command line turns into one-line messages and exit codes (docs/design.md §3.7).

An error about a parameter says which one: its message is a template in which ``{name}``
stands for the parameter ``name`` (a keyword of the Python API, e.g. ``tile_size``), listed
in ``params``. Each front end renders the placeholders in its own words — the command line
as its flag (``--tile-size``), the QGIS algorithm as the parameter's label — and
``str(error)`` keeps the Python name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


class S2MError(Exception):
    """Base class for expected failures of s2m-geo."""

    exit_code = 1


class InputError(S2MError):
    """Bad usage or bad input: the message names the file or parameter and the fix (exit 2).

    ``params`` names the parameters the message is about; ``{name}`` in ``message`` marks
    where each is mentioned (only listed names are placeholders, so a file name with braces
    in it is left alone).
    """

    exit_code = 2

    def __init__(self, message: str, *, params: Iterable[str] = ()) -> None:
        self.template = message
        self.params = tuple(params)
        super().__init__(self.render())

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each parameter named as ``names[param]`` (default: ``param``)."""
        names = names or {}
        params = set(self.params)

        def name(m: re.Match[str]) -> str:
            p = m.group(1)
            return names.get(p, p) if p in params else m.group(0)

        return PLACEHOLDER.sub(name, self.template)
