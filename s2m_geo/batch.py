"""Many scene pairs on ``dask.distributed``: one task per scene, resume, isolation, report.

:func:`run_batch` runs :func:`~s2m_geo.detect.detect_changes` on every pair of a manifest
(:func:`read_manifest`) or of two folders (:func:`pair_folders`), on a
``distributed.LocalCluster`` it starts (default) or on a cluster that already runs
(``scheduler="tcp://HOST:PORT"``), and writes into one output folder::

    OUT/SCENE.gpkg              changes + scenes layers, QGIS styles (as ``s2m-geo predict``)
    OUT/SCENE_changes.tif       the change raster (COG, class colours)
    OUT/SCENE_quicklook.png     change overlay on the post image, legend, scale bar, north arrow
    OUT/SCENE.done.json         written last: what was made, with sizes and SHA-256 of each file
    OUT/all_changes.gpkg        both layers of every complete scene, the same QGIS styles
    OUT/report.md, report.html  per-scene and total counts/areas by class, sentences, failures
    OUT/report.json             the same, for scripts

- **Scenes are tasks.** Each worker process loads the model once (the pipeline's per-process
  cache, :func:`s2m_geo.predict.pipeline._worker_model`) and runs whole scenes. With
  ``gpu_per_task`` every scene task asks for ``resources={"GPU": n}``. A scene larger than
  ``split_above_mpx`` runs from the client instead, its blocks spread over the workers
  (``detect_changes(..., client=client)``, the pipeline's block scheme).
- **Atomic, verified outputs.** A scene is produced in a hidden staging folder
  ``OUT/.SCENE.XXXX.partial/`` and its files are renamed into place; the done marker comes
  last. A scene counts as complete only if its marker matches the job (inputs unchanged,
  same model and result-relevant options), every file it lists has the recorded size and
  SHA-256, and the GeoPackage opens with both layers and the recorded row counts. Complete
  scenes are skipped on a rerun (``force=True`` redoes them). Staging folders and temporary
  files left by a killed run are removed when the next run starts (and when a run is
  interrupted), so the folder never holds a half-written file.
- **Isolation.** A scene that fails (unreadable file, disjoint footprints, a worker that
  died, ...) becomes a ``failed`` outcome with its error; every other scene still runs. The
  command line exits with 3 (:class:`ScenesFailed`) when any scene failed.
- **One batch per folder.** An advisory lock (``OUT/.s2m-batch.lock``) refuses a second
  batch writing into the same folder at the same time.

With a running cluster (``scheduler=``), input files, the model and the output folder must
be reachable under the same absolute paths from the workers (a shared file system), and the
workers need s2m-geo installed.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import InputError, S2MError
from .predict.pipeline import PredictOptions

MARKER_VERSION = 1
MERGED_NAME = "all_changes.gpkg"
LOCK_NAME = ".s2m-batch.lock"
RESERVED_IDS = {"all_changes"}
_BAD_ID_CHARS = set('/\\<>:"|?*\0')
TOPIC_PREFIX = "s2m-batch-tiles-"

Progress = Callable[[str, int, int], None]
Message = Callable[[str], None]


class ScenesFailed(S2MError):
    """Some scenes of a batch failed (the others completed): exit code 3."""

    exit_code = 3


# --- the jobs ----------------------------------------------------------------------------------


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
    """A scene id is used as a file name: refuse what cannot be one (InputError)."""
    sid = str(scene_id).strip()
    if not sid:
        raise InputError(f"{where}: empty scene_id; give every scene a name")
    bad = sorted(set(sid) & _BAD_ID_CHARS) or [c for c in sid if ord(c) < 32][:1]
    if bad:
        raise InputError(f"{where}: scene_id {sid!r} contains {''.join(bad)!r}; scene ids become file "
                         f"names, use letters, digits, spaces, '-', '_' or '.'")
    if sid.startswith(".") or sid in RESERVED_IDS or len(sid) > 200:
        raise InputError(f"{where}: scene_id {sid!r} cannot be used (it would collide with the batch's "
                         f"own files or is too long); choose another name")
    return sid


def check_unique(jobs: list[SceneJob], where: str) -> None:
    """Scene ids must be unique, also on case-insensitive file systems."""
    seen: dict[str, str] = {}
    for job in jobs:
        key = job.scene_id.casefold()
        if key in seen:
            raise InputError(f"{where}: scene_id {job.scene_id!r} appears twice (as {seen[key]!r} before); "
                             f"scene ids must be unique (case-insensitively)")
        seen[key] = job.scene_id


def _is_url(value: str) -> bool:
    return "://" in value or value.startswith("/vsi")


def _resolve(value: str, base: Path) -> str:
    """A manifest path taken literally (no globbing, no ``~`` or ``$VAR`` expansion):
    relative paths are relative to the manifest's folder; URLs and GDAL /vsi paths as given."""
    if _is_url(value):
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
    delimiter = ";" if header.count(";") > header.count(",") else ("\t" if "\t" in header and "," not in header
                                                                    else ",")
    reader = csv.DictReader(io.StringIO("\n".join(lines)), delimiter=delimiter)
    if reader.fieldnames is None:
        raise InputError(f"{path}: no header; the first line must name the columns, e.g. scene_id,pre,post")
    reader.fieldnames = [(f or "").strip().lower() for f in reader.fieldnames]
    rows = []
    for i, row in enumerate(reader, 1):
        if None in row:  # more cells than header columns
            raise InputError(f"{path}: row {i}: more cells than header columns "
                             f"({', '.join(reader.fieldnames)}); quote paths that contain '{delimiter}'")
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
        raise InputError(f"{path}: expected a list of scenes (or 'scenes:' with a list), each with "
                         f"scene_id, pre, post")
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
        jobs.append(SceneJob(check_scene_id(sid, where), _resolve(values["pre"], base),
                             _resolve(values["post"], base), _date_text(row.get("pre_date")),
                             _date_text(row.get("post_date"))))
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
    for d, opt in ((Path(pre_dir), "--pre-dir"), (Path(post_dir), "--post-dir")):
        if not d.is_dir():
            raise InputError(f"{d}: {opt} is not a folder; give the folder of the {opt[2:-4]} scenes")
        dirs.append(d)
    pat = pattern.lower()

    def files(d: Path) -> dict[str, Path]:
        return {p.name: p for p in sorted(d.iterdir())
                if not p.name.startswith(".") and fnmatch.fnmatchcase(p.name.lower(), pat) and not p.is_dir()}

    pre, post = files(dirs[0]), files(dirs[1])
    if not set(pre) & set(post):
        raise InputError(f"{dirs[0]}: no file matching '{pattern}' has a partner of the same name in "
                         f"{dirs[1]}; check the folders and --pattern")
    jobs = []
    for name in sorted(set(pre) | set(post)):
        sid = check_scene_id(Path(name).stem, f"{pre.get(name) or post.get(name)}")
        if name in pre and name in post:
            jobs.append(SceneJob(sid, os.path.abspath(pre[name]), os.path.abspath(post[name])))
        elif name in pre:
            jobs.append(SceneJob(sid, os.path.abspath(pre[name]), "",
                                 error=f"{pre[name]}: no file named {name} in {dirs[1]} (the post folder)"))
        else:
            jobs.append(SceneJob(sid, "", os.path.abspath(post[name]),
                                 error=f"{post[name]}: no file named {name} in {dirs[0]} (the pre folder)"))
    check_unique(jobs, str(dirs[0]))
    return jobs


