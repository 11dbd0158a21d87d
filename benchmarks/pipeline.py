"""End-to-end prediction speed and memory vs pure model forward (prints a table; not a test).

For synthetic scenes it runs, each mode in a fresh process (so peak RSS is that run's alone):

- ``predict``: the real pipeline (align, tile with overlap, read-ahead, batched forward,
  exact blending, streaming COG write; with ``--output gpkg`` also vectorizing, describing
  and the GeoPackage, as ``s2m-geo predict -o x.gpkg`` does);
- ``forward``: the same tiles, read into memory first, through the same model in the same
  batches — the floor the pipeline is measured against;
- ``whole``: the way peers do it (both scenes read whole, full-size float32 probability and
  weight accumulators, uniform averaging of overlapping tiles).

Scenes are 1x, 4x and 16x area by default (``--sizes``), or one scene just large enough for
``--tiles`` tiles. The model is a random package (``--backbone``), the shipped one
(``--model default``), random weights from a training config's ``model:`` section
(``--config``), a file, or ``--model free``: a two-input ONNX model computing an absolute difference
(:func:`s2m_geo.testing.difference_onnx`, as ``benchmarks/pipeline_io.py`` uses), so ``predict``
measures the pipeline alone. On CUDA the runner autocasts to bf16 (``s2m_geo.devices``).

Each mode prints its wall seconds and its CPU seconds (all threads of the process). The CPU
ratio of ``predict`` to ``forward`` is the pipeline's own work beside the model's; it is steadier
than the time ratio on a shared machine, and where the model fills every core the time ratio
cannot go below it. Under ``predict`` a line splits its CPU seconds by thread (on Linux): the
main thread (batching, the model's calls), the readers, the stitching thread, and the model's
and GDAL's own pools; on a machine with cores to spare the busiest thread sets the pace.
``--vector-thread`` is an experiment for such a machine: the GeoPackage's vectorizing and
describing move from the stitching thread to one of their own (``s2m-vector``), to see whether
that raises the rate or the GIL holds it (docs/benchmarks.md, "What will limit a GPU run").

    python benchmarks/pipeline.py                       # 1024, 2048, 4096
    python benchmarks/pipeline.py --sizes 1024 2048 --backbone resnet18
    python benchmarks/pipeline.py --model default --output gpkg --tiles 361 --modes predict forward
    python benchmarks/pipeline.py --model default --output gpkg --tiles 361 --modes forward predict --repeat 7

With ``--repeat N`` the modes run in turn N times (one row each) and a last row gives the
median, least and largest of the per-run ratios: on a shared machine a single pair of runs
can be off by 10 % either way.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import collections, json, os, resource, sys, threading, time
import numpy as np

def task_cpu():  # CPU seconds of each thread of this process (Linux /proc; empty elsewhere)
    out, tick = {}, os.sysconf("SC_CLK_TCK")
    for tid in (os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []):
        try:
            f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(f[11]) + int(f[12])) / tick
        except OSError:
            pass
    return out

class ThreadCPU:  # CPU seconds by thread name while it runs, sampled every 50 ms
    def __init__(self):
        self.start, self.names, self.stop = task_cpu(), {}, threading.Event()
        self.last = dict(self.start)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
    def sample(self):
        for th in threading.enumerate():
            if th.native_id:
                self.names[th.native_id] = th.name.split("_")[0]  # s2m-read_0, s2m-read_1: s2m-read
        self.last.update(task_cpu())
    def run(self):
        while not self.stop.wait(0.05):
            self.sample()
    def result(self):
        self.stop.set(); self.thread.join(); self.sample()
        by = collections.Counter()
        for tid, cpu in self.last.items():
            if tid != self.thread.native_id:
                by[self.names.get(tid, "other")] += cpu - self.start.get(tid, 0.0)
        return {k: round(v, 2) for k, v in by.most_common() if v >= 0.05}

spec = json.loads(sys.argv[1])
mode, pre, post, batch = spec["mode"], spec["pre"], spec["post"], spec["batch"]
from s2m_geo.predict.runners import load_change_model
m = load_change_model(spec["model"], spec["device"], spec["runtime"])
tile, overlap = spec["tile"] or m.meta.tile_size, spec["overlap"]
overlap = m.meta.default_overlap if overlap is None else overlap
res = {"precision": str(getattr(m, "dtype", None) or "float32").replace("torch.", "")}
warm = np.zeros((batch, 3, tile, tile), np.float32)
m.probabilities(warm, warm)  # one warm-up forward in every mode (first calls are slow)
if spec.get("vector_thread"):  # the experiment of --vector-thread, not the library's way
    from s2m_geo import detect
    from s2m_geo.predict.pipeline import _InOrder
    call, finish = detect._VectorSink.__call__, detect._VectorSink.finish
    def queued(self, *finished):  # (core, classes, confidence, probabilities)
        if getattr(self, "stage", None) is None:
            self.stage = _InOrder(lambda item: call(self, *item), depth=2)
            self.stage._thread.name = "s2m-vector"
        self.stage.put(finished)
    def drained(self, *args):
        if getattr(self, "stage", None) is not None:
            self.stage.close()
        return finish(self, *args)
    detect._VectorSink.__call__, detect._VectorSink.finish = queued, drained
if mode == "predict":
    from s2m_geo.predict.pipeline import PredictOptions
    opts = PredictOptions(batch_size=batch, tile_size=tile, overlap=overlap,
                          device=spec["device"], runtime=spec["runtime"], read_threads=spec["read_threads"])
    t, cpu, threads = time.perf_counter(), time.process_time(), ThreadCPU()
    if spec["out"].endswith(".gpkg"):
        from s2m_geo.detect import detect_changes
        d = detect_changes(pre, post, spec["out"], m, opts)
        r = d.prediction
        res["polygons"] = d.changes
    else:
        from s2m_geo.predict.pipeline import predict
        r = predict(pre, post, spec["out"], m, opts)
    res.update(seconds=time.perf_counter() - t, cpu=time.process_time() - cpu, tiles=r.tiles)
    res["threads"] = threads.result()
elif mode == "forward":
    import rasterio
    from rasterio.windows import Window
    from s2m_geo.predict.tiling import axis_starts
    with rasterio.open(pre) as A, rasterio.open(post) as B:
        starts = [(r, c) for r in axis_starts(A.height, tile, overlap) for c in axis_starts(A.width, tile, overlap)]
        batches = []
        for i in range(0, len(starts), batch):
            w = [Window(c, r, tile, tile) for r, c in starts[i:i + batch]]
            batches.append((np.stack([A.read(window=x) for x in w]).astype(np.float32),
                            np.stack([B.read(window=x) for x in w]).astype(np.float32)))
    t, cpu = time.perf_counter(), time.process_time()
    for x, y in batches:
        m.probabilities(x, y)
    res.update(seconds=time.perf_counter() - t, cpu=time.process_time() - cpu, tiles=len(starts))
else:  # whole-array baseline
    import rasterio
    from s2m_geo.predict.tiling import axis_starts
    t, cpu = time.perf_counter(), time.process_time()
    with rasterio.open(pre) as a, rasterio.open(post) as b:
        A = a.read().astype(np.float32); B = b.read().astype(np.float32)
        profile = a.profile
    H, W = A.shape[1:]
    k = m.num_classes
    acc = np.zeros((k, H, W), np.float32); cnt = np.zeros((H, W), np.float32)
    tiles = [(r, c) for r in axis_starts(H, tile, overlap) for c in axis_starts(W, tile, overlap)]
    for i in range(0, len(tiles), batch):
        chunk = tiles[i:i + batch]
        p = m.probabilities(np.stack([A[:, r:r + tile, c:c + tile] for r, c in chunk]),
                            np.stack([B[:, r:r + tile, c:c + tile] for r, c in chunk]))
        for (r, c), pr in zip(chunk, p):
            acc[:, r:r + tile, c:c + tile] += pr; cnt[r:r + tile, c:c + tile] += 1
    cls = (acc / cnt).argmax(0).astype(np.uint8)
    profile.update(count=1, dtype="uint8", nodata=None, photometric=None)
    with rasterio.open(spec["out"], "w", **profile) as o:
        o.write(cls, 1)
    res.update(seconds=time.perf_counter() - t, cpu=time.process_time() - cpu, tiles=len(tiles))
res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(res))
"""


