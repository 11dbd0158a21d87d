"""End-to-end prediction speed and memory vs pure model forward (prints a table; not a test).

For synthetic scenes of 1x, 4x and 16x area it runs, each in a fresh process (so peak RSS is
that run's alone):

- ``predict``: the real pipeline (align, tile with overlap, read-ahead, batched forward,
  exact blending, streaming COG write);
- ``forward``: the same number of tiles through the same model, batched, from one in-memory
  batch — the floor the pipeline is measured against;
- ``whole-array``: the way peers do it (both scenes read whole, full-size float32
  probability and weight accumulators, uniform averaging of overlapping tiles).

    python benchmarks/pipeline.py                       # 1024, 2048, 4096
    python benchmarks/pipeline.py --sizes 1024 2048 --backbone resnet18
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
mode, pre, post, model, out, batch = sys.argv[1:7]
batch = int(batch)
from s2m_geo.predict.runners import load_change_model
m = load_change_model(model, "auto")
tile, overlap = m.meta.tile_size, m.meta.default_overlap
res = {}
warm = np.zeros((1, 3, tile, tile), np.float32)
m.probabilities(warm, warm)  # one warm-up forward in every mode (first calls are slow)
if mode == "predict":
    from s2m_geo.predict.pipeline import PredictOptions, predict
    t = time.perf_counter()
    r = predict(pre, post, out, m, PredictOptions(batch_size=batch))
    res.update(seconds=time.perf_counter() - t, tiles=r.tiles)
elif mode == "forward":
    n = int(out)
    x = np.random.default_rng(0).uniform(0, 255, (batch, 3, tile, tile)).astype(np.float32)
    t = time.perf_counter()
    done = 0
    while done < n:
        k = min(batch, n - done)
        m.probabilities(x[:k], x[:k])
        done += k
    res.update(seconds=time.perf_counter() - t, tiles=n)
else:  # whole-array baseline
    import rasterio
    from s2m_geo.predict.tiling import axis_starts
    t = time.perf_counter()
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
    with rasterio.open(out, "w", **profile) as o:
        o.write(cls, 1)
    res.update(seconds=time.perf_counter() - t, tiles=len(tiles))
res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(res))
"""


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _model(path: Path, backbone: str, tile: int, overlap: int) -> Path:
    import torch

    from s2m_geo.classes import load_class_table
    from s2m_geo.model import PackageMeta, build_model, save_package

    torch.manual_seed(0)
    net = build_model({"backbone": backbone, "decoder_channels": 64, "attn_heads": 4})
    return save_package(path, net, PackageMeta(class_table=load_class_table(), tile_size=tile, default_overlap=overlap))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--backbone", default="mobilenetv3_large_100")
    ap.add_argument("--model", default=None, help="a model package to use instead of a random one")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()

    import torch

    from s2m_geo.synthetic import SceneSpec, write_scene

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = (
            Path(args.model) if args.model else _model(tmp / "m.safetensors", args.backbone, args.tile, args.overlap)
        )
        print(
            f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, cuda={torch.cuda.is_available()}; model {model.name} "
            f"({args.backbone if not args.model else 'package'}), tile {args.tile}, "
            f"overlap {args.overlap}, batch {args.batch}"
        )
        print(
            f"{'scene':>11} {'tiles':>5} | {'predict s':>9} {'tiles/s':>7} {'RSS MiB':>7} | "
            f"{'forward s':>9} {'ratio':>5} | {'whole s':>7} {'RSS MiB':>7}"
        )
        base = None
        for size in args.sizes:
            scene = write_scene(tmp / f"s{size}", SceneSpec(size=size, seed=7))
            p = _child(
                "predict", str(scene["pre"]), str(scene["post"]), str(model), str(tmp / f"c{size}.tif"), str(args.batch)
            )
            f = _child("forward", str(scene["pre"]), str(scene["post"]), str(model), str(p["tiles"]), str(args.batch))
            w = _child(
                "whole", str(scene["pre"]), str(scene["post"]), str(model), str(tmp / f"w{size}.tif"), str(args.batch)
            )
            base = base or p
            print(
                f"{size:>5}x{size:<5} {p['tiles']:>5} | {p['seconds']:9.1f} {p['tiles'] / p['seconds']:7.2f} "
                f"{p['peak_rss_mib']:7.0f} | {f['seconds']:9.1f} {p['seconds'] / f['seconds']:5.2f} | "
                f"{w['seconds']:7.1f} {w['peak_rss_mib']:7.0f}",
                flush=True,
            )
            print(
                f"{'':>11} time vs first: {p['seconds'] / base['seconds']:.2f}x for "
                f"{size * size / args.sizes[0] ** 2:.0f}x area; RSS vs first: "
                f"{p['peak_rss_mib'] / base['peak_rss_mib']:.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
