"""A Gaza-sized mosaic on this machine's CPU, end to end (prints a table; not a test).

The user's case, whole: a mosaic of the Gaza Strip at 0.5 m is about 80,000 x 24,000 px, one
long diagonal footprint (south-west to north-east) inside a nodata frame. This builds that
shape from synthetic ``--footprint``-px scenes (``SceneSpec`` seeds ``--seeds``, 0.5 m, placed
again and again): ``--stack`` footprints tall per column, the columns stepping up from the
bottom-left corner to the top-right one, in a ``--width`` x ``--height`` VRT whose rest is
nodata. Then it runs exactly what an analyst runs,

    s2m-geo predict pre.vrt post.vrt -o changes.gpkg --progress json

(the shipped default model unless ``--model``: a file, or ``free``, a two-input ONNX absolute
difference (:func:`s2m_geo.testing.difference_onnx`) that measures the pipeline alone; on the
CPU the default model runs as its ONNX export; ``--output tif``: the change raster instead) in a
fresh process, echoing the progress every ``--every`` percent, and once the same command on one
footprint's own GeoTIFF pair. It prints wall seconds, CPU seconds, tiles run and skipped,
tiles/s, polygons and peak RSS (the child's own ``wait4`` rusage) of both, and the ratio of
their peak RSS: memory should follow neither the mosaic's size nor its valid area.

    python benchmarks/strip_mosaic.py                                  # 80000 x 24000, 3 x 19 footprints
    python benchmarks/strip_mosaic.py --width 20000 --height 8000 --stack 1   # a quick one
    python benchmarks/strip_mosaic.py --striped --model free --output tif      # footprints in strips

``--striped`` stores each footprint as GDAL writes a GeoTIFF by default, in one-row strips, not
the synthetic scenes' 256-px tiles: a VRT is then decoded through its sources' strips.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def strip_layout(width: int, height: int, side: int, stack: int) -> list[tuple[int, int]]:
    """Top-left ``(row, col)`` of each ``side``-px footprint: as many columns as fit across
    ``width`` (centred), ``stack`` footprints tall each, the first column at the bottom edge and
    the last at the top edge, the ones between on the straight line joining them."""
    cols = width // side
    rise = height - stack * side
    if cols < 1 or rise < 0:
        raise SystemExit(f"{width} x {height} px cannot hold a column of {stack} footprints of {side} px")
    left = (width - cols * side) // 2
    at = []
    for c in range(cols):
        top = round(rise * (1 - c / (cols - 1))) if cols > 1 else rise // 2
        at += [(top + k * side, left + c * side) for k in range(stack)]
    return at


def _run(pre: Path, post: Path, out: Path, model: str | None, every: float) -> dict:
    """``s2m-geo predict`` in a child process: its figures, its progress echoed as it goes."""
    cmd = [sys.executable, "-m", "s2m_geo.cli", "predict", str(pre), str(post), "-o", str(out)]
    cmd += ["--progress", "json", "--overwrite"] + (["--model", model] if model else [])
    t = time.perf_counter()
    report = tempfile.TemporaryFile("w+")  # the summary on stdout; a file, so neither pipe can fill up
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=report, text=True)
    assert child.stderr is not None
    shown: dict[str, float] = {}
    lines = []
    for line in child.stderr:
        lines.append(line)
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "stage" in msg and msg["total"]:
            share = 100 * msg["done"] / msg["total"]
            if share >= shown.get(msg["stage"], -every) + every or msg["done"] == msg["total"]:
                shown[msg["stage"]] = share
                print(f"  {time.perf_counter() - t:7.1f} s  {msg['stage']} {msg['done']}/{msg['total']}", flush=True)
        elif "message" in msg:
            print(f"  {msg['message']}", flush=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit("".join(lines[-20:]))
    import pyogrio

    report.seek(0)
    summary = report.readline().strip()  # "<out>: W x H px, N tiles (M skipped as nodata), ..."
    print(f"  {summary}")
    tiles = re.search(r"([0-9]+) tiles \(([0-9]+) skipped", summary)
    return {
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
        "polygons": pyogrio.read_info(out, layer="changes")["features"] if out.suffix == ".gpkg" else None,
        "tiles": int(tiles[1]) if tiles else 0,
        "skipped": int(tiles[2]) if tiles else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=80_000)
    ap.add_argument("--height", type=int, default=24_000)
    ap.add_argument("--footprint", type=int, default=4096, help="side of each synthetic scene (px)")
    ap.add_argument("--stack", type=int, default=3, help="footprints per column")
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9, 10], help="distinct scenes, used in turn")
    ap.add_argument("--model", help="a model file, or 'free' (the pipeline alone); default: the shipped one")
    ap.add_argument("--output", choices=["gpkg", "tif"], default="gpkg", help="change polygons, or the change raster")
    ap.add_argument("--scenes", type=Path, help="keep the synthetic scenes in this folder (reused when there)")
    ap.add_argument("--every", type=float, default=10.0, help="echo progress every this many percent")
    ap.add_argument(
        "--striped", action="store_true", help="footprints stored in GDAL's default strips (one row), not tiles"
    )
    args = ap.parse_args()

    from s2m_geo.synthetic import SceneSpec, write_scene
    from s2m_geo.testing import mosaic_vrt, striped_copy

    n = args.footprint
    at = strip_layout(args.width, args.height, n, args.stack)
    valid = len(at) * n * n
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; mosaic {args.width} x {args.height} px, "
        f"{len(at)} footprints of {n}^2 ({valid / 1e6:.0f} Mpx valid, "
        f"{100 * valid / (args.width * args.height):.0f} % of the mosaic)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        scenes = []
        for seed in args.seeds:
            where = (args.scenes or d) / f"s{n}_{seed}"
            if not (where / "post.tif").is_file():
                write_scene(where, SceneSpec(size=n, seed=seed))
            if args.striped:
                where = striped_copy(where, where.with_name(where.name + "-striped"), rows=None)
            scenes.append(where)
        for k in ("pre", "post"):
            placed = [(scenes[i % len(scenes)] / f"{k}.tif", r, c) for i, (r, c) in enumerate(at)]
            mosaic_vrt(placed, d / f"{k}.vrt", args.width, args.height)
        if args.model == "free":
            from s2m_geo.testing import difference_onnx

            args.model = str(difference_onnx(d / "free.onnx"))
        rows = []
        print(f"one footprint ({scenes[0].name}) alone:", flush=True)
        one, ext = scenes[0], args.output
        rows.append(("one footprint alone", _run(one / "pre.tif", one / "post.tif", d / f"one.{ext}", args.model, 50)))
        print("the mosaic:", flush=True)
        rows.append(("the mosaic", _run(d / "pre.vrt", d / "post.vrt", d / f"all.{ext}", args.model, args.every)))
    print(
        f"{'input':22} {'seconds':>8} {'cpu s':>8} {'tiles':>7} {'skipped':>8} {'tiles/s':>8} {'polygons':>9} "
        f"{'peak RSS MiB':>13}"
    )
    for name, r in rows:
        print(
            f"{name:22} {r['seconds']:>8.1f} {r['cpu']:>8.1f} {r['tiles']:>7} {r['skipped']:>8} "
            f"{r['tiles'] / r['seconds']:>8.1f} "
            f"{r['polygons'] if r['polygons'] is not None else '-':>9} {r['rss_mib']:>13.0f}"
        )
    one, whole = rows[0][1], rows[1][1]
    print(
        f"mosaic against one footprint: {whole['seconds'] / one['seconds']:.1f}x the seconds for "
        f"{len(at)}x the valid area, {whole['rss_mib'] / one['rss_mib']:.2f}x the peak RSS"
    )


if __name__ == "__main__":
    main()
