"""Resume: is a scene's earlier output complete for this job, and the clean-up of what
interrupted runs left behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import discard, is_partial, sha256_file
from .layout import MARKER_VERSION, scene_files
from .manifest import SceneJob
from .produce import BatchSettings, input_change


def verify_scene(job: SceneJob, settings: BatchSettings) -> tuple[dict[str, Any] | None, str]:
    """(marker, "") when the scene's outputs are complete for this job, else (None, why)."""
    files = scene_files(settings.out_dir, job.scene_id)
    try:
        marker = json.loads(files["marker"].read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "not done yet"
    except (OSError, ValueError):
        return None, "unreadable done marker"
    why = _marker_mismatch(marker, job, settings) or _files_mismatch(marker, files)
    return (None, why) if why else (marker, "")


def _marker_mismatch(marker: Any, job: SceneJob, settings: BatchSettings) -> str:
    """Why the marker is not this job's (empty when it is)."""
    if not isinstance(marker, dict) or marker.get("s2m_geo_batch_marker") != MARKER_VERSION:
        return "done marker of another version"
    if (marker.get("scene_id"), marker.get("pre"), marker.get("post")) != (job.scene_id, job.pre, job.post):
        return "made from other inputs"
    if marker.get("config_hash") != settings.config_hash:
        return "made with another model or options"
    for key in ("pre", "post"):
        why = input_change((marker.get("inputs") or {}).get(key))
        if why:
            return f"{key} changed since: {why}"
    return ""


def _files_mismatch(marker: dict[str, Any], files: dict[str, Path]) -> str:
    """Why the files differ from what the marker records (empty when they match)."""
    outputs = marker.get("outputs") or {}
    if set(outputs) != set(files) - {"marker"}:
        return "done marker lists other files"
    for key, rec in outputs.items():
        p = files[key]
        try:
            if p.stat().st_size != rec.get("size") or sha256_file(p) != rec.get("sha256"):
                return f"{p.name} differs from what was written"
        except OSError:
            return f"{p.name} is missing"
    try:
        import pyogrio

        layers = {name for name, _ in pyogrio.list_layers(files["gpkg"])}
        if not {"changes", "scenes"} <= layers:
            return f"{files['gpkg'].name} lacks a layer"
        for layer, n in (marker.get("layers") or {}).items():
            if pyogrio.read_info(files["gpkg"], layer=layer)["features"] != n:
                return f"{files['gpkg'].name}: layer {layer} has another row count"
    except Exception:
        return f"{files['gpkg'].name} does not open"
    return ""


def sweep_partials(out_dir: str | Path) -> list[Path]:
    """Remove what interrupted or killed runs left in ``out_dir``: staging folders and
    temporary files (hidden names containing ``.partial``). Returns what was removed."""
    removed: list[Path] = []
    out = Path(out_dir)
    if not out.is_dir():
        return removed
    for p in out.iterdir():
        if is_partial(p.name):
            discard(p)
            removed.append(p)
    return removed
