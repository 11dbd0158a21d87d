#!/usr/bin/env bash
# Remake the QGIS screenshots in docs/ (qgis_dialog.png, qgis_map.png, qgis_attributes.png,
# qgis_missing.png)
# from the real QGIS desktop: s2m-geo predict on sample_data/ with the default model, then
# `qgis --code scripts/qgis_screenshots.py` opens the plugin's dialog, the styled layers (change
# raster under the polygons), the attribute table with the field aliases and the toolbox's
# "cannot be run" box without s2m-geo, and grabs them.
#
#   ./scripts/qgis_screenshots.sh            # -> docs/*.png
#   ./scripts/qgis_screenshots.sh OUT_DIR
#
# The qgis desktop needs an X display (with QT_QPA_PLATFORM=offscreen QGIS 3.22 crashes at
# start-up in its clipboard code): without DISPLAY it runs under xvfb-run (apt install xvfb).
# Only this script needs Xvfb; the tests (scripts/test_qgis.sh) do not.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath "${1:-docs}")
exe=${S2M_GEO_EXECUTABLE:-$(./scripts/venv.sh)/bin/s2m-geo}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$exe" predict sample_data/pre.tif sample_data/post.tif -o "$work/post.gpkg" \
    --raster "$work/post_changes.tif" --overwrite --progress none >/dev/null
mkdir -p "$work/profiles" "$out"
run=(qgis --nologo --noversioncheck --profiles-path "$work/profiles" --code "$PWD/scripts/qgis_screenshots.py")
if [ -z "${DISPLAY:-}" ]; then
    command -v xvfb-run >/dev/null || { echo "qgis_screenshots.sh: no DISPLAY and no xvfb-run (apt install xvfb)" >&2; exit 2; }
    run=(xvfb-run -a -s "-screen 0 1600x1000x24" "${run[@]}")
fi
env -u PYTHONPATH -u PYTHONHOME -u QT_QPA_PLATFORM S2M_GEO_EXECUTABLE="$exe" S2M_GEO_CACHE="$work/cache" \
    S2M_SHOTS_REPO="$PWD" S2M_SHOTS_RUN="$work" S2M_SHOTS_OUT="$out" "${run[@]}" 2>/dev/null | grep '\.png'
