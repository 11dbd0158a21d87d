#!/usr/bin/env bash
# GPU figures in one go: pure-model and end-to-end tiles/s (GeoPackage output) for the shipped
# default model and the DINOv3 ViT-S/16 config (random weights: real DINOv3 weights cannot be
# had here) at 512-px tiles, bf16 autocast on CUDA, and the pipeline-only rate with a model that
# costs nothing, read ahead by 2, 4 and 8 threads, and with 2 and its vectorizing in a thread of
# its own (an experiment). Each figure comes from benchmarks/pipeline.py;
# the whole run is meant to print within 5 minutes on one H200 (a 8576x8576 synthetic scene, 361
# tiles of 512, overlap 64), not yet seen on one. Here, on 2 CPU cores, making that scene took
# ~45 s (a free-model section from an empty S2M_WORKDIR: 59.5 s, its predict 13.0 s); later
# sections reuse it. No section may run past S2M_SECTION_S seconds (180), so one that hangs
# leaves the others their time.
#
#   benchmarks/gpu.sh                               # a Python with CUDA torch and the project's deps
#   S2M_WHEELS=.whl benchmarks/gpu.sh               # no internet: install missing deps from wheels
#   S2M_BENCH_SMOKE=1 S2M_PYTHON=python3 benchmarks/gpu.sh   # tiny sizes on the CPU: every path, no figures
#
# Environment: S2M_PYTHON (default: the first of /opt/torch/.venv/bin/python3, python3 whose torch
# sees CUDA), S2M_WHEELS (folder of wheels, see benchmarks/gpu_wheels.py; S2M_INSTALL_ONLY=1 stops
# after installing them, for wheels that travel in several parts), S2M_SITE (where they go,
# default .gpu-site/<interpreter tag>), S2M_BATCH (default 16), S2M_WORKDIR (scenes, default
# /tmp/s2m-gpu-bench), S2M_SECTION_S (each section's limit in seconds, default 180).
# Without S2M_WHEELS and with deps missing, the project is installed into a venv (.gpu-venv) that
# sees the chosen Python's packages (pip install -e ., needs internet).
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=${S2M_BENCH_SMOKE:-0}

py=${S2M_PYTHON:-}
if [ -z "$py" ]; then
    for c in /opt/torch/.venv/bin/python3 python3; do
        if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
            py=$c
            break
        fi
    done
fi
if [ -z "$py" ]; then
    echo "gpu.sh: no Python whose torch sees a CUDA GPU; set S2M_PYTHON (S2M_BENCH_SMOKE=1 for a CPU smoke run)" >&2
    exit 2
fi

# one folder per interpreter (cpython-312...): wheels built for another Python must not shadow this one's
site=${S2M_SITE:-$PWD/.gpu-site/$("$py" -c 'import sys; print(sys.implementation.cache_tag)')}
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
need='import affine, geopandas, pyogrio, pyproj, rasterio, shapely, safetensors, scipy, timm, torch, yaml, click'
if [ -n "${S2M_WHEELS:-}" ]; then
    # only the wheels whose distribution this Python lacks or has older (timm before DINOv3):
    # never shadow what it has at that version or newer
    mapfile -t todo < <("$py" - "$S2M_WHEELS" <<'PY'
import importlib.metadata as md, pathlib, sys
from packaging.version import Version
for w in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name, version = w.name.split("-")[:2]
    try:
        if Version(md.version(name)) < Version(version):
            print(w)
    except md.PackageNotFoundError:
        print(w)
PY
)
    if [ "${#todo[@]}" -gt 0 ]; then
        echo "installing ${#todo[@]} wheels from $S2M_WHEELS into $site"
        "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "${todo[@]}"
    fi
    if [ "${S2M_INSTALL_ONLY:-0}" = 1 ]; then
        exit 0
    fi
fi
if ! "$py" -c "$need" 2>/dev/null; then
    if [ -n "${S2M_WHEELS:-}" ]; then
        "$py" -c "$need" || true
        echo "gpu.sh: still missing a dependency after installing $S2M_WHEELS (see above); run benchmarks/gpu_wheels.py" >&2
        exit 2
    fi
    "$py" -m venv --system-site-packages .gpu-venv
    .gpu-venv/bin/python -m pip install -q -e .
    py=.gpu-venv/bin/python
fi

if [ "$smoke" = 1 ]; then
    args=(--tiles 4 --tile 128 --overlap 16 --batch 2 --device cpu)
else
    args=(--tiles 361 --tile 512 --overlap 64 --batch "${S2M_BATCH:-16}" --device cuda)
fi
work=${S2M_WORKDIR:-/tmp/s2m-gpu-bench}
failed=0
limit=${S2M_SECTION_S:-180}
stop=(timeout -k 10 "$limit")
command -v timeout >/dev/null || stop=()
bench() {  # one section failing or hanging (a missing model, say) must not cost the others their figures
    local rc=0
    PYTHONUNBUFFERED=1 "${stop[@]}" "$py" benchmarks/pipeline.py "${args[@]}" --runtime torch --output gpkg \
        --workdir "$work" "$@" || rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "gpu.sh: this section ran past ${limit} s (S2M_SECTION_S) and was stopped; going on" >&2
        failed=1
    elif [ "$rc" != 0 ]; then
        echo "gpu.sh: this section failed (above); going on" >&2
        failed=1
    fi
}
[ "$smoke" = 1 ] && echo "SMOKE RUN (tiny sizes, CPU, float32): these figures are not GPU figures"
echo "== default model (s2m_small_cpu), 512-px tiles"
bench --model default --modes predict forward
echo "== DINOv3 ViT-S/16 config, RANDOM weights (real DINOv3 weights are not available here)"
bench --config s2m_geo/configs/s2m_dinov3_vits16.yaml --modes predict forward
# the free model runs on the CPU (onnxruntime there has no CUDA provider, and it needs none),
# which alone would get one reader: give it what a model on the GPU gets (two,
# runners.read_threads_for), then more, to see whether 16 cores want more readers
for readers in 2 4 8; do
    echo "== pipeline only: a model that costs nothing (an ONNX absolute difference), $readers read threads"
    bench --model free --modes predict --device cpu --read-threads "$readers"
done
# whether vectorizing in a thread of its own raises the GeoPackage rate on many cores, or the
# GIL holds it (on 2 cores it made no clear difference: docs/benchmarks.md)
echo "== pipeline only, 2 read threads, vectorizing in a thread of its own (an experiment)"
bench --model free --modes predict --device cpu --read-threads 2 --vector-thread
exit $failed
