"""The batch run: check the jobs, skip what is complete, run the rest on the cluster,
merge and report (:func:`run_batch`)."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..classes import ClassTable
from ..errors import InputError
from ..predict.pipeline import PredictOptions
from ..predict.runners import prepare_runtime, read_model_meta
from .cluster import TileProgress, default_workers, megapixels, start_client
from .layout import MERGED_NAME, scene_glob
from .lock import FolderLock
from .manifest import SceneJob, check_scene_id, check_unique
from .produce import (
    TOPIC_PREFIX,
    BatchSettings,
    config_hash,
    error_text,
    produce_scene,
    run_scene,
)
from .results import BatchResult, SceneOutcome
from .resume import sweep_partials, verify_scene

Progress = Callable[[str, int, int], None]
Message = Callable[[str], None]


def run_batch(
    jobs: Iterable[SceneJob],
    out_dir: str | Path,
    model: str | Path,
    options: PredictOptions | None = None,
    *,
    min_area_m2: float = 0.0,
    simplify_m: float = 0.0,
    force: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: Any = "auto",
    gpu_per_task: float | None = None,
    split_above_mpx: float | None = None,
    torch_threads: int | None = None,
    quicklook_size: int = 1024,
    progress: Progress | None = None,
    message: Message | None = None,
    source: str | None = None,
    connect_timeout: float = 30.0,
    zones: Any = None,
) -> BatchResult:
    """Detect and describe the changes of every scene pair in ``jobs`` into ``out_dir``.

    ``client``: a ``distributed.Client`` to use as is; else ``scheduler`` (address of a
    running scheduler) or a new LocalCluster of ``workers`` processes with
    ``threads_per_worker`` threads (closed at the end). ``torch_threads``: torch threads per
    scene task (default on a local cluster: the cores divided among the task slots; on
    another cluster: the workers' own setting). ``progress(stage, done, total)`` gets the
    stages ``scenes`` and ``tiles``; ``message(text)`` gets one line per failed scene.
    Returns a :class:`BatchResult` (its ``exit_code`` is 3 when some scene failed); raises
    :class:`InputError` for bad usage and ``KeyboardInterrupt`` when interrupted (after
    cancelling the work and removing every temporary file). ``zones``: a
    :class:`~s2m_geo.zones.io.ZonesInput` whose table (from the merged changes) goes into
    the reports.
    """
    t_start = time.perf_counter()
    jobs = list(jobs)
    if not jobs:
        raise InputError("no scenes to process; give a manifest with rows or folders with matching files")
    for job in jobs:
        check_scene_id(job.scene_id, f"scene {job.scene_id!r}")
    check_unique(jobs, "scenes")
    model_path = Path(os.path.abspath(model))
    table = read_model_meta(model_path).class_table
    out = _output_folder(out_dir)
    if workers is None:
        workers = default_workers()
    if torch_threads is None and client is None and not scheduler:
        torch_threads = max(1, (os.cpu_count() or 1) // (workers * threads_per_worker))
    settings = BatchSettings(
        str(out),
        str(model_path),
        options or PredictOptions(),
        min_area_m2,
        simplify_m,
        torch_threads,
        quicklook_size,
        model_sha256=sha256_file(model_path),
    )
    settings.config_hash = config_hash(settings)
    if client is None and not scheduler:  # local workers share this machine's export cache
        prepare_runtime(model_path, settings.options.device, settings.options.runtime)
    settings.topic = TOPIC_PREFIX + uuid.uuid4().hex if progress else None
    say = message or (lambda text: None)
    cluster = ClusterSpec(
        client, scheduler, workers, threads_per_worker, memory_limit, gpu_per_task, split_above_mpx, connect_timeout
    )

    with FolderLock(out):
        sweep_partials(out)
        outcomes, todo = _triage(jobs, settings, force, say)
        if progress:
            progress("scenes", len(outcomes), len(jobs))
        if todo:
            SceneRunner(settings, cluster, outcomes, len(jobs), progress, say).run(todo)
        ordered = [outcomes[j.scene_id] for j in jobs]
        merged, merge_error = _merge(out / MERGED_NAME, [o for o in ordered if o.complete], table)
        result = BatchResult(out, ordered, merged, [], time.perf_counter() - t_start, model_path.name, source)
        result.merge_error = merge_error
        if zones is not None and merged is not None:
            from ..zones.io import zone_rows

            result.zones = zone_rows(merged, zones, table)
        result.reports, result.report_error = _reports(result, table)
        sweep_partials(out)
    return result


def _written_or_why(write: Callable[[], Any], where: str | Path) -> tuple[Any, str | None]:
    """What ``write()`` returns, or None and why it failed (disk full, permissions, GDAL),
    told where: a full disk must not also cost what the run can still say (the report, the
    command's own summary of complete and failed scenes)."""
    try:
        return write(), None
    except Exception as exc:  # noqa: BLE001 - said in the report or on the command line
        return None, f"{error_text(exc, where)}; check the free disk space, then run again"


def _merge(path: Path, complete: list[SceneOutcome], table: ClassTable) -> tuple[Path | None, str | None]:
    """The merged layers, or why they could not be written (said in the report)."""
    from ..report import write_merged

    return _written_or_why(lambda: write_merged(path, complete, table), path)


def _reports(result: BatchResult, table: ClassTable) -> tuple[list[Path], str | None]:
    """The reports written, or why one could not be (said on the command line)."""
    from ..report import write_reports

    written, why = _written_or_why(lambda: write_reports(result, table), Path(result.out_dir) / "report.*")
    return written or [], why


def _output_folder(out_dir: str | Path) -> Path:
    """The output folder, made if needed; an InputError when it cannot be written."""
    out = Path(os.path.abspath(out_dir))
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose an output folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror}); choose a writable place") from None
    if not os.access(out, os.W_OK):
        raise InputError(f"{out}: output folder is not writable; choose another place")
    return out