# --- per-scene work ----------------------------------------------------------------------------


@dataclass
class BatchSettings:
    """What every scene task needs (pickled to the workers)."""

    out_dir: str
    model: str
    options: PredictOptions = field(default_factory=PredictOptions)
    min_area_m2: float = 0.0
    simplify_m: float = 0.0
    torch_threads: int | None = None
    quicklook_size: int = 1024
    model_sha256: str = ""
    config_hash: str = ""
    topic: str | None = None


def result_config(settings: BatchSettings) -> dict[str, Any]:
    """What decides a scene's result: a marker made with another config is stale. (Batch
    size, block size, device and threads only change how fast, not what.)"""
    o = settings.options
    return {"model_sha256": settings.model_sha256, "tile_size": o.tile_size, "overlap": o.overlap,
            "blend": o.blend, "bands": o.bands, "post_bands": o.post_bands, "crs": o.crs,
            "resolution": o.resolution, "zero_as_nodata": o.zero_as_nodata,
            "min_area_m2": settings.min_area_m2, "simplify_m": settings.simplify_m}


def _config_hash(settings: BatchSettings) -> str:
    return hashlib.sha256(json.dumps(result_config(settings), sort_keys=True).encode()).hexdigest()


def scene_files(out_dir: str | Path, scene_id: str) -> dict[str, Path]:
    """The output files of one scene."""
    out = Path(out_dir)
    return {"gpkg": out / f"{scene_id}.gpkg", "raster": out / f"{scene_id}_changes.tif",
            "quicklook": out / f"{scene_id}_quicklook.png", "marker": out / f"{scene_id}.done.json"}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _input_stat(path: str) -> dict[str, Any] | None:
    if not path or _is_url(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, S2MError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())  # one line


