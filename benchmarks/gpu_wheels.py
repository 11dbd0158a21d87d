"""Download the wheels a GPU machine without internet needs for ``benchmarks/gpu.sh``.

Those machines have Python 3.12 (x86-64) with torch, torchvision, timm, onnxruntime, numpy,
scipy, pandas, click, pyyaml, safetensors and the like, but not the geo stack. This fetches
exactly the project's runtime dependencies they lack, with the dependencies of those that
they lack too, and timm (theirs may predate DINOv3; ``gpu.sh`` installs a wheel only over a
missing or older distribution), at the versions installed here (the ones tested), as cp312
manylinux wheels (``pip download --no-deps``) into ``.whl/`` (git-ignored; never commit wheels):

    python benchmarks/gpu_wheels.py            # then: S2M_WHEELS=.whl benchmarks/gpu.sh

Not fetched: open_clip_torch (training only), dask/distributed (``s2m-geo batch`` only), and
pyarrow and onnx (GeoParquet output, ONNX export: both already on those machines).

A machine's copy of the working tree may be capped (64 MiB there, the repository included);
rasterio and pyogrio each bundle their own GDAL (about 35 MB apiece), so with ``--parts`` the
wheels are also split into ``.whl/1``, ``.whl/2``, ... each under ``--budget-mib``: install all
but the last with ``S2M_WHEELS=.whl/N S2M_INSTALL_ONLY=1 benchmarks/gpu.sh`` (one call each on
the same machine: ``.gpu-site`` stays), then run ``S2M_WHEELS=.whl/LAST benchmarks/gpu.sh``.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import shutil
import subprocess
import sys
from pathlib import Path

#: What ``predict -o x.gpkg`` imports beyond those machines' Python, with their own missing needs.
NEEDED = ["rasterio", "affine", "cligj", "click-plugins", "pyogrio", "shapely", "pyproj", "geopandas"]
#: What they have, perhaps too old: timm knows DINOv3 from 1.0.20 (installed only over an older one).
NEWER = ["timm"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", default=".whl")
    ap.add_argument("--parts", action="store_true", help="also split the wheels into parts under --budget-mib")
    ap.add_argument("--budget-mib", type=float, default=36.0, help="largest part (default: 64 MiB less the repo)")
    args = ap.parse_args()
    dest = Path(args.dest)
    pins = [f"{name}=={md.version(name)}" for name in NEEDED + NEWER]
    print("wheels:", " ".join(pins))
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + pins, check=True)
    wheels = sorted(dest.glob("*.whl"), key=lambda w: -w.stat().st_size)
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:6.1f} MiB  {w.name}")
    print(f"{sum(w.stat().st_size for w in wheels) / 2**20:6.1f} MiB in all")
    if not args.parts:
        return
    parts: list[list[Path]] = []  # first fit, largest first
    for w in wheels:
        size = w.stat().st_size / 2**20
        for part in parts:
            if sum(x.stat().st_size for x in part) / 2**20 + size <= args.budget_mib:
                part.append(w)
                break
        else:
            parts.append([w])
    for i, part in enumerate(parts, 1):
        folder = dest / str(i)
        folder.mkdir(exist_ok=True)
        for w in part:
            shutil.copy2(w, folder / w.name)
        print(f".whl part {folder}: {', '.join(w.name.split('-')[0] for w in part)}")


if __name__ == "__main__":
    main()