def _triage(
    jobs: list[SceneJob], settings: BatchSettings, force: bool, say: Message
) -> tuple[dict[str, SceneOutcome], list[SceneJob]]:
    """The outcomes known before running (bad jobs, complete scenes) and the jobs to run."""
    outcomes: dict[str, SceneOutcome] = {}
    todo: list[SceneJob] = []
    for job in jobs:
        if job.error:
            outcomes[job.scene_id] = SceneOutcome(job, "failed", job.error)
            say(f"{job.scene_id}: failed: {job.error}")
            continue
        marker, why = (None, "") if force else verify_scene(job, settings)
        if marker is not None:
            outcomes[job.scene_id] = SceneOutcome(
                job, "skipped", marker=marker, seconds=float(marker.get("seconds", 0.0))
            )
        else:
            if why and why != "not done yet":
                say(f"{job.scene_id}: earlier outputs are not complete ({why}); redoing the scene")
            todo.append(job)
    return outcomes, todo


@dataclass
class ClusterSpec:
    """Where the scenes run: ``client`` as is, or one on ``scheduler``, or a new local cluster."""

    client: Any = None
    scheduler: str | None = None
    workers: int = 1
    threads_per_worker: int = 1
    memory_limit: Any = "auto"
    gpu_per_task: float | None = None
    split_above_mpx: float | None = None
    connect_timeout: float = 30.0


