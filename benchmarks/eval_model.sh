#!/usr/bin/env bash
# Evaluate a model package on held-out synthetic scenes with the product's own commands:
# sample-data (seeds never used in training) -> predict (change raster) -> evaluate.
#
#   benchmarks/eval_model.sh [MODEL] [SEED ...]      # default: the shipped model, seeds 9001-9003
#
# Prints `s2m-geo evaluate` of all scenes pooled (one confusion matrix), then per scene.
set -euo pipefail
model=${1:-}
shift || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(9001 9002 9003)
s2m=${S2M_GEO:-s2m-geo}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pred" "$work/label"
for s in "${seeds[@]}"; do
    "$s2m" sample-data "$work/scene$s" --size 1536 --seed "$s" >/dev/null
    "$s2m" predict "$work/scene$s/pre.tif" "$work/scene$s/post.tif" -o "$work/pred/scene$s.tif" \
        ${model:+--model "$model"} >/dev/null
    cp "$work/scene$s/label.tif" "$work/label/scene$s.tif"
done
echo "== all held-out scenes (seeds ${seeds[*]}) =="
"$s2m" evaluate "$work/pred" "$work/label"
echo "== JSON =="
"$s2m" evaluate "$work/pred" "$work/label" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: round(d[k], 4) for k in ("sek","fscd","miou","precision","recall","oa","mf1")}))'
for s in "${seeds[@]}"; do
    echo "== seed $s =="
    "$s2m" evaluate "$work/pred/scene$s.tif" "$work/label/scene$s.tif" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: round(d[k], 4) for k in ("sek","fscd","miou","precision","recall")}))'
done
