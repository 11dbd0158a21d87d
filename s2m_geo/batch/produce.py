"""One scene of a batch: its outputs made in a staging folder and renamed into place, the
done marker last (:func:`produce_scene`), and the Dask task around it (:func:`run_scene`)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import atomic
from ..atomic import discard, sha256_file, temp_dir
from ..errors import S2MError
from ..predict.pipeline import PredictOptions
from ..predict.runners import read_model_meta
from .layout import MARKER_VERSION, scene_files, scene_glob
from .manifest import SceneJob, is_url

Progress = Callable[[str, int, int], None]


TOPIC_PREFIX = "s2m-batch-tiles-"


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
    return {
        "model_sha256": settings.model_sha256,
        "tile_size": o.tile_size,
        "overlap": o.overlap,
        "blend": o.blend,
        "bands": o.bands,
        "post_bands": o.post_bands,
        "crs": o.crs,
        "resolution": o.resolution,
        "zero_as_nodata": o.zero_as_nodata,
        "min_area_m2": settings.min_area_m2,
        "simplify_m": settings.simplify_m,
    }


def config_hash(settings: BatchSettings) -> str:
    return hashlib.sha256(json.dumps(result_config(settings), sort_keys=True).encode()).hexdigest()


def input_files(path: str) -> list[str]:
    """Every file GDAL reads for the raster ``path``: the file, its sidecars (``.aux.xml``,
    ``.msk``, world file, ``.ovr``) and, for a VRT, its sources; real paths, sorted. Empty
    for URLs and files that do not open (the scene then fails on its own)."""
    if not path or is_url(path):
        return []
    import rasterio

    try:
        with rasterio.open(path) as ds:
            names = list(ds.files) or [path]
    except Exception:
        return []
    return sorted({os.path.realpath(n) for n in names if os.path.isfile(n)})


def _file_stat(path: str) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def input_record(path: str) -> dict[str, Any]:
    """What a scene's result depends on in one input: each of :func:`input_files` with its
    size, times, inode and SHA-256 (docs/design.md §3.8)."""
    return {"path": path, "files": {f: {**_file_stat(f), "sha256": sha256_file(f)} for f in input_files(path)}}


def input_change(record: Any) -> str:
    """Why an input differs from its ``record`` (empty when it does not). The file list must
    be the same; a file whose size, times and inode are unchanged is trusted, any other is
    hashed, so an edit with its modification time put back is still seen."""
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return "no record of its files"
    path, files = str(record.get("path")), record["files"]
    now = input_files(path)
    if sorted(files) != now:
        return f"the files of {path} changed ({len(files)} recorded, {len(now)} now)"
    for f, was in files.items():
        try:
            stat = _file_stat(f)
        except OSError:
            return f"{f} is gone"
        if not isinstance(was, dict) or stat["size"] != was.get("size"):
            return f"{f} changed"
        if all(stat[k] == was.get(k) for k in stat):
            continue
        if sha256_file(f) != was.get("sha256"):
            return f"{f} changed"
    return ""


def error_text(exc: BaseException, where: str | Path | None = None) -> str:
    """One line saying what went wrong; an unexpected error (GDAL, the disk) is prefixed with
    ``where`` it happened when its own text does not name it."""
    if isinstance(exc, S2MError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.filename:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if where is not None and str(where) not in text:
            text = f"{where}: {text}"
    return " ".join(text.split())  # one line


def _scene_summary(gpkg: Path, table) -> dict[str, Any]:
    """The scene's figures and sentences, read back from its ``scenes`` layer."""
    import pyogrio

    df = pyogrio.read_dataframe(gpkg, layer="scenes", read_geometry=False)
    row = df.iloc[0]
    classes = {}
    for c in table.change_classes:
        classes[c.name] = {
            "count": int(row.get(f"n_{c.name}", 0) or 0),
            "area_m2": float(row.get(f"area_m2_{c.name}", 0.0) or 0.0),
        }
    try:
        sentences = [q["sentence"] for q in json.loads(row.get("quadruples") or "[]")]
    except (TypeError, ValueError):
        sentences = []
    try:
        sectors = json.loads(row.get("sectors") or "null")
    except (TypeError, ValueError):
        sectors = None
    return {
        "changes": int(row["changes"]),
        "changed_area_m2": float(row["changed_area_m2"]),
        "classes": classes,
        "sentences": sentences,
        "description": str(row["description"]),
        "width": int(row["width"]),
        "height": int(row["height"]),
        "direction_terms": str(row["direction_terms"]),
        "sectors": sectors,
    }


