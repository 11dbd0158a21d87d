#!/usr/bin/env bash
# Make (or reuse) the project's virtual environment and print its path.
#
# The environment lives outside the clone, keyed on the dependency spec in
# pyproject.toml and the Python version, so a fresh clone with unchanged
# dependencies reuses it instead of downloading torch (~5 GB) again.
# Override the location with S2M_VENV (a path) or S2M_VENV_ROOT (a folder).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
key=$("$py" - "$here/pyproject.toml" <<'PY'
import hashlib, json, sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
spec = {"deps": project["dependencies"], "extras": project.get("optional-dependencies", {}),
        "python": sys.version.split()[0]}
print(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16])
PY
)
venv=${S2M_VENV:-${S2M_VENV_ROOT:-$HOME/.cache/s2m-geo}/venv-$key}
mkdir -p "$(dirname "$venv")"
# One builder at a time: a second run waits here instead of deleting a half-built venv.
exec 9>"$venv.lock"
flock 9
if [ ! -f "$venv/.complete" ] || [ ! -x "$venv/bin/python" ]; then
    echo "Creating the environment in $venv (first run downloads torch, a few minutes)" >&2
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet -e "$here[test,train,lint]" >&2
    touch "$venv/.complete"
fi
# The project itself is (re)installed in editable mode from this clone every time: cheap,
# and it makes the venv point at the checkout being tested.
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$here" >&2
flock -u 9
echo "$venv"