class SceneRunner:
    """Runs scenes on the cluster and fills ``outcomes`` as they finish.

    Scenes are Dask tasks (one per scene, see :func:`run_scene`); a scene above
    ``split_above_mpx`` runs from this process instead, its blocks spread over the workers.
    Interrupted, it cancels the work, stops a cluster it started and removes temporary files.
    """

    def __init__(
        self,
        settings: BatchSettings,
        cluster: ClusterSpec,
        outcomes: dict[str, SceneOutcome],
        total: int,
        progress: Progress | None,
        say: Message,
    ) -> None:
        self.settings, self.spec, self.outcomes, self.total = settings, cluster, outcomes, total
        self.progress, self.say = progress, say
        self.own = cluster.client is None
        self.client = cluster.client
        self.cluster = None
        self.tiles = TileProgress(progress)
        self.futures: list = []
        self.stop = threading.Event()
        self.big_thread: threading.Thread | None = None
        self.done_q: queue.Queue = queue.Queue()
        self.resources = {"GPU": cluster.gpu_per_task} if cluster.gpu_per_task else None

    def run(self, todo: list[SceneJob]) -> None:
        """Run every job of ``todo``; returns when all have an outcome."""
        try:
            if self.own:
                s = self.spec
                self.client, self.cluster = start_client(
                    s.scheduler, s.workers, s.threads_per_worker, s.memory_limit, s.gpu_per_task, s.connect_timeout
                )
            if self.progress:
                self.client.subscribe_topic(self.settings.topic, self.tiles.event)
            limit = self.spec.split_above_mpx
            big = [j for j in todo if limit and megapixels(j.pre) > limit]
            by_key = self._submit([j for j in todo if j not in big])
            if big:
                self.big_thread = threading.Thread(
                    target=self._run_big, args=(big,), name="s2m-batch-split", daemon=True
                )
                self.big_thread.start()
            self._collect(len(todo), by_key)
        except BaseException:
            self.stop.set()
            _ignore_sigterm_while(self._abort)
            raise
        self._close()

    def _submit(self, jobs: list[SceneJob]) -> dict[str, SceneJob]:
        """One Dask task per scene; returns the jobs by task key."""
        token = uuid.uuid4().hex[:8]
        for job in jobs:
            fut = self.client.submit(
                run_scene,
                job,
                self.settings,
                key=f"s2m-scene-{token}-{len(self.futures)}",
                pure=False,
                resources=self.resources,
            )
            fut.add_done_callback(self.done_q.put)
            self.futures.append((job, fut))
        return {fut.key: job for job, fut in self.futures}

    def _run_big(self, big: list[SceneJob]) -> None:
        """Large scenes, one after the other, their blocks spread over the workers."""
        import dask

        for job in big:
            if self.stop.is_set():
                return
            t0 = time.perf_counter()
            try:
                with dask.annotate(**({"resources": self.resources} if self.resources else {})):
                    marker = produce_scene(
                        job,
                        self.settings,
                        self.settings.model,
                        client=self.client,
                        progress=self._tile_progress(job.scene_id),
                    )
                self.done_q.put(
                    SceneOutcome(
                        job, "done", marker=marker, seconds=time.perf_counter() - t0, worker="(split over the cluster)"
                    )
                )
            except Exception as exc:
                where = scene_glob(self.settings.out_dir, job.scene_id)
                self.done_q.put(SceneOutcome(job, "failed", error_text(exc, where), seconds=time.perf_counter() - t0))

    def _tile_progress(self, scene_id: str) -> Progress:
        def report(stage: str, done: int, total: int) -> None:
            if stage == "infer":
                self.tiles.update(scene_id, done, total)

        return report

    def _collect(self, remaining: int, by_key: dict[str, SceneJob]) -> None:
        """Take finished scenes off the queue (tasks and split scenes alike) until none remain."""
        while remaining:
            try:
                item = self.done_q.get(timeout=0.5)
            except queue.Empty:
                continue
            outcome = item if isinstance(item, SceneOutcome) else _outcome_of(by_key[item.key], item)
            self.outcomes[outcome.scene_id] = outcome
            remaining -= 1
            if outcome.status == "failed":
                self.say(f"{outcome.scene_id}: failed: {outcome.error}")
            if self.progress:
                self.progress("scenes", len(self.outcomes), self.total)

    def _close(self) -> None:
        if self.progress:
            try:
                self.client.unsubscribe_topic(self.settings.topic)
            except Exception:
                pass
        if self.own:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()

    def _abort(self) -> None:
        """Interrupted: cancel the work, stop our cluster, remove temporary files."""
        if self.client is not None:
            try:
                self.client.cancel([f for _, f in self.futures])
            except Exception:
                pass
        if self.own and self.client is not None:
            try:
                self.client.close(timeout=10)
            except Exception:
                pass
        if self.own and self.cluster is not None:
            try:
                self.cluster.close(timeout=20)
            except Exception:
                pass
        if self.big_thread is not None:
            self.big_thread.join(timeout=30)
        sweep_partials(self.settings.out_dir)


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
