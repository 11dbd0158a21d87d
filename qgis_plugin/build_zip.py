#!/usr/bin/env python3
"""Build the plugin zip that QGIS's "Plugins > Manage and Install Plugins > Install from ZIP" accepts.

    python3 qgis_plugin/build_zip.py            # -> qgis_plugin/dist/s2m_geo_qgis.zip
    python3 qgis_plugin/build_zip.py -o x.zip

The zip holds one top folder, ``s2m_geo_qgis/`` (the plugin's Python package name), with
metadata.txt, the code, the icons, the project's LICENSE and its README.md (the algorithm's
help), and the project's source in ``s2m_geo_qgis/s2m_geo_source/`` (pyproject.toml, README,
LICENSE and the ``s2m_geo`` package with its configs and default model): what the plugin's
"Set up s2m-geo" pip-installs into s2m-geo's own environment. No caches, no dotfiles; file
times are fixed, so the same sources give the same bytes. Standard library only.
"""

import argparse
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = "s2m_geo_qgis"
SRC = os.path.join(HERE, PLUGIN)
LICENSE = os.path.join(os.path.dirname(HERE), "LICENSE")
ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "README.md")
#: The folder in the plugin that holds the project's source (setup_env.BUNDLED_SOURCE).
BUNDLED_SOURCE = PLUGIN + "/s2m_geo_source"
STAMP = (2020, 1, 1, 0, 0, 0)


def _tree(src, prefix):
    """(path, name in the zip) of the files under ``src``: no caches, dotfiles or backups."""
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.endswith((".pyc", ".pyo", "~")):
                continue
            path = os.path.join(root, name)
            files.append((path, prefix + "/" + os.path.relpath(path, src).replace(os.sep, "/")))
    return files


def plugin_files():
    """(path on disk, name in the zip) for every file that goes in, sorted."""
    files = _tree(SRC, PLUGIN)
    if os.path.isfile(LICENSE):
        files.append((LICENSE, PLUGIN + "/LICENSE"))
    if os.path.isfile(README):  # the algorithm's help (helpUrl), readable offline
        files.append((README, PLUGIN + "/README.md"))
    return files + source_files()


def source_files():
    """The project's installable source (what ``pip install`` of a checkout reads)."""
    for name in ("pyproject.toml", "s2m_geo"):
        if not os.path.exists(os.path.join(ROOT, name)):
            sys.exit(f"build_zip.py: {os.path.join(ROOT, name)} not found: run it from a source checkout")
    files = [(os.path.join(ROOT, n), BUNDLED_SOURCE + "/" + n) for n in ("pyproject.toml", "README.md", "LICENSE")]
    return [f for f in files if os.path.isfile(f[0])] + _tree(
        os.path.join(ROOT, "s2m_geo"), BUNDLED_SOURCE + "/s2m_geo"
    )


def build(output):
    if not os.path.isfile(os.path.join(SRC, "metadata.txt")):
        sys.exit(f"build_zip.py: {SRC}/metadata.txt not found")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tmp = output + ".partial"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        folder = zipfile.ZipInfo(PLUGIN + "/", STAMP)
        folder.external_attr = (0o40755 << 16) | 0x10
        zf.writestr(folder, b"")
        for path, arcname in plugin_files():
            info = zipfile.ZipInfo(arcname, STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            with open(path, "rb") as f:
                zf.writestr(info, f.read())
    os.replace(tmp, output)
    return output


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "-o",
        "--output",
        default=os.path.join(HERE, "dist", PLUGIN + ".zip"),
        help="zip to write (default: %(default)s)",
    )
    args = ap.parse_args(argv)
    print(build(args.output))


if __name__ == "__main__":
    main()
