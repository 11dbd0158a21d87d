"""``s2m-geo describe`` on class rasters of growing size: does its memory stay flat?
(prints a table; not a test).

Writes, for each of ``--sizes``, a sparse deflated GeoTIFF of that many pixels a side (512²
tiles; one block written in the middle, two classes, the rest nodata: at most a few hundred KB on
disk), then runs ``s2m-geo describe`` on it in a fresh process and prints its wall seconds
and peak RSS (the child's own rusage). The machine may be shared: the seconds are indicative.

    python benchmarks/describe_large.py                       # 15000, 30000 and 60000 px
    python benchmarks/describe_large.py --sizes 8000 16000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def sparse_class_raster(path: Path, size: int) -> Path:
    """A ``size``² uint8 class raster, nodata 255, with one 512² block of classes 1 and 3."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs="EPSG:32636",
        transform=from_origin(637000, 3486500, 0.5, 0.5),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        sparse_ok=True,
        nodata=255,
    )
    block = np.zeros((512, 512), np.uint8)
    block[100:200, 100:300] = 1
    block[300:400, 50:90] = 3
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(block, 1, window=Window(size // 2, size // 2, 512, 512))
    return path


CHILD = r"""
import resource, sys
from s2m_geo.cli import cli
try:
    cli.main(["describe", sys.argv[1]])
except SystemExit as exc:
    if exc.code:
        raise
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _one(path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, the child's own) of ``s2m-geo describe`` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(res.stderr)
    return seconds, float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[15000, 30000, 60000])
    args = ap.parse_args()
    print("| side px | file KB | seconds | peak RSS MB |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = sparse_class_raster(Path(tmp) / f"mask{size}.tif", size)
            seconds, rss = _one(path)
            print(f"| {size} | {path.stat().st_size / 1024:.0f} | {seconds:.1f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
