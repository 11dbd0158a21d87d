"""Batch throughput: scenes per hour with 1 and 2 local workers, and memory per worker
(prints a table; not a test).

It makes N small synthetic pairs and, unless ``--model`` is given, a tiny *random* S2M package
(64-pixel tiles, like the test fixture) — so the figures measure the batch machinery (Dask
tasks, I/O, blending, vectorising, GeoPackages, quicklooks, reports) with a light model, not
a real model's forward cost. For each configuration it starts a LocalCluster, warms every
worker (imports and model load, which a long batch amortises), then times ``run_batch`` over
the pairs into a fresh folder. Configurations are ``WORKERSxTORCH_THREADS``: ``1x1`` and
``2x1`` give the scaling ratio of worker processes, ``1x2`` what one process gets from two
threads. A sequential ``detect_changes`` loop in this process (1 torch thread) is the
baseline. "worker CPU s / wall s" is how many cores the workers actually got. Memory: each
worker process's peak RSS (shared libraries included) and, after the run, its unique set
size (USS: the memory that is its own).

    python benchmarks/batch.py                      # 8 pairs of 512², configs 1x1 2x1 1x2
    python benchmarks/batch.py --pairs 16 --size 1024 --configs 1x1 2x1 4x1 --model model.safetensors
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _uss_mib() -> float:
    import psutil

    return psutil.Process().memory_full_info().uss / 2**20


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _tiny_model(path: Path) -> Path:
    from s2m_geo.testing import tiny_model

    return tiny_model(path)


def _warm(model: str, threads: int) -> float:
    import numpy as np
    import torch

    from s2m_geo.predict.pipeline import worker_model

    torch.set_num_threads(threads)
    m = worker_model(model, "auto")
    x = np.zeros((1, 3, m.meta.tile_size, m.meta.tile_size), np.float32)
    m.probabilities(x, x)  # first forward is slow
    return _peak_rss_mib()


def run(workers: int, threads: int, jobs, model: Path, root: Path) -> dict:
    import logging

    from distributed import Client, LocalCluster

    from s2m_geo.batch import run_batch

    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm, str(model), threads)
        start = time.perf_counter() - t0
        cpu0 = client.run(_cpu_seconds)
        t1 = time.perf_counter()
        result = run_batch(jobs, root / f"out_{workers}x{threads}", model, client=client, torch_threads=threads)
        seconds = time.perf_counter() - t1
        cpu1 = client.run(_cpu_seconds)
        peaks = client.run(_peak_rss_mib)
        uss = client.run(_uss_mib)
    assert not result.failed, [o.error for o in result.failed]
    per_worker: dict = {}
    for o in result.outcomes:
        per_worker[o.worker] = per_worker.get(o.worker, 0) + 1
    return {
        "workers": workers,
        "threads": threads,
        "seconds": seconds,
        "start": start,
        "scenes": len(jobs),
        "cores_used": sum(cpu1[w] - cpu0[w] for w in cpu1) / seconds,
        "peaks": sorted(peaks.values()),
        "uss": sorted(uss.values()),
        "per_worker": sorted(per_worker.values()),
    }


def baseline(jobs, model: Path, root: Path) -> dict:
    import numpy as np
    import torch

    from s2m_geo.detect import detect_changes
    from s2m_geo.predict.runners import load_change_model

    torch.set_num_threads(1)
    runner = load_change_model(model)
    x = np.zeros((1, 3, runner.meta.tile_size, runner.meta.tile_size), np.float32)
    runner.probabilities(x, x)
    out = root / "sequential"
    out.mkdir()
    t = time.perf_counter()
    for j in jobs:
        detect_changes(
            j.pre, j.post, out / f"{j.scene_id}.gpkg", runner, raster=out / f"{j.scene_id}.tif", scene_id=j.scene_id
        )
    return {"seconds": time.perf_counter() - t, "scenes": len(jobs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--configs", nargs="+", default=["1x1", "2x1", "1x2"], help="WORKERSxTORCH_THREADS per run")
    ap.add_argument("--model", type=Path, default=None, help="default: a tiny random package")
    args = ap.parse_args()

    from s2m_geo.batch import SceneJob
    from s2m_geo.synthetic import SceneSpec, write_scene

    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="s2m-batch-bench-") as tmp:
        root = Path(tmp)
        model = args.model or _tiny_model(root / "tiny_random.safetensors")
        jobs = []
        for i in range(args.pairs):
            p = write_scene(root / f"pair{i}", SceneSpec(size=args.size, seed=i))
            jobs.append(SceneJob(f"pair{i}", str(p["pre"]), str(p["post"])))
        base = baseline(jobs, model, root)
        configs = [tuple(int(v) for v in c.lower().split("x")) for c in args.configs]
        rows = [run(w, t, jobs, model, root) for w, t in configs]

    import torch

    print(
        f"# s2m-geo batch: {args.pairs} synthetic pairs of {args.size}x{args.size} px, model "
        f"{'a tiny random package (64 px tiles)' if args.model is None else args.model.name}"
    )
    print(
        f"# {platform.platform()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}; load average before the runs {load[0]:.1f}"
    )
    print()
    print(
        "| run | workers x torch threads | seconds | scenes/hour | vs 1x1 | cluster start + warm-up s "
        "| scenes per worker | worker CPU s / wall s | peak RSS per worker MiB | USS per worker MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    sph = 3600 * base["scenes"] / base["seconds"]
    print(
        f"| sequential detect_changes | 1 process x 1 | {base['seconds']:.1f} | {sph:.0f} | — | — "
        f"| {base['scenes']} | — | — | — |"
    )
    one = next((r for r in rows if (r["workers"], r["threads"]) == (1, 1)), None)
    for r in rows:
        sph = 3600 * r["scenes"] / r["seconds"]
        ratio = f"{one['seconds'] / r['seconds']:.2f}x" if one else "—"
        print(
            f"| batch, LocalCluster | {r['workers']} x {r['threads']} | {r['seconds']:.1f} | {sph:.0f} | {ratio} "
            f"| {r['start']:.1f} | {'/'.join(map(str, r['per_worker']))} | {r['cores_used']:.2f} "
            f"| {' / '.join(f'{p:.0f}' for p in r['peaks'])} | {' / '.join(f'{p:.0f}' for p in r['uss'])} |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
