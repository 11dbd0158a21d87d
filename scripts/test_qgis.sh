#!/usr/bin/env bash
# Run the QGIS plugin tests (tests_qgis/) in real QGIS 3.22 from Debian, headless (offscreen).
#
#   ./scripts/test_qgis.sh                 # all of them; extra arguments go to pytest
#   (the screenshots in docs/ come from ./scripts/qgis_screenshots.sh, the real desktop)
#
# They run under QGIS's Python (/usr/bin/python3), never the project venv: the two stacks
# cannot share a process. The plugin under test runs the project's own CLI, taken from the
# venv that ./scripts/venv.sh prints, through S2M_GEO_EXECUTABLE.
#
# Without QGIS: in CI (CI set) QGIS is installed first (./scripts/install_qgis.sh) and a
# QGIS that is still missing is a failure; elsewhere the tests are skipped with one line.
# The exit code is pytest's own (tests_qgis/conftest.py leaves before QGIS's teardown, so a
# crash at shutdown, exit 139, cannot change it).
set -euo pipefail
cd "$(dirname "$0")/.."
QGIS_PYTHON=${S2M_QGIS_PYTHON:-/usr/bin/python3}   # QGIS's Python (Debian: the system one)

args=("$@")

have_qgis() {
    [ -x /usr/bin/qgis_process.bin ] && [ -x "$QGIS_PYTHON" ] &&
        QT_QPA_PLATFORM=offscreen "$QGIS_PYTHON" -c 'import qgis.core, pytest, mock' >/dev/null 2>&1
}

if ! have_qgis && [ -n "${CI:-}" ]; then
    ./scripts/install_qgis.sh
fi
if ! have_qgis; then
    if [ -n "${CI:-}" ]; then
        echo "test_qgis.sh: QGIS (qgis, python3-qgis, qgis-providers, python3-pytest, python3-mock) is" \
             "not usable after ./scripts/install_qgis.sh; the QGIS tests must run in CI" >&2
        exit 1
    fi
    echo "QGIS tests skipped: QGIS 3.22 is not installed here (./scripts/install_qgis.sh installs it)"
    exit 0
fi

venv=$(./scripts/venv.sh)
export S2M_GEO_EXECUTABLE="$venv/bin/s2m-geo"
export QT_QPA_PLATFORM=offscreen
unset PYTHONPATH PYTHONHOME
set +e
"$QGIS_PYTHON" -m pytest -c tests_qgis/pytest.ini tests_qgis -q "${args[@]}"
rc=$?
set -e
if [ "$rc" -gt 128 ]; then
    echo "test_qgis.sh: the QGIS test process died (exit $rc, signal $((rc - 128))) before pytest finished" >&2
fi
exit "$rc"
