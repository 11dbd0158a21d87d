"""What a batch did: one outcome per scene, and the batch's result and exit code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import S2MError
from .manifest import SceneJob


class ScenesFailed(S2MError):
    """Some scenes of a batch failed (the others completed): exit code 3."""

    exit_code = 3


@dataclass
class SceneOutcome:
    """What became of one scene: ``done`` (made in this run), ``skipped`` (already complete)
    or ``failed`` (with ``error``)."""

    job: SceneJob
    status: str
    error: str | None = None
    marker: dict[str, Any] | None = None
    seconds: float = 0.0
    worker: str | None = None

    @property
    def scene_id(self) -> str:
        return self.job.scene_id

    @property
    def complete(self) -> bool:
        return self.status in ("done", "skipped")


@dataclass
class BatchResult:
    """What :func:`run_batch` did."""

    out_dir: Path
    outcomes: list[SceneOutcome]
    merged: Path | None
    reports: list[Path]
    seconds: float
    model: str
    source: str | None = None
    #: ``batch --zones``: one dict per zone (``ZoneSummary.to_dict``), else None.
    zones: list[dict[str, Any]] | None = None
    #: Why the merged layers could not be written (e.g. the disk is full), else None.
    merge_error: str | None = None
    #: Why a report could not be written (the disk filled up), else None.
    report_error: str | None = None

    @property
    def failed(self) -> list[SceneOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every scene is complete, merged and reported, 3 when some failed (or the
        merge or a report did)."""
        return ScenesFailed.exit_code if self.failed or self.merge_error or self.report_error else 0
