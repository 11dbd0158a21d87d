"""Vectorization throughput on synthetic change rasters (prints a table; not a test).

Two modes:

* ``layouts`` (default): the generator's labels of 1x, 4x and 16x area (real-looking change
  layouts: rubble heaps, camps, fields, greenhouse strips), fed to the Vectorizer core by
  core exactly as `predict` does (tile 512, overlap 64, 4x4 tiles per block). Reports Mpx/s,
  polygons/s, and the share of the time spent on seams: pairing pieces across core edges and
  joining the pieces of regions that cross them.
* ``speckled``: the whole vector side of ``predict -o x.gpkg`` on speckled output — a class
  raster of tens of thousands of small blobs of every change class, as a model emits on
  noise (smoothed seeded noise, thresholded; deterministic) — in a UTM grid at 0.5 m: the
  Vectorizer fed core by core (vectorize), the ``changes`` rows described
  (:class:`~s2m_geo.vector.output.ChangeCollector`) and streamed to the GeoPackage as they
  are (:class:`~s2m_geo.vector.output.VectorOutput`), then the ``scenes`` row with its
  sectors, the styles and the publishing (scene + finish); wall seconds per stage,
  and the CPU seconds of the whole (all threads: on a shared machine the fairer rate).
  ``--profile N`` prints the N costliest functions (cProfile, cumulative) of the last size.

    python benchmarks/vectorize.py                 # layouts: 1024, 2048, 4096
    python benchmarks/vectorize.py --sizes 2048 8192
    python benchmarks/vectorize.py --mode speckled --sizes 4096 8192
    python benchmarks/vectorize.py --mode speckled --sizes 2048 --profile 25
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

TILE, OVERLAP, BLOCK_TILES = 512, 64, 4
#: Standard deviation of unit white noise after a Gaussian filter of sigma s: 1 / (2 s sqrt(pi)).
NOISE_STD = {s: 1.0 / (2.0 * s * np.sqrt(np.pi)) for s in (2.0, 16.0)}


def cores_in_block_order(size: int) -> list:
    """The cores of a size x size scene in the order `predict` finishes them."""
    from s2m_geo.predict.stitch import core_rects
    from s2m_geo.predict.tiling import TileLayout

    layout = TileLayout(size, size, TILE, OVERLAP)
    blocks = layout.blocks(BLOCK_TILES)
    cores = core_rects(layout, blocks, BLOCK_TILES)
    return [cores[b.index] for b in blocks]


def speckled(size: int, num_classes: int, seed: int = 7) -> np.ndarray:
    """A size x size uint8 class raster of small blobs (ids 1..num_classes-1) on class 0.

    Smoothed white noise thresholded at its upper tail gives blobs of a few to a few hundred
    pixels; a second, smoother field picks each blob's class. Made in 1024-row strips (with a
    margin for the filter) so memory stays small at 8192²."""
    from scipy import ndimage

    out = np.zeros((size, size), np.uint8)
    strip, pad = 1024, 8
    for r0 in range(0, size, strip):
        r1 = min(size, r0 + strip)
        a0, a1 = max(0, r0 - pad), min(size, r1 + pad)
        rng = np.random.default_rng([seed, a0, a1])
        blob = ndimage.gaussian_filter(rng.standard_normal((a1 - a0, size), dtype=np.float32), 2.0)
        kind = ndimage.gaussian_filter(rng.standard_normal((a1 - a0, size), dtype=np.float32), 16.0)
        sl = slice(r0 - a0, r0 - a0 + (r1 - r0))
        on = blob[sl] > 1.8 * NOISE_STD[2.0]
        # the class changes every half standard deviation of the smooth field
        cls = 1 + (np.floor(kind[sl] / NOISE_STD[16.0] * 2.0).astype(np.int64) % (num_classes - 1))
        out[r0:r1][on] = cls[on].astype(np.uint8)
    return out


def bench_layouts(sizes: list[int]) -> None:
    import s2m_geo.vector.vectorize as vz
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
        for size in sizes:
            label = write_scene(Path(tmp) / str(size), SceneSpec(size=size, seed=11))["label"]
            with rasterio.open(label) as ds:
                classes, transform = ds.read(1), ds.transform
            conf = np.ones(classes.shape, np.float32)
            cores = cores_in_block_order(size)
            seam["t"] = 0.0
            t0 = time.perf_counter()
            vec = vz.Vectorizer(transform, size, size)
            for c in cores:
                vec.add(c, classes[c.slices()], conf[c.slices()])
            regions = vec.finish()
            dt = time.perf_counter() - t0
            print(
                f"{size:>5}x{size:<5} {len(cores):>5} {len(regions):>8} {dt:8.2f} {size * size / 1e6 / dt:7.1f} "
                f"{len(regions) / dt:10.0f} {seam['t'] / dt:6.1%}",
                flush=True,
            )


def vector_side(classes: np.ndarray, out: Path) -> tuple[int, dict[str, float]]:
    """Vectorize + describe + write one class raster as `predict -o out.gpkg` does; the
    polygon count and the seconds per stage."""
    from s2m_geo.classes import load_class_table
    from s2m_geo.describe.geo import GeoFrame
    from s2m_geo.synthetic import SceneSpec
    from s2m_geo.vector.output import ChangeCollector, VectorOutput
    from s2m_geo.vector.vectorize import Vectorizer

    size = classes.shape[0]
    transform: Affine = SceneSpec(size=size).transform
    crs = SceneSpec().crs
    table = load_class_table()
    conf = np.full(classes.shape, 0.9, np.float32)
    t: dict[str, float] = {}

    t0 = time.perf_counter()
    regions: list = []
    vec = Vectorizer(transform, size, size, on_region=regions.append)
    for c in cores_in_block_order(size):
        vec.add(c, classes[c.slices()], conf[c.slices()])
    vec.finish()
    t["vectorize"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    frame = GeoFrame.from_grid(crs, transform, size, size)
    with VectorOutput(out, table, frame.crs) as output:
        # as in predict: each batch of rows streams to the file as soon as it is described
        collector = ChangeCollector(frame, table, "speckled", "noise", rows=output.add)
        for r in regions:
            collector(r)
        collector.flush()
        t["describe + write rows"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        output.finish(collector.scenes_frame("pre.tif", "post.tif"))
        t["scene + finish"] = time.perf_counter() - t0
    return len(collector), t


def bench_speckled(sizes: list[int], profile: int) -> None:
    from s2m_geo.classes import load_class_table

    k = load_class_table().num_classes
    stages = ["vectorize", "describe + write rows", "scene + finish"]
    print(
        f"{'raster':>11} {'polygons':>8} {'seconds':>8} {'polygons/s':>10} {'CPU s':>6} {'polygons/CPU s':>14} "
        + " ".join(f"{s + ' s':>16}" for s in stages),
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for i, size in enumerate(sizes):
            classes = speckled(size, k)
            out = Path(tmp) / f"speckled_{size}.gpkg"
            prof = cProfile.Profile() if profile and i == len(sizes) - 1 else None
            if prof:
                prof.enable()
            cpu = time.process_time()
            n, t = vector_side(classes, out)
            cpu = time.process_time() - cpu
            if prof:
                prof.disable()
            total = sum(t.values())
            print(
                f"{size:>5}x{size:<5} {n:>8} {total:8.2f} {n / total:10.0f} {cpu:6.2f} {n / cpu:14.0f} "
                + " ".join(f"{t[s]:16.2f}" for s in stages),
                flush=True,
            )
            if prof:
                s = io.StringIO()
                pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(profile)
                print(s.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["layouts", "speckled"], default="layouts")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="speckled: cProfile's top N of the last size")
    args = ap.parse_args()
    if args.mode == "layouts":
        bench_layouts(args.sizes or [1024, 2048, 4096])
    else:
        bench_speckled(args.sizes or [4096, 8192], args.profile)


if __name__ == "__main__":
    main()
