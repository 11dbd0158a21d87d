"""The pipeline around a model that costs nothing, against the plain I/O it cannot avoid
(prints a table; not a test).

For synthetic scenes of each ``--sizes`` side, with :func:`s2m_geo.testing.difference_onnx`
(a two-input ONNX model computing an absolute difference), each in a fresh process:

- ``io``: the plain I/O pass in one thread — read both scenes by their blocks, write the
  absolute difference of band 1 as a tiled deflate GeoTIFF, copy it to a COG with the
  pipeline's options (what no pipeline can do without);
- ``raster``: ``predict`` into a change raster (COG), nothing else;
- ``gpkg``: ``detect_changes`` into a GeoPackage, no raster.

Each row gives wall seconds, CPU seconds (user + system: above the wall time, more than one
core worked) and peak RSS, from the child's own rusage.

    python benchmarks/pipeline_io.py                     # 2048 and 8192
    python benchmarks/pipeline_io.py --sizes 4096 --modes io raster
    python benchmarks/pipeline_io.py --striped --repeat 3  # scenes stored in 16-row strips
    python benchmarks/pipeline_io.py --sizes 4096 --modes raster --striped --strip-rows 0 --repeat 5

``--striped`` copies each scene into a striped GeoTIFF (16-row strips, as many tools write
them; ``--strip-rows 0``: GDAL's default, what ``gdal_translate`` writes, one row at these
widths) instead of the synthetic scenes' 256-pixel tiles: every block of tiles then decodes
the same strips, which GDAL's block cache must hold for the whole row of blocks.
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
mode, pre, post, model, out = sys.argv[1:6]
t = time.perf_counter()
if mode == "io":
    import numpy as np
    import rasterio
    from rasterio.shutil import copy as rio_copy
    tmp = out + ".tmp.tif"
    with rasterio.open(pre) as a, rasterio.open(post) as b:
        profile = dict(driver="GTiff", width=a.width, height=a.height, count=1, dtype="uint8", crs=a.crs,
                       transform=a.transform, tiled=True, blockxsize=512, blockysize=512, compress="deflate")
        with rasterio.open(tmp, "w", **profile) as o:
            for _, win in a.block_windows(1):
                d = np.abs(a.read(window=win).astype(np.int16) - b.read(window=win).astype(np.int16))
                o.write(d[0].astype(np.uint8), 1, window=win)
    with rasterio.open(tmp) as src:
        rio_copy(src, out, driver="COG", compress="DEFLATE", blocksize=512, overview_resampling="NEAREST",
                 BIGTIFF="IF_SAFER", SPARSE_OK="TRUE")
elif mode == "raster":
    from s2m_geo.predict.pipeline import predict
    predict(pre, post, out, model)
else:
    from s2m_geo.detect import detect_changes
    detect_changes(pre, post, out, model)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024}))
"""

MODES = ("io", "raster", "gpkg")


def _child(mode: str, pre: Path, post: Path, model: Path, out: Path) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(pre), str(post), str(model), str(out)], capture_output=True, text=True
    )
    if res.returncode:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192])
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--model", type=Path, help="an ONNX model to use instead of difference_onnx's")
    ap.add_argument("--scenes", type=Path, help="keep the synthetic scenes in this folder (reused when there)")
    ap.add_argument("--striped", action="store_true", help="store the scenes in strips, not tiles")
    ap.add_argument(
        "--strip-rows", type=int, default=16, help="rows a strip with --striped (0: GDAL's default, one row here)"
    )
    ap.add_argument("--repeat", type=int, default=1, help="run every mode this many times (one row each)")
    args = ap.parse_args()

    import os

    from s2m_geo.synthetic import SceneSpec, write_scene
    from s2m_geo.testing import striped_copy

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; model: absolute difference (ONNX)")
    print(f"{'scene':>11} {'mode':>6} {'wall s':>7} {'cpu s':>7} {'vs io':>6} {'peak RSS MiB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.model is None:
            from s2m_geo.testing import difference_onnx

            model = difference_onnx(d / "free.onnx")
        else:
            model = args.model
        for size in args.sizes:
            where = (args.scenes or d) / f"s{size}"
            if not (where / "post.tif").is_file():
                write_scene(where, SceneSpec(size=size, seed=7))
            if args.striped:
                rows = args.strip_rows or None
                where = striped_copy(where, where.with_name(f"{where.name}-striped{rows or ''}"), rows)
            io = None
            for mode in [m for m in args.modes for _ in range(args.repeat)]:
                out = d / (f"{mode}{size}.gpkg" if mode == "gpkg" else f"{mode}{size}.tif")
                for old in (out, out.with_suffix(".qml")):  # the last run's raster and its style
                    old.unlink(missing_ok=True)
                r = _child(mode, where / "pre.tif", where / "post.tif", model, out)
                io = r if mode == "io" else io
                ratio = f"{r['seconds'] / io['seconds']:6.2f}" if io else f"{'':>6}"
                print(
                    f"{size:>5}x{size:<5} {mode:>6} {r['seconds']:7.2f} {r['cpu']:7.2f} {ratio} {r['rss_mib']:12.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
