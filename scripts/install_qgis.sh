#!/usr/bin/env bash
# Install QGIS 3.22 (Debian 12 packages) and what the plugin tests need, only when missing.
#
# A no-op (well under a second) when everything is already installed. Needs apt-get and root
# (or sudo). Used by `make test` / scripts/test_qgis.sh in CI; run it by hand on a dev machine:
#   ./scripts/install_qgis.sh
# --no-install-recommends keeps it to ~1.2 GB (recommends would add GRASS, not needed).
set -euo pipefail
packages=(qgis python3-qgis qgis-providers python3-pytest python3-mock)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ $status == ii* ]] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_qgis.sh: apt-get not found; install ${missing[*]} with your system's package manager" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install_qgis.sh: need root (or sudo) to install ${missing[*]}" >&2
        exit 1
    fi
fi
echo "install_qgis.sh: installing ${missing[*]} (QGIS is ~1.2 GB, a minute or two)" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
echo "install_qgis.sh: done (QGIS $(dpkg-query -W -f='${Version}' qgis))" >&2