def _child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True)
    if out.returncode:  # the child's own error, not this script's text
        raise SystemExit(f"{spec['mode']} failed:\n" + "\n".join(out.stderr.strip().splitlines()[-6:]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def _random_package(path: Path, model_cfg: dict, tile: int, overlap: int) -> Path:
    import torch

    from s2m_geo.classes import load_class_table
    from s2m_geo.model import PackageMeta, build_model, save_package
    from s2m_geo.model.package import normalization_for_backbone

    torch.manual_seed(0)
    net = build_model(model_cfg)
    meta = PackageMeta(
        class_table=load_class_table(),
        tile_size=tile,
        default_overlap=overlap,
        normalization=normalization_for_backbone(model_cfg["backbone"]),
    )
    return save_package(path, net, meta)


def _side_for(tiles: int, tile: int, overlap: int) -> int:
    """The smallest square scene side whose tile grid holds at least ``tiles`` tiles."""
    n = math.isqrt(tiles - 1) + 1
    return (n - 1) * (tile - overlap) + tile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--tiles", type=int, default=None, help="one scene, just large enough for this many tiles")
    ap.add_argument("--backbone", default="mobilenetv3_large_100", help="random package of this backbone")
    ap.add_argument("--model", default=None, help="'default' (the shipped model), 'free' (no network) or a file")
    ap.add_argument("--config", default=None, help="random weights from this training config's model: section")
    ap.add_argument("--tile", type=int, default=None, help="tile size (default: the model's; 512 for random ones)")
    ap.add_argument("--overlap", type=int, default=None, help="tile overlap (default: the model's; 64 for random)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--output", choices=["tif", "gpkg"], default="tif", help="predict writes a COG, or a GeoPackage")
    modes = ["predict", "forward", "whole"]
    ap.add_argument("--modes", nargs="+", choices=modes, default=modes, help="which to run, in this order")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx"])
    ap.add_argument(
        "--read-threads", type=int, default=None, help="threads reading ahead (default: what the model needs)"
    )
    ap.add_argument(
        "--vector-thread",
        action="store_true",
        help="experiment (--output gpkg): vectorize and describe in a thread of their own after the stitching thread",
    )
    ap.add_argument("--workdir", default=None, help="keep scenes here and reuse them (default: a temporary folder)")
    ap.add_argument("--repeat", type=int, default=1, help="run the modes in turn this many times (one row each)")
    args = ap.parse_args()

    import torch

    from s2m_geo.synthetic import SceneSpec, write_scene

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        scenes = Path(args.workdir) if args.workdir else tmp
        tile, overlap = args.tile, args.overlap
        if args.model == "default":
            from s2m_geo.predict.runners import default_model_path

            model, what = str(default_model_path()), "the shipped default model"
        elif args.model == "free":
            from s2m_geo.testing import difference_onnx

            model = str(difference_onnx(tmp / "free.onnx"))
            what = "free (an ONNX absolute difference, s2m_geo.testing.difference_onnx): the pipeline alone"
        elif args.model:
            model, what = args.model, "package"
        else:
            import yaml

            cfg = yaml.safe_load(Path(args.config).read_text())["model"] if args.config else None
            cfg = cfg or {"backbone": args.backbone, "decoder_channels": 64, "attn_heads": 4}
            tile, overlap = tile or 512, 64 if overlap is None else overlap
            model = str(_random_package(tmp / "m.safetensors", cfg, tile, overlap))
            what = f"{cfg['backbone']}, random weights" + (f" from {args.config}" if args.config else "")
        if tile is None or overlap is None:
            from s2m_geo.predict.runners import read_model_meta

            meta = read_model_meta(model)
            tile, overlap = tile or meta.tile_size, meta.default_overlap if overlap is None else overlap
        sizes = [_side_for(args.tiles, tile, overlap)] if args.tiles else args.sizes
        print(
            f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"cuda={torch.cuda.is_available()}"
            + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "")
        )
        print(
            f"model: {what}; tile {tile}, overlap {overlap}, batch {args.batch}, device {args.device}, "
            f"runtime {args.runtime}, output {args.output}, "
            f"read threads {args.read_threads or 'the model default'}"
            + (", vectorizing in a thread of its own (experiment)" if args.vector_thread else ""),
            flush=True,
        )
        print(
            f"{'scene':>11} {'tiles':>5} | {'predict s':>9} {'cpu s':>6} {'tiles/s':>7} {'RSS MiB':>7} | "
            f"{'forward s':>9} {'cpu s':>6} {'tiles/s':>7} {'ratio':>5} {'cpu':>5} | {'whole s':>7} {'RSS MiB':>7} | "
            "precision",
            flush=True,
        )
        common = {"model": model, "batch": args.batch, "tile": tile, "overlap": overlap}
        common.update(device=args.device, runtime=args.runtime, read_threads=args.read_threads)
        common["vector_thread"] = args.vector_thread
        base = None
        for size in sizes:
            folder = scenes / f"s{size}-seed7"
            if not (folder / "post.tif").is_file():
                write_scene(folder, SceneSpec(size=size, seed=7))
            pair = {"pre": str(folder / "pre.tif"), "post": str(folder / "post.tif")}
            ratios: list[tuple[float, float]] = []
            for _ in range(args.repeat):
                base = _row(args, common, pair, size, tmp, base, sizes[0] if len(sizes) > 1 else None, ratios)
            if len(ratios) > 1:
                times, cpus = sorted(r[0] for r in ratios), sorted(r[1] for r in ratios)
                print(
                    f"{'':>11} predict / forward over {len(ratios)} runs: time median "
                    f"{statistics.median(times):.3f} ({times[0]:.3f}-{times[-1]:.3f}), cpu median "
                    f"{statistics.median(cpus):.3f} ({cpus[0]:.3f}-{cpus[-1]:.3f})",
                    flush=True,
                )


def _row(args, common: dict, pair: dict, size: int, tmp: Path, base: dict | None, first: int | None, ratios: list):
    """Run the modes once on one scene and print their row. Returns the predict result later
    sizes are compared with (``base``, or this run's); appends the (time, cpu) ratios of
    predict to forward to ``ratios``. ``first``: the first size, when there are several."""
    res = {}
    for mode in args.modes:
        out = tmp / f"{mode}{size}.{args.output if mode == 'predict' else 'tif'}"
        out.unlink(missing_ok=True)  # the last run's: outputs are never overwritten
        res[mode] = _child({**common, **pair, "mode": mode, "out": str(out)})
    p, f, w = res.get("predict"), res.get("forward"), res.get("whole")
    any_res = p or f or w
    assert any_res is not None
    cells = [f"{size:>5}x{size:<5} {any_res['tiles']:>5}"]
    cells.append(
        f"{p['seconds']:9.1f} {p['cpu']:6.1f} {p['tiles'] / p['seconds']:7.2f} {p['peak_rss_mib']:7.0f}"
        if p
        else f"{'-':>9} {'-':>6} {'-':>7} {'-':>7}"
    )
    # the cpu ratio (all threads' CPU seconds) is the pipeline's own work beside the model's:
    # on a machine whose cores the model fills, the time ratio cannot go below it
    ratio = f"{'-':>5} {'-':>5}"
    if p and f:
        ratios.append((p["seconds"] / f["seconds"], p["cpu"] / f["cpu"]))
        ratio = f"{ratios[-1][0]:5.2f} {ratios[-1][1]:5.2f}"
    cells.append(
        f"{f['seconds']:9.1f} {f['cpu']:6.1f} {f['tiles'] / f['seconds']:7.2f} {ratio}"
        if f
        else f"{'-':>9} {'-':>6} {'-':>7} {ratio}"
    )
    cells.append(f"{w['seconds']:7.1f} {w['peak_rss_mib']:7.0f}" if w else f"{'-':>7} {'-':>7}")
    cells.append(any_res["precision"] + (f", {p['polygons']} polygons" if p and "polygons" in p else ""))
    print(" | ".join(cells), flush=True)
    if p and p.get("threads"):  # which thread would limit a machine with cores to spare
        by = ", ".join(f"{k} {v:.1f}" for k, v in p["threads"].items())
        print(f"{'':>11} predict CPU s by thread ('other': the model's and GDAL's own): {by}", flush=True)
    if p and first is not None:
        base = base or p
        print(
            f"{'':>11} time vs first: {p['seconds'] / base['seconds']:.2f}x for "
            f"{size * size / first**2:.0f}x area; RSS vs first: "
            f"{p['peak_rss_mib'] / base['peak_rss_mib']:.2f}x",
            flush=True,
        )
    return base


if __name__ == "__main__":
    main()
