"""The Dask side of a batch: a client on a running scheduler or a new local cluster, the
number of local workers, and the tile progress that workers send back as events."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from ..errors import InputError
from .produce import error_text

Progress = Callable[[str, int, int], None]


class TileProgress:
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


def megapixels(path: str) -> float:
    try:
        import rasterio

        with rasterio.open(path) as ds:
            return ds.width * ds.height / 1e6
    except Exception:
        return 0.0


def start_client(
    scheduler: str | None,
    workers: int,
    threads_per_worker: int,
    memory_limit: Any,
    gpu_per_task: float | None,
    connect_timeout: float,
):
    """A client on the given scheduler, or on a new LocalCluster; returns (client, cluster)."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout}s")
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"{scheduler}: cannot reach a Dask scheduler there ({error_text(exc)}); "
                f"start one (dask scheduler) or check {{scheduler}}",
                params=("scheduler",),
            ) from None
        except ValueError as exc:
            raise InputError(f"{scheduler}: not a scheduler address ({exc}); give e.g. tcp://HOST:8786") from None
        try:
            client.wait_for_workers(1, timeout=connect_timeout)
        except (TimeoutError, OSError):
            client.close()
            raise InputError(
                f"{scheduler}: the scheduler has no workers; start some (dask worker {scheduler})"
            ) from None
        if gpu_per_task:
            info = client.scheduler_info(n_workers=-1) if _accepts_n_workers(client) else client.scheduler_info()
            if not any(
                (w.get("resources") or {}).get("GPU", 0) >= gpu_per_task for w in info.get("workers", {}).values()
            ):
                client.close()
                raise InputError(
                    f"{scheduler}: no worker offers the resource GPU={gpu_per_task}; start "
                    f"workers with --resources GPU=1 or drop {{gpu_per_task}}",
                    params=("gpu_per_task",),
                )
        return client, None
    resources = {"GPU": max(1.0, float(gpu_per_task))} if gpu_per_task else None
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        # None still means distributed's default :8787 on every interface, and a port already
        # taken there prints a UserWarning into the run's output (breaking --progress json):
        # any free port, on this machine only
        dashboard_address="127.0.0.1:0",
        memory_limit=memory_limit,
        resources=resources,
        silence_logs=logging.ERROR,
    )
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
