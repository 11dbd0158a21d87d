"""A mosaic that is mostly nodata: does a run cost its valid area or its declared size?
(prints a table; not a test).

The issue's case: two synthetic ``--footprint``-pixel scenes (``SceneSpec(seed=7)`` and
``seed=8``, nodata 0) placed far apart in a VRT of ``--sizes`` pixels a side whose rest is
nodata (the shape of a Gaza-wide mosaic: footprints inside a nodata frame), against the two
footprints alone (two predicts, one per footprint's own GeoTIFF pair: their seconds added,
their peak RSS the larger). Each run is ``predict`` into a change raster (COG) in a fresh
process (wall seconds and peak RSS from the child's own rusage), with the free model
(:func:`s2m_geo.testing.difference_onnx`, an ONNX absolute difference) so that the pipeline,
not the model, is measured; ``--model`` takes a model file instead.

    python benchmarks/sparse_mosaic.py                         # 100000 px, two 4096² footprints
    python benchmarks/sparse_mosaic.py --sizes 16000 --footprint 1024
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from s2m_geo.predict.pipeline import predict
t = time.perf_counter()
r = predict(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - t, "tiles": r.tiles, "skipped": r.tiles_skipped,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(pre: Path, post: Path, out: Path, model: Path) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(pre), str(post), str(out), str(model)], capture_output=True, text=True
    )
    if res.returncode:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000], help="sides of the mosaic VRTs (px)")
    ap.add_argument("--footprint", type=int, default=4096, help="side of each of the two footprints (px)")
    ap.add_argument("--model", type=Path, help="a model file to use instead of difference_onnx's")
    ap.add_argument("--scenes", type=Path, help="keep the synthetic scenes in this folder (reused when there)")
    args = ap.parse_args()

    from s2m_geo.synthetic import SceneSpec, write_scene
    from s2m_geo.testing import mosaic_vrt

    n = args.footprint
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; footprints: 2 x {n}^2")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.model is None:
            from s2m_geo.testing import difference_onnx

            model = difference_onnx(d / "free.onnx")
        else:
            model = args.model
        scenes = []
        for seed in (7, 8):
            where = (args.scenes or d) / f"s{n}_{seed}"
            if not (where / "post.tif").is_file():
                write_scene(where, SceneSpec(size=n, seed=seed))
            scenes.append(where)
        alone = [_run(s / "pre.tif", s / "post.tif", d / f"alone{i}.tif", model) for i, s in enumerate(scenes)]
        for i, r in enumerate(alone):
            rows.append((f"footprint {i + 1} alone", n, r))
        both = {
            "seconds": sum(r["seconds"] for r in alone),
            "tiles": sum(r["tiles"] for r in alone),
            "skipped": sum(r["skipped"] for r in alone),
            "rss_mb": max(r["rss_mb"] for r in alone),
        }
        rows.append(("both alone (sum s, max RSS)", n, both))
        for size in args.sizes:
            if size < 2 * n + 2:
                raise SystemExit(f"--sizes {size}: too small to hold two {n}-px footprints apart")
            at = [(size // 10, size // 10), (size - size // 10 - n, size - size // 5 - n)]
            for k in ("pre", "post"):
                mosaic_vrt([(s / f"{k}.tif", r, c) for s, (r, c) in zip(scenes, at)], d / f"{k}_{size}.vrt", size)
            res = _run(d / f"pre_{size}.vrt", d / f"post_{size}.vrt", d / f"m{size}.tif", model)
            rows.append((f"{size}^2 VRT holding both", size, res))
    print(f"{'input':30} {'side px':>8} {'seconds':>8} {'tiles run':>10} {'skipped':>9} {'peak RSS MB':>12}")
    for name, side, r in rows:
        print(f"{name:30} {side:>8} {r['seconds']:>8.1f} {r['tiles']:>10} {r['skipped']:>9} {r['rss_mb']:>12.0f}")
    for _, side, r in rows[3:]:
        print(
            f"{side}^2 against both alone: {r['seconds'] / both['seconds']:.2f}x the seconds, "
            f"{r['rss_mb'] / both['rss_mb']:.2f}x the peak RSS (target: <= 1.5x, the same memory)"
        )


if __name__ == "__main__":
    main()
