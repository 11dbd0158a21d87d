"""The scene pairs of a batch: a CSV/YAML manifest or two folders, and the scene-id rules."""

from __future__ import annotations

import csv
import fnmatch
import io
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..escaping import line_fault, name_bytes
from .layout import MAX_SCENE_ID_BYTES, MERGED_NAME

RESERVED_IDS = {Path(MERGED_NAME).stem}  # the merged layer's file


_BAD_ID_CHARS = set('/\\<>:"|?*\0')


@dataclass(frozen=True)
class SceneJob:
    """One scene pair of a batch. ``error`` marks a job known to be bad before it runs
    (e.g. a file with no partner in the other folder)."""

    scene_id: str
    pre: str
    post: str
    pre_date: str | None = None
    post_date: str | None = None
    error: str | None = None


def check_scene_id(scene_id: str, where: str) -> str:
    """A scene id is used as a file name: refuse what cannot be one (InputError).

    Its length is counted in bytes of UTF-8, as file systems count names: a too long id is
    refused, never shortened (a shortened id could collide with another, and would no
    longer be the name the manifest gives)."""
    sid = str(scene_id).strip()
    if not sid:
        raise InputError(f"{where}: empty scene_id; give every scene a name")
    fault = line_fault(sid)
    bad = sorted(set(sid) & _BAD_ID_CHARS) or ([fault] if fault else [])
    if bad:
        raise InputError(
            f"{where}: scene_id {sid!r} contains {''.join(bad)!r}; scene ids become file "
            f"names, use letters, digits, spaces, '-', '_' or '.'"
        )
    if sid.startswith(".") or sid in RESERVED_IDS:
        raise InputError(
            f"{where}: scene_id {sid!r} cannot be used (it would collide with the batch's "
            f"own files); choose another name"
        )
    size = name_bytes(sid)
    if size > MAX_SCENE_ID_BYTES:
        shown = sid if len(sid) <= 40 else sid[:40] + "…"
        raise InputError(
            f"{where}: scene_id {shown!r} is {size} bytes long in UTF-8, more than the "
            f"{MAX_SCENE_ID_BYTES} a scene id may have (it becomes file names such as "
            f"'<scene_id>_quicklook.png', and file systems allow 255 bytes per name); give it a shorter scene_id"
        )
    return sid


def check_unique(jobs: list[SceneJob], where: str) -> None:
    """Scene ids must be unique, also on case-insensitive file systems."""
    seen: dict[str, str] = {}
    for job in jobs:
        key = job.scene_id.casefold()
        if key in seen:
            raise InputError(
                f"{where}: scene_id {job.scene_id!r} appears twice (as {seen[key]!r} before); "
                f"scene ids must be unique (case-insensitively)"
            )
        seen[key] = job.scene_id


def is_url(value: str) -> bool:
    return "://" in value or value.startswith("/vsi")


def _resolve(value: str, base: Path) -> str:
    """A manifest path taken literally (no globbing, no ``~`` or ``$VAR`` expansion):
    relative paths are relative to the manifest's folder; URLs and GDAL /vsi paths as given."""
    if is_url(value):
        return value
    p = Path(value)
    return os.path.abspath(p if p.is_absolute() else base / p)


def _date_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def _rows_from_csv(path: Path, text: str) -> list[dict[str, Any]]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{path}: empty manifest; give a header 'scene_id,pre,post' and one row per scene")
    header = lines[0]
    delimiter = (
        ";" if header.count(";") > header.count(",") else ("\t" if "\t" in header and "," not in header else ",")
    )
    reader = csv.DictReader(io.StringIO("\n".join(lines)), delimiter=delimiter)
    if reader.fieldnames is None:
        raise InputError(f"{path}: no header; the first line must name the columns, e.g. scene_id,pre,post")
    reader.fieldnames = [(f or "").strip().lower() for f in reader.fieldnames]
    rows = []
    for i, row in enumerate(reader, 1):
        if None in row:  # more cells than header columns
            raise InputError(
                f"{path}: row {i}: more cells than header columns "
                f"({', '.join(reader.fieldnames)}); quote paths that contain '{delimiter}'"
            )
        rows.append({k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()})
    return rows


def _rows_from_yaml(path: Path, text: str) -> list[dict[str, Any]]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InputError(f"{path}: not valid YAML{where}; give a list of {{scene_id, pre, post}}") from None
    if isinstance(data, dict) and "scenes" in data:
        data = data["scenes"]
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a list of scenes (or 'scenes:' with a list), each with scene_id, pre, post")
    rows = []
    for i, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise InputError(f"{path}: scene {i}: expected a mapping with scene_id, pre, post, not {item!r}")
        rows.append({str(k).strip().lower(): v for k, v in item.items()})
    return rows