def produce_scene(
    job: SceneJob, settings: BatchSettings, model: Any, client: Any = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Make one scene's outputs (staged, renamed into place, done marker last); return its
    marker. ``model``: a loaded model, or its path when ``client`` spreads blocks over a
    cluster. Raises on failure (the staging folder is removed)."""
    from ..detect import detect_changes
    from ..report import render_quicklook

    t0 = time.perf_counter()
    out = Path(settings.out_dir)
    finals = scene_files(out, job.scene_id)
    staging = temp_dir(finals["gpkg"])
    try:
        # short names inside the staging folder, whose own name already holds the scene id:
        # two components of up to 250 bytes each passed SQLite's 512-byte path limit
        staged = {k: p for k, p in scene_files(staging, "scene").items() if k != "marker"}
        inputs = {"pre": input_record(job.pre), "post": input_record(job.post)}
        res = detect_changes(
            job.pre,
            job.post,
            staged["gpkg"],
            model,
            settings.options,
            raster=staged["raster"],
            min_area_m2=settings.min_area_m2,
            simplify_m=settings.simplify_m,
            scene_id=job.scene_id,
            overwrite=True,
            progress=progress,
            client=client,
        )
        table = _table_of(model)
        render_quicklook(
            staged["raster"],
            job.post,
            staged["quicklook"],
            table,
            title=job.scene_id,
            bands=settings.options.post_bands or settings.options.bands,
            max_size=settings.quicklook_size,
        )
        summary = _scene_summary(staged["gpkg"], table)
        outputs = {
            k: {"file": finals[k].name, "size": p.stat().st_size, "sha256": sha256_file(p)} for k, p in staged.items()
        }
        marker = {
            "s2m_geo_batch_marker": MARKER_VERSION,
            "scene_id": job.scene_id,
            "pre": job.pre,
            "post": job.post,
            "pre_date": job.pre_date,
            "post_date": job.post_date,
            "inputs": inputs,
            "model": {"name": Path(str(settings.model)).name, "sha256": settings.model_sha256},
            "config": result_config(settings),
            "config_hash": settings.config_hash,
            "outputs": outputs,
            "layers": {"changes": res.changes, "scenes": 1},
            "tiles": res.prediction.tiles,
            "tiles_skipped": res.prediction.tiles_skipped,
            "summary": summary,
            "seconds": round(time.perf_counter() - t0, 3),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        from .. import __version__

        marker["s2m_geo"] = __version__
        # the old marker goes first, so a scene is never "complete" with a mix of old and new files
        finals["marker"].unlink(missing_ok=True)
        for k, p in staged.items():
            atomic.publish(p, finals[k])
        atomic.write_json(finals["marker"], marker)
        return marker
    finally:
        discard(staging)


def _table_of(model: Any) -> Any:
    meta = getattr(model, "meta", None)
    if meta is not None:
        return meta.class_table
    return read_model_meta(model).class_table


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
        from ..predict.pipeline import worker_model

        if settings.torch_threads:
            import torch

            if torch.get_num_threads() != settings.torch_threads:
                torch.set_num_threads(settings.torch_threads)
        model = worker_model(settings.model, settings.options.device, settings.options.runtime)
        marker = produce_scene(job, settings, model, progress=_tile_reporter(settings.topic, job.scene_id))
        return {
            "scene_id": job.scene_id,
            "status": "done",
            "marker": marker,
            "seconds": time.perf_counter() - t0,
            "worker": _worker_address(),
        }
    except Exception as exc:
        return {
            "scene_id": job.scene_id,
            "status": "failed",
            "error": error_text(exc, scene_glob(settings.out_dir, job.scene_id)),
            "seconds": time.perf_counter() - t0,
            "worker": _worker_address(),
        }


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:
        return None
