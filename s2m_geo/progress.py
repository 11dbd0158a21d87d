"""Progress reporting (docs/design.md §3.5): a bar on a terminal, JSON lines for machines.

``--progress json`` writes one object per line to stderr, e.g.
``{"stage": "infer", "done": 12, "total": 96}``; the QGIS plugin reads these.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TextIO

MODES = ("auto", "bar", "json", "none")


class Progress:
    """Reports ``(stage, done, total)`` in the chosen mode; use as a context manager."""

    def __init__(self, mode: str = "auto", stream: TextIO | None = None):
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "none"
        self.mode = mode
        self._bar = None
        self._stage: str | None = None

    def update(self, stage: str, done: int, total: int) -> None:
        """Record that ``done`` of ``total`` units of ``stage`` are finished."""
        if self.mode == "json":
            self.stream.write(json.dumps({"stage": stage, "done": int(done), "total": int(total)}) + "\n")
            self.stream.flush()
        elif self.mode == "bar":
            from tqdm import tqdm

            if stage != self._stage or self._bar is None:
                self._close_bar()
                self._bar = tqdm(total=total, desc=stage, file=self.stream, leave=True, dynamic_ncols=True)
                self._stage = stage
            bar = self._bar
            assert bar is not None
            bar.total = total
            bar.n = done
            bar.refresh()

    def callback(self, stage: str) -> Callable[[int, int], None]:
        """A ``(done, total)`` callback bound to one stage."""
        return lambda done, total: self.update(stage, done, total)

    def message(self, text: str) -> None:
        """A status line: plain text for humans, ``{"message": ...}`` in JSON mode."""
        if self.mode == "json":
            self.stream.write(json.dumps({"message": text}) + "\n")
            self.stream.flush()
        elif self.mode == "bar":
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)

    def warning(self, text: str) -> None:
        """A warning: ``{"warning": ...}`` in JSON mode, else ``warning: ...`` on stderr
        (in every mode: a warning is never silenced by ``--progress none``)."""
        if self.mode == "json":
            self.stream.write(json.dumps({"warning": text}) + "\n")
            self.stream.flush()
        elif self.mode == "bar":
            from tqdm import tqdm

            tqdm.write(f"warning: {text}", file=self.stream)
        else:
            self.stream.write(f"warning: {text}\n")
            self.stream.flush()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        self._close_bar()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