def read_manifest(path: str | Path) -> list[SceneJob]:
    """The scene pairs of a CSV or YAML manifest.

    Columns / keys: ``scene_id`` (default: pre's file name without extension), ``pre``,
    ``post``, optional ``pre_date`` and ``post_date``; other columns are ignored. A CSV has a
    header line (``,`` or ``;`` separated; ``#`` lines are comments); a YAML file is a list of
    mappings or a mapping with a ``scenes:`` list. Paths are taken literally — no globbing,
    no ``~``/``$VAR`` expansion — and relative ones are relative to the manifest's folder.
    Raises :class:`InputError` naming the file (and line or scene) for a bad manifest.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found; give a CSV or YAML file with scene_id, pre, post")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".txt", ".yaml", ".yml"):
        raise InputError(f"{path}: unknown manifest type '{suffix}'; give a .csv or .yaml file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file; save the manifest as UTF-8 CSV or YAML") from None
    rows = _rows_from_yaml(path, text) if suffix in (".yaml", ".yml") else _rows_from_csv(path, text)
    if not rows:
        raise InputError(f"{path}: no scenes; add one row per scene (scene_id, pre, post)")
    base = path.parent
    jobs = []
    for i, row in enumerate(rows, 1):
        where = f"{path}: {'scene' if suffix in ('.yaml', '.yml') else 'row'} {i}"
        values = {}
        for key in ("pre", "post"):
            v = row.get(key)
            if v is None or (isinstance(v, str) and not v.strip()):
                raise InputError(f"{where}: missing '{key}'; every scene needs scene_id, pre and post")
            if not isinstance(v, str):
                raise InputError(f"{where}: '{key}' must be a path, not {v!r}")
            values[key] = v
        sid = row.get("scene_id")
        sid = Path(values["pre"]).stem if sid is None or str(sid).strip() == "" else str(sid)
        jobs.append(
            SceneJob(
                check_scene_id(sid, where),
                _resolve(values["pre"], base),
                _resolve(values["post"], base),
                _date_text(row.get("pre_date")),
                _date_text(row.get("post_date")),
            )
        )
    check_unique(jobs, str(path))
    return jobs


def pair_folders(pre_dir: str | Path, post_dir: str | Path, pattern: str = "*.tif") -> list[SceneJob]:
    """Pairs of files with the same name in ``pre_dir`` and ``post_dir``.

    ``pattern`` (shell wildcards, matched case-insensitively against file names, e.g.
    ``*.tif``) selects the files; hidden files are ignored. The scene id is the file name
    without extension. A file present in only one folder becomes a failed job (it is
    reported); no pair at all is an :class:`InputError`.
    """
    dirs = []
    for d, param in ((Path(pre_dir), "pre_dir"), (Path(post_dir), "post_dir")):
        if not d.is_dir():
            raise InputError(
                f"{d}: {{{param}}} is not a folder; give the folder of the {param[:-4]} scenes", params=(param,)
            )
        dirs.append(d)
    pat = pattern.lower()

    def files(d: Path) -> dict[str, Path]:
        return {
            p.name: p
            for p in sorted(d.iterdir())
            if not p.name.startswith(".") and fnmatch.fnmatchcase(p.name.lower(), pat) and not p.is_dir()
        }

    pre, post = files(dirs[0]), files(dirs[1])
    if not set(pre) & set(post):
        raise InputError(
            f"{dirs[0]}: no file matching '{pattern}' has a partner of the same name in "
            f"{dirs[1]}; check the folders and {{pattern}}",
            params=("pattern",),
        )
    jobs = []
    for name in sorted(set(pre) | set(post)):
        sid = check_scene_id(Path(name).stem, f"{pre.get(name) or post.get(name)}")
        if name in pre and name in post:
            jobs.append(SceneJob(sid, os.path.abspath(pre[name]), os.path.abspath(post[name])))
        elif name in pre:
            jobs.append(
                SceneJob(
                    sid,
                    os.path.abspath(pre[name]),
                    "",
                    error=f"{pre[name]}: no file named {name} in {dirs[1]} (the post folder)",
                )
            )
        else:
            jobs.append(
                SceneJob(
                    sid,
                    "",
                    os.path.abspath(post[name]),
                    error=f"{post[name]}: no file named {name} in {dirs[0]} (the pre folder)",
                )
            )
    check_unique(jobs, str(dirs[0]))
    return jobs