def _scene_summary(gpkg: Path, table) -> dict[str, Any]:
    """The scene's figures and sentences, read back from its ``scenes`` layer."""
    import pyogrio

    df = pyogrio.read_dataframe(gpkg, layer="scenes", read_geometry=False)
    row = df.iloc[0]
    classes = {}
    for c in table.change_classes:
        classes[c.name] = {"count": int(row.get(f"n_{c.name}", 0) or 0),
                           "area_m2": float(row.get(f"area_m2_{c.name}", 0.0) or 0.0)}
    try:
        sentences = [q["sentence"] for q in json.loads(row.get("quadruples") or "[]")]
    except (TypeError, ValueError):
        sentences = []
    return {"changes": int(row["changes"]), "changed_area_m2": float(row["changed_area_m2"]),
            "classes": classes, "sentences": sentences, "description": str(row["description"]),
            "width": int(row["width"]), "height": int(row["height"]),
            "direction_terms": str(row["direction_terms"])}


def _write_json_atomic(path: Path, data: dict, tmp_dir: Path) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=tmp_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def produce_scene(job: SceneJob, settings: BatchSettings, model: Any, client: Any = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Make one scene's outputs (staged, renamed into place, done marker last); return its
    marker. ``model``: a loaded model, or its path when ``client`` spreads blocks over a
    cluster. Raises on failure (the staging folder is removed)."""
    from .detect import detect_changes
    from .report import render_quicklook

    t0 = time.perf_counter()
    out = Path(settings.out_dir)
    finals = scene_files(out, job.scene_id)
    staging = Path(tempfile.mkdtemp(prefix=f".{job.scene_id}.", suffix=".partial", dir=out))
    try:
        staged = {k: staging / p.name for k, p in finals.items() if k != "marker"}
        inputs = {"pre": {"path": job.pre, **(_input_stat(job.pre) or {})},
                  "post": {"path": job.post, **(_input_stat(job.post) or {})}}
        res = detect_changes(job.pre, job.post, staged["gpkg"], model, settings.options,
                             raster=staged["raster"], min_area_m2=settings.min_area_m2,
                             simplify_m=settings.simplify_m, scene_id=job.scene_id, overwrite=True,
                             progress=progress, client=client)
        table = _table_of(model)
        render_quicklook(staged["raster"], job.post, staged["quicklook"], table, title=job.scene_id,
                         bands=settings.options.post_bands or settings.options.bands,
                         max_size=settings.quicklook_size)
        summary = _scene_summary(staged["gpkg"], table)
        outputs = {k: {"file": finals[k].name, "size": p.stat().st_size, "sha256": sha256_file(p)}
                   for k, p in staged.items()}
        marker = {
            "s2m_geo_batch_marker": MARKER_VERSION, "scene_id": job.scene_id, "pre": job.pre,
            "post": job.post, "pre_date": job.pre_date, "post_date": job.post_date, "inputs": inputs,
            "model": {"name": Path(str(settings.model)).name, "sha256": settings.model_sha256},
            "config": result_config(settings), "config_hash": settings.config_hash,
            "outputs": outputs, "layers": {"changes": res.changes, "scenes": 1},
            "tiles": res.prediction.tiles, "tiles_skipped": res.prediction.tiles_skipped,
            "summary": summary, "seconds": round(time.perf_counter() - t0, 3),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        from . import __version__

        marker["s2m_geo"] = __version__
        # the old marker goes first, so a scene is never "complete" with a mix of old and new files
        finals["marker"].unlink(missing_ok=True)
        for k, p in staged.items():
            os.replace(p, finals[k])
        _write_json_atomic(finals["marker"], marker, staging)
        return marker
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _table_of(model: Any) -> Any:
    meta = getattr(model, "meta", None)
    if meta is not None:
        return meta.class_table
    return read_model_meta(model).class_table


def read_model_meta(model: str | Path):
    """The metadata of a model package or ONNX model, without loading the weights."""
    model = Path(model)
    if not model.is_file():
        raise InputError(f"{model}: model file not found; check --model")
    if model.suffix.lower() == ".onnx":
        from .model import load_onnx_model

        return load_onnx_model(model).meta
    from .model import read_package_meta

    return read_package_meta(model)


def _tile_reporter(topic: str | None, scene_id: str) -> Progress:
    """Progress callback on a worker: tile counts go to the client as Dask events."""
    state = {"last": 0.0}

    def report(stage: str, done: int, total: int) -> None:
        if stage != "infer" or topic is None:
            return
        now = time.monotonic()
        if done < total and now - state["last"] < 0.5:
            return
        state["last"] = now
        try:
            from distributed import get_worker

            get_worker().log_event(topic, {"scene": scene_id, "done": int(done), "total": int(total)})
        except Exception:  # not on a worker, or the scheduler is gone: progress is best effort
            pass

    return report


def run_scene(job: SceneJob, settings: BatchSettings) -> dict[str, Any]:
    """The Dask task of one scene: never raises for a failing scene, returns its outcome."""
    t0 = time.perf_counter()
    try:
        from .predict.pipeline import _worker_model

        if settings.torch_threads:
            import torch

            if torch.get_num_threads() != settings.torch_threads:
                torch.set_num_threads(settings.torch_threads)
        model = _worker_model(settings.model, settings.options.device)
        marker = produce_scene(job, settings, model, progress=_tile_reporter(settings.topic, job.scene_id))
        return {"scene_id": job.scene_id, "status": "done", "marker": marker,
                "seconds": time.perf_counter() - t0, "worker": _worker_address()}
    except Exception as exc:
        return {"scene_id": job.scene_id, "status": "failed", "error": _error_text(exc),
                "seconds": time.perf_counter() - t0, "worker": _worker_address()}


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:
        return None


# --- resume ------------------------------------------------------------------------------------


def verify_scene(job: SceneJob, settings: BatchSettings) -> tuple[dict[str, Any] | None, str]:
    """(marker, "") when the scene's outputs are complete for this job, else (None, why)."""
    files = scene_files(settings.out_dir, job.scene_id)
    try:
        marker = json.loads(files["marker"].read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "not done yet"
    except (OSError, ValueError):
        return None, "unreadable done marker"
    if not isinstance(marker, dict) or marker.get("s2m_geo_batch_marker") != MARKER_VERSION:
        return None, "done marker of another version"
    if (marker.get("scene_id"), marker.get("pre"), marker.get("post")) != (job.scene_id, job.pre, job.post):
        return None, "made from other inputs"
    if marker.get("config_hash") != settings.config_hash:
        return None, "made with another model or options"
    for key in ("pre", "post"):
        now = _input_stat(getattr(job, key))
        was = (marker.get("inputs") or {}).get(key) or {}
        if now is not None and (now["size"], now["mtime_ns"]) != (was.get("size"), was.get("mtime_ns")):
            return None, f"{key} changed since"
    outputs = marker.get("outputs") or {}
    if set(outputs) != {"gpkg", "raster", "quicklook"}:
        return None, "done marker lists other files"
    for key, rec in outputs.items():
        p = files[key]
        try:
            if p.stat().st_size != rec.get("size") or sha256_file(p) != rec.get("sha256"):
                return None, f"{p.name} differs from what was written"
        except OSError:
            return None, f"{p.name} is missing"
    try:
        import pyogrio

        layers = {name for name, _ in pyogrio.list_layers(files["gpkg"])}
        if not {"changes", "scenes"} <= layers:
            return None, f"{files['gpkg'].name} lacks a layer"
        for layer, n in (marker.get("layers") or {}).items():
            if pyogrio.read_info(files["gpkg"], layer=layer)["features"] != n:
                return None, f"{files['gpkg'].name}: layer {layer} has another row count"
    except Exception:
        return None, f"{files['gpkg'].name} does not open"
    return marker, ""


def sweep_partials(out_dir: str | Path) -> list[Path]:
    """Remove what interrupted or killed runs left in ``out_dir``: staging folders and
    temporary files (hidden names containing ``.partial``). Returns what was removed."""
    removed = []
    out = Path(out_dir)
    if not out.is_dir():
        return removed
    for p in out.iterdir():
        if p.name.startswith(".") and ".partial" in p.name:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class _FolderLock:
    """An advisory lock on the output folder (one batch per folder at a time)."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> "_FolderLock":
        try:
            import fcntl
        except ImportError:  # not POSIX (Windows): no lock
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise InputError(f"{self.path.parent}: another s2m-geo batch is writing into this folder; "
                                 f"wait for it or choose another output folder") from None
            try:  # the file may have been removed by the previous holder between open and lock
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self.fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


# --- the batch ---------------------------------------------------------------------------------


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

    @property
    def failed(self) -> list[SceneOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every scene is complete, 3 when some failed."""
        return ScenesFailed.exit_code if self.failed else 0


class _Tiles:
    """Sums the tile progress of the scenes that run (total grows as scenes start)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.per_scene: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()

    def update(self, scene_id: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        with self.lock:
            self.per_scene[scene_id] = (done, total)
            d = sum(v[0] for v in self.per_scene.values())
            t = sum(v[1] for v in self.per_scene.values())
            self.progress("tiles", d, t)

    def event(self, event) -> None:  # a Dask event: (timestamp, msg)
        try:
            msg = event[1]
            self.update(str(msg["scene"]), int(msg["done"]), int(msg["total"]))
        except Exception:
            pass


def _mpx(path: str) -> float:
    try:
        import rasterio

        with rasterio.open(path) as ds:
            return ds.width * ds.height / 1e6
    except Exception:
        return 0.0


def _start_client(scheduler: str | None, workers: int, threads_per_worker: int, memory_limit: Any,
                  gpu_per_task: float | None, connect_timeout: float):
    """A client on the given scheduler, or on a new LocalCluster; returns (client, cluster)."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout}s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"{scheduler}: cannot reach a Dask scheduler there ({_error_text(exc)}); "
                             f"start one (dask scheduler) or check --scheduler") from None
        except ValueError as exc:
            raise InputError(f"{scheduler}: not a scheduler address ({exc}); give e.g. tcp://HOST:8786") from None
        try:
            client.wait_for_workers(1, timeout=connect_timeout)
        except (TimeoutError, OSError):
            client.close()
            raise InputError(f"{scheduler}: the scheduler has no workers; start some "
                             f"(dask worker {scheduler})") from None
        if gpu_per_task:
            info = client.scheduler_info(n_workers=-1) if _accepts_n_workers(client) else client.scheduler_info()
            if not any((w.get("resources") or {}).get("GPU", 0) >= gpu_per_task
                       for w in info.get("workers", {}).values()):
                client.close()
                raise InputError(f"{scheduler}: no worker offers the resource GPU={gpu_per_task}; start "
                                 f"workers with --resources GPU=1 or drop --gpu-per-task")
        return client, None
    resources = {"GPU": max(1.0, float(gpu_per_task))} if gpu_per_task else None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                           dashboard_address=None, memory_limit=memory_limit, resources=resources,
                           silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        # Ctrl-C reaches the whole process group: let this process stop the workers cleanly
        client.run(_ignore_sigint)
        return client, cluster
    except BaseException:
        cluster.close()
        raise


def _ignore_sigint() -> None:
    """On a local worker: SIGINT is for the batch process, which then closes the cluster."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread of the worker process
        pass


def _accepts_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


WORKER_MEMORY = 2 << 30  # bytes budgeted per local worker when choosing their number


def default_workers() -> int:
    """Local worker processes by default: one per CPU core, at most one per 2 GiB of RAM.

    Scenes are independent, so processes with one torch thread each scale better than
    threads inside one process (benchmarks/batch.py); a worker with the small models takes
    well under 1 GiB of its own memory, and the budget leaves room for larger blocks."""
    cores = os.cpu_count() or 1
    try:
        import psutil

        by_memory = int(psutil.virtual_memory().total // WORKER_MEMORY)
    except Exception:
        by_memory = cores
    return max(1, min(cores, by_memory))


def run_batch(jobs: Iterable[SceneJob], out_dir: str | Path, model: str | Path,
              options: PredictOptions | None = None, *, min_area_m2: float = 0.0, simplify_m: float = 0.0,
              force: bool = False, client: Any = None, scheduler: str | None = None,
              workers: int | None = None, threads_per_worker: int = 1, memory_limit: Any = "auto",
              gpu_per_task: float | None = None, split_above_mpx: float | None = None,
              torch_threads: int | None = None, quicklook_size: int = 1024,
              progress: Progress | None = None, message: Message | None = None,
              source: str | None = None, connect_timeout: float = 30.0) -> BatchResult:
    """Detect and describe the changes of every scene pair in ``jobs`` into ``out_dir``.

    ``client``: a ``distributed.Client`` to use as is; else ``scheduler`` (address of a
    running scheduler) or a new LocalCluster of ``workers`` processes with
    ``threads_per_worker`` threads (closed at the end). ``torch_threads``: torch threads per
    scene task (default on a local cluster: the cores divided among the task slots; on
    another cluster: the workers' own setting). ``progress(stage, done, total)`` gets the
    stages ``scenes`` and ``tiles``; ``message(text)`` gets one line per failed scene.
    Returns a :class:`BatchResult` (its ``exit_code`` is 3 when some scene failed); raises
    :class:`InputError` for bad usage and ``KeyboardInterrupt`` when interrupted (after
    cancelling the work and removing every temporary file).
    """
    t_start = time.perf_counter()
    jobs = list(jobs)
    if not jobs:
        raise InputError("no scenes to process; give a manifest with rows or folders with matching files")
    for job in jobs:
        check_scene_id(job.scene_id, f"scene {job.scene_id!r}")
    check_unique(jobs, "scenes")
    model_path = Path(os.path.abspath(model))
    meta = read_model_meta(model_path)
    table = meta.class_table
    out = Path(os.path.abspath(out_dir))
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose an output folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror}); choose a writable place") from None
    if not os.access(out, os.W_OK):
        raise InputError(f"{out}: output folder is not writable; choose another place")
    opts = options or PredictOptions()
    if workers is None:
        workers = default_workers()
    if torch_threads is None and client is None and not scheduler:
        torch_threads = max(1, (os.cpu_count() or 1) // (workers * threads_per_worker))
    settings = BatchSettings(str(out), str(model_path), opts, min_area_m2, simplify_m, torch_threads,
                             quicklook_size, model_sha256=sha256_file(model_path))
    settings.config_hash = _config_hash(settings)
    settings.topic = TOPIC_PREFIX + uuid.uuid4().hex if progress else None
    say = message or (lambda text: None)

    with _FolderLock(out):
        sweep_partials(out)
        outcomes: dict[str, SceneOutcome] = {}
        todo: list[SceneJob] = []
        for job in jobs:
            if job.error:
                outcomes[job.scene_id] = SceneOutcome(job, "failed", job.error)
                continue
            marker, why = (None, "") if force else verify_scene(job, settings)
            if marker is not None:
                outcomes[job.scene_id] = SceneOutcome(job, "skipped", marker=marker,
                                                      seconds=float(marker.get("seconds", 0.0)))
            else:
                if why and why != "not done yet":
                    say(f"{job.scene_id}: earlier outputs are not complete ({why}); redoing the scene")
                todo.append(job)
        total = len(jobs)
        if progress:
            progress("scenes", len(outcomes), total)
        for o in outcomes.values():
            if o.status == "failed":
                say(f"{o.scene_id}: failed: {o.error}")
        if todo:
            _run_jobs(todo, settings, outcomes, total, client=client, scheduler=scheduler, workers=workers,
                      threads_per_worker=threads_per_worker, memory_limit=memory_limit,
                      gpu_per_task=gpu_per_task, split_above_mpx=split_above_mpx, progress=progress,
                      say=say, connect_timeout=connect_timeout)
        ordered = [outcomes[j.scene_id] for j in jobs]
        from .report import write_merged, write_reports

        merged = write_merged(out / MERGED_NAME, [o for o in ordered if o.complete], table)
        result = BatchResult(out, ordered, merged, [], time.perf_counter() - t_start, model_path.name, source)
        result.reports = write_reports(result, table)
        sweep_partials(out)
    return result


def _run_jobs(todo: list[SceneJob], settings: BatchSettings, outcomes: dict[str, SceneOutcome], total: int, *,
              client, scheduler, workers, threads_per_worker, memory_limit, gpu_per_task, split_above_mpx,
              progress, say, connect_timeout) -> None:
    """Run the scenes of ``todo`` on the cluster, filling ``outcomes``."""
    import dask

    own = client is None
    cluster = None
    tiles = _Tiles(progress)
    futures: list = []
    stop = threading.Event()
    big_thread: threading.Thread | None = None
    resources = {"GPU": gpu_per_task} if gpu_per_task else None
    try:
        if own:
            client, cluster = _start_client(scheduler, workers, threads_per_worker, memory_limit, gpu_per_task,
                                            connect_timeout)
        if progress:
            client.subscribe_topic(settings.topic, tiles.event)
        big = [j for j in todo if split_above_mpx and _mpx(j.pre) > split_above_mpx]
        small = [j for j in todo if j not in big]
        done_q: queue.Queue = queue.Queue()
        token = uuid.uuid4().hex[:8]
        for job in small:
            fut = client.submit(run_scene, job, settings, key=f"s2m-scene-{token}-{len(futures)}", pure=False,
                                resources=resources)
            fut.add_done_callback(done_q.put)
            futures.append((job, fut))
        by_key = {fut.key: job for job, fut in futures}

        def run_big() -> None:  # large scenes: blocks spread over the workers, from the client side
            for job in big:
                if stop.is_set():
                    return
                t0 = time.perf_counter()
                try:
                    with dask.annotate(**({"resources": resources} if resources else {})):
                        marker = produce_scene(job, settings, settings.model, client=client,
                                               progress=lambda s, d, t, sid=job.scene_id:
                                               s == "infer" and tiles.update(sid, d, t))
                    done_q.put(SceneOutcome(job, "done", marker=marker, seconds=time.perf_counter() - t0,
                                            worker="(split over the cluster)"))
                except Exception as exc:
                    done_q.put(SceneOutcome(job, "failed", _error_text(exc), seconds=time.perf_counter() - t0))

        if big:
            big_thread = threading.Thread(target=run_big, name="s2m-batch-split", daemon=True)
            big_thread.start()
        remaining = len(todo)
        while remaining:
            try:
                item = done_q.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(item, SceneOutcome):
                outcome = item
            else:
                outcome = _outcome_of(by_key[item.key], item)
            outcomes[outcome.scene_id] = outcome
            remaining -= 1
            if outcome.status == "failed":
                say(f"{outcome.scene_id}: failed: {outcome.error}")
            if progress:
                progress("scenes", len(outcomes), total)
    except BaseException:
        stop.set()
        _ignore_sigterm_while(lambda: _abort(client, cluster if own else None, futures, big_thread,
                                             settings.out_dir, own))
        raise
    else:
        if progress:
            try:
                client.unsubscribe_topic(settings.topic)
            except Exception:
                pass
        if own:
            client.close()
            if cluster is not None:
                cluster.close()


def _outcome_of(job: SceneJob, fut) -> SceneOutcome:
    try:
        res = fut.result()
    except BaseException as exc:  # the task itself died (worker killed, cancelled, ...)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return SceneOutcome(job, "failed", f"the scene's task failed: {_error_text(exc)}")
    if res["status"] == "done":
        return SceneOutcome(job, "done", marker=res["marker"], seconds=res["seconds"], worker=res.get("worker"))
    return SceneOutcome(job, "failed", res["error"], seconds=res["seconds"], worker=res.get("worker"))


def _abort(client, cluster, futures, big_thread, out_dir, own) -> None:
    """Interrupted: cancel the work, stop our cluster, remove temporary files."""
    if client is not None:
        try:
            client.cancel([f for _, f in futures])
        except Exception:
            pass
    if own and client is not None:
        try:
            client.close(timeout=10)
        except Exception:
            pass
    if cluster is not None:
        try:
            cluster.close(timeout=20)
        except Exception:
            pass
    if big_thread is not None:
        big_thread.join(timeout=30)
    sweep_partials(out_dir)


def _ignore_sigterm_while(fn: Callable[[], None]) -> None:
    """Run the clean-up to its end even if a second SIGTERM arrives meanwhile."""
    if threading.current_thread() is not threading.main_thread():
        fn()
        return
    old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        fn()
    finally:
        signal.signal(signal.SIGTERM, old)


__all__ = ["SceneJob", "SceneOutcome", "BatchResult", "BatchSettings", "ScenesFailed", "read_manifest",
           "pair_folders", "run_batch", "run_scene", "produce_scene", "verify_scene", "sweep_partials",
           "scene_files", "default_workers", "MERGED_NAME"]
