"""A mosaic that is mostly nodata: does a run cost its valid area or its declared size?
(prints a table; not a test).

Builds VRTs of ``--sizes`` pixels a side that hold one ``--valid``-pixel square window of
the shipped sample scene (the rest nodata, as a Gaza-wide mosaic is outside its footprints),
and the same window alone as a GeoTIFF, then times ``s2m-geo predict -o x.tif`` on each in a
fresh process (wall seconds and peak RSS, from the child's own rusage).

    python benchmarks/sparse_mosaic.py                        # 16000 and 60000 px
    python benchmarks/sparse_mosaic.py --sizes 8000 --valid 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, resource, sys, time
from s2m_geo.predict.pipeline import predict
t = time.perf_counter()
r = predict(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - t, "tiles": r.tiles, "skipped": r.tiles_skipped,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _window(src: Path, dst: Path, size: int) -> None:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(src) as ds:
        win = Window(0, 0, size, size)
        profile = dict(ds.profile, width=size, height=size, transform=ds.window_transform(win), nodata=0)
        data = ds.read(window=win)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)


def _frame_vrt(src: Path, dst: Path, size: int) -> None:
    """A ``size``-pixel VRT with ``src`` in its middle, nodata 0 elsewhere."""
    from xml.sax.saxutils import escape

    import rasterio

    with rasterio.open(src) as ds:
        w, h, t, crs = ds.width, ds.height, ds.transform, ds.crs.to_wkt()
    off = size // 2
    gt = ", ".join(map(repr, (t.c - off * t.a, t.a, 0.0, t.f - off * t.e, 0.0, t.e)))
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><NoDataValue>0</NoDataValue><SimpleSource>'
        f'<SourceFilename relativeToVRT="1">{src.name}</SourceFilename><SourceBand>{b}</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
        f'<DstRect xOff="{off}" yOff="{off}" xSize="{w}" ySize="{h}"/></SimpleSource></VRTRasterBand>'
        for b in (1, 2, 3)
    )
    dst.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{escape(crs)}</SRS>'
        f"<GeoTransform>{gt}</GeoTransform>{bands}</VRTDataset>"
    )


def _run(pre: Path, post: Path, out: Path, model: str) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(pre), str(post), str(out), model], capture_output=True, text=True
    )
    if res.returncode:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16000, 60000])
    ap.add_argument("--valid", type=int, default=512, help="side of the valid window (px)")
    ap.add_argument("--model", default=str(ROOT / "s2m_geo" / "weights" / "s2m_small_cpu.safetensors"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for k in ("pre", "post"):
            _window(ROOT / "sample_data" / f"{k}.tif", d / f"{k}.tif", args.valid)
        rows.append(("valid window alone", args.valid, _run(d / "pre.tif", d / "post.tif", d / "a.tif", args.model)))
        for size in args.sizes:
            for k in ("pre", "post"):
                _frame_vrt(d / f"{k}.tif", d / f"{k}_{size}.vrt", size)
            res = _run(d / f"pre_{size}.vrt", d / f"post_{size}.vrt", d / f"m{size}.tif", args.model)
            rows.append((f"{size}^2 VRT, same window", size, res))
    print(f"{'input':28} {'side px':>8} {'seconds':>8} {'tiles run':>10} {'skipped':>9} {'peak RSS MB':>12}")
    for name, side, r in rows:
        print(f"{name:28} {side:>8} {r['seconds']:>8.1f} {r['tiles']:>10} {r['skipped']:>9} {r['rss_mb']:>12.0f}")


if __name__ == "__main__":
    main()
