"""The plugin as users install it: the zip, unpacked the way "Install from ZIP" does, then
`qgis_process` (plugins enable, run) in a separate QGIS process with a fresh profile."""

import json
import sqlite3
import subprocess
import sys
import zipfile

import pytest
from harness import PLUGIN_NAME, QGIS_PROCESS, ROOT, layer_aliases, qgis_process_env

ALG = "s2m:detect_changes"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the zip with the project's command, unpack it with QGIS's installer code."""
    tmp = tmp_path_factory.mktemp("zip")
    zpath = tmp / "s2m_geo_qgis.zip"
    subprocess.run(
        [sys.executable, str(ROOT / "qgis_plugin" / "build_zip.py"), "-o", str(zpath)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
    # installFromZipFile: the plugin is the folder of the shortest metadata.txt
    metadata = sorted(n for n in names if n.endswith("metadata.txt"))
    assert metadata == [f"{PLUGIN_NAME}/metadata.txt"]
    assert all(n.startswith(PLUGIN_NAME + "/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    from pyplugin_installer.unzip import unzip

    plugins = tmp / "plugins"
    plugins.mkdir()
    unzip(str(zpath), str(plugins))
    plugin_dir = plugins / PLUGIN_NAME
    meta = (plugin_dir / "metadata.txt").read_text()
    assert "qgisMinimumVersion=3.22" in meta and "hasProcessingProvider=yes" in meta
    assert (plugin_dir / "icon.png").is_file() and (plugin_dir / "LICENSE").is_file()
    assert (plugin_dir / "README.md").read_bytes() == (ROOT / "README.md").read_bytes()  # the help
    profile = tmp / "profile"
    profile.mkdir()
    env = qgis_process_env(plugins, profile)
    r = subprocess.run(
        [QGIS_PROCESS, "plugins", "enable", PLUGIN_NAME], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return env


def _run(env, params, timeout=300):
    args = [QGIS_PROCESS, "--json", "run", ALG, "--"] + [f"{k}={v}" for k, v in params.items()]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def test_qgis_process_run_writes_a_geopackage_with_both_layers(
    installed, cli, tiny_model, scene, tmp_path, field_aliases
):
    env = dict(installed, S2M_GEO_EXECUTABLE=cli)
    out = tmp_path / "changes.gpkg"
    r = _run(
        env,
        {
            "PRE": scene["pre"],
            "POST": scene["post"],
            "MODEL": tiny_model,
            "DEVICE": 1,
            "TILE_SIZE": 64,
            "OVERLAP": 16,
            "OUTPUT": out,
            "OUTPUT_RASTER": tmp_path / "changes.tif",
        },
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout)  # stdout is pure JSON with --json
    res = report["results"]
    assert res["OUTPUT"] == str(out) and res["N_CHANGES"] > 0
    assert res["SCENES"] == f"{out}|layername=scenes"
    assert (tmp_path / "changes.tif").is_file()
    assert "--tile-size 64 --overlap 16" in report["log"]["info"][0]
    con = sqlite3.connect(str(out))
    try:
        tables = {
            t: g
            for t, g in con.execute(
                "SELECT c.table_name, g.geometry_type_name FROM gpkg_contents c "
                "LEFT JOIN gpkg_geometry_columns g USING (table_name)"
            )
        }
        styles = {t for (t,) in con.execute("SELECT f_table_name FROM layer_styles WHERE useAsDefault")}
        n = con.execute("SELECT count(*) FROM changes").fetchone()[0]
    finally:
        con.close()
    assert tables["changes"] == "POLYGON" and tables["scenes"] == "POLYGON"
    assert styles == {"changes", "scenes"} and n == res["N_CHANGES"]
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(f"{out}|layername=changes", "changes", "ogr")  # opens styled
    assert layer.isValid() and layer.renderer().type() == "categorizedSymbol"
    assert layer_aliases(layer) == field_aliases["changes"]  # any QGIS opening the file
    scenes = QgsVectorLayer(f"{out}|layername=scenes", "scenes", "ogr")
    assert layer_aliases(scenes) == field_aliases["scenes"]
    del layer, scenes


def test_qgis_process_help_is_plain_text_with_the_bundled_readme(installed):
    """`qgis_process help` prints the short help as it is: no HTML tags; the help URL is the
    README inside the installed plugin (offline); tile size, overlap and device are advanced."""
    from pathlib import Path

    from qgis.PyQt.QtCore import QUrl

    def qgis_process_help(*json_flag):
        args = [QGIS_PROCESS, *json_flag, "help", ALG]
        return subprocess.run(args, env=installed, capture_output=True, text=True, timeout=120).stdout

    plain = qgis_process_help()
    assert "Pre and post must be two different files" in plain and "<b>" not in plain and "</" not in plain
    report = json.loads(qgis_process_help("--json"))
    url = QUrl(report["algorithm_details"]["help_url"])
    readme = Path(installed["QGIS_PLUGINPATH"]) / PLUGIN_NAME / "README.md"
    assert url.isLocalFile() and url.toLocalFile() == str(readme) and url.fragment() == "qgis-plugin"
    advanced = {name for name, p in report["parameters"].items() if p["is_advanced"]}
    assert advanced == {"TILE_SIZE", "OVERLAP", "DEVICE"}


def test_qgis_process_without_s2m_geo_says_how_to_install(installed, scene, tmp_path):
    env = dict(installed, PATH="/usr/bin:/bin")
    env.pop("S2M_GEO_EXECUTABLE", None)
    out = tmp_path / "changes.gpkg"
    r = _run(env, {"PRE": scene["pre"], "POST": scene["post"], "OUTPUT": out}, timeout=120)
    assert r.returncode == 1
    assert "s2m-geo command line was not found" in r.stderr and "pip install s2m-geo" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "<p>" not in r.stdout + r.stderr  # plain text in a terminal (HTML is for the toolbox's box)
    assert not out.exists()
