#!/usr/bin/env python3
"""Build the plugin zip that QGIS's "Plugins > Manage and Install Plugins > Install from ZIP" accepts.

    python3 qgis_plugin/build_zip.py            # -> qgis_plugin/dist/s2m_geo_qgis.zip
    python3 qgis_plugin/build_zip.py -o x.zip

The zip holds one top folder, ``s2m_geo_qgis/`` (the plugin's Python package name), with
metadata.txt, the code, the icons, the project's LICENSE and its README.md (the algorithm's
help). No caches, no dotfiles; file
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
README = os.path.join(os.path.dirname(HERE), "README.md")
STAMP = (2020, 1, 1, 0, 0, 0)


def plugin_files():
    """(path on disk, name in the zip) for every file that goes in, sorted."""
    files = []
    for root, dirs, names in os.walk(SRC):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.endswith((".pyc", ".pyo", "~")):
                continue
            path = os.path.join(root, name)
            files.append((path, PLUGIN + "/" + os.path.relpath(path, SRC).replace(os.sep, "/")))
    if os.path.isfile(LICENSE):
        files.append((LICENSE, PLUGIN + "/LICENSE"))
    if os.path.isfile(README):  # the algorithm's help (helpUrl), readable offline
        files.append((README, PLUGIN + "/README.md"))
    return files


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
