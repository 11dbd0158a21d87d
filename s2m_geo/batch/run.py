"""The batch run: check the jobs, skip what is complete, run the rest on the cluster,
merge and report (:func:`run_batch`)."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import InputError
from ..predict.pipeline import PredictOptions
from .cluster import megapixels, start_client, TileProgress, default_workers
from .layout import MERGED_NAME
from .lock import FolderLock
from .manifest import SceneJob, check_scene_id, check_unique
from .produce import (TOPIC_PREFIX, BatchSettings, config_hash, error_text, produce_scene, read_model_meta,
                      run_scene, sha256_file)
from .results import BatchResult, SceneOutcome
from .resume import sweep_partials, verify_scene

Progress = Callable[[str, int, int], None]
Message = Callable[[str], None]


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
    settings.config_hash = config_hash(settings)
    settings.topic = TOPIC_PREFIX + uuid.uuid4().hex if progress else None
    say = message or (lambda text: None)

    with FolderLock(out):
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
        from ..report import write_merged, write_reports

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
    tiles = TileProgress(progress)
    futures: list = []
    stop = threading.Event()
    big_thread: threading.Thread | None = None
    resources = {"GPU": gpu_per_task} if gpu_per_task else None
    try:
        if own:
            client, cluster = start_client(scheduler, workers, threads_per_worker, memory_limit, gpu_per_task,
                                            connect_timeout)
        if progress:
            client.subscribe_topic(settings.topic, tiles.event)
        big = [j for j in todo if split_above_mpx and megapixels(j.pre) > split_above_mpx]
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
                    done_q.put(SceneOutcome(job, "failed", error_text(exc), seconds=time.perf_counter() - t0))

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
        return SceneOutcome(job, "failed", f"the scene's task failed: {error_text(exc)}")
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
