"""Vectorization throughput on synthetic change rasters (prints a table; not a test).

The class rasters are the generator's labels of 1x, 4x and 16x area (real-looking change
layouts: rubble heaps, camps, fields, greenhouse strips), fed to the Vectorizer core by core
exactly as `predict` does (tile 512, overlap 64, 4x4 tiles per block). Reports Mpx/s,
polygons/s, and the share of the time spent on seams: pairing pieces across core edges and
joining the pieces of regions that cross them.

    python benchmarks/vectorize.py                 # 1024, 2048, 4096
    python benchmarks/vectorize.py --sizes 2048 8192
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    args = ap.parse_args()

    import s2m_geo.vector.vectorize as vz
    from s2m_geo.predict.stitch import core_rects
    from s2m_geo.predict.tiling import TileLayout
    from s2m_geo.synthetic import SceneSpec, write_scene

    seam = {"t": 0.0}

    def timed(fn, pred=lambda *a: True):
        def wrapper(*a, **k):
            if not pred(*a):
                return fn(*a, **k)
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                seam["t"] += time.perf_counter() - t

        return wrapper

    vz.Vectorizer._pairs = timed(vz.Vectorizer._pairs)
    vz.Vectorizer._resolve = timed(vz.Vectorizer._resolve)
    vz._pixel_geometry = timed(vz._pixel_geometry, lambda parts: len(parts) > 1)

    print(f"{'raster':>11} {'cores':>5} {'polygons':>8} {'seconds':>8} {'Mpx/s':>7} {'polygons/s':>10} {'seams':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            label = write_scene(Path(tmp) / str(size), SceneSpec(size=size, seed=11))["label"]
            with rasterio.open(label) as ds:
                classes, transform = ds.read(1), ds.transform
            conf = np.ones(classes.shape, np.float32)
            layout = TileLayout(size, size, 512, 64)
            blocks = layout.blocks(4)
            cores = core_rects(layout, blocks, 4)
            seam["t"] = 0.0
            t0 = time.perf_counter()
            vec = vz.Vectorizer(transform, size, size)
            for b in blocks:
                c = cores[b.index]
                vec.add(c, classes[c.slices()], conf[c.slices()])
            regions = vec.finish()
            dt = time.perf_counter() - t0
            print(
                f"{size:>5}x{size:<5} {len(cores):>5} {len(regions):>8} {dt:8.2f} {size * size / 1e6 / dt:7.1f} "
                f"{len(regions) / dt:10.0f} {seam['t'] / dt:6.1%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
