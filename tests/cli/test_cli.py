import json
import subprocess

import pytest
import rasterio
from click.testing import CliRunner

from s2m_geo import __version__
from s2m_geo.cli import cli
from s2m_geo.testing import cli_command


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_lists_commands_and_every_command_has_help():
    res = run("--help")
    assert res.exit_code == 0 and "sample-data" in res.output
    for name in cli.commands:
        sub = run(name, "--help")
        assert sub.exit_code == 0 and "Usage:" in sub.output


def test_version():
    assert __version__ in run("--version").output


@pytest.mark.integration
def test_sample_data_writes_three_rasters_with_json_progress(tmp_path):
    out = tmp_path / "demo dir ü"  # spaces and non-ASCII in paths must work
    proc = subprocess.run(
        cli_command("sample-data", out, "--size", "256", "--seed", "2", "--progress", "json"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stderr.splitlines()]
    assert lines[-1] == {"stage": "synthesize", "done": 1, "total": 1}
    for name in ("pre", "post", "label"):
        with rasterio.open(out / f"{name}.tif") as ds:
            assert ds.width == 256


@pytest.mark.integration
def test_sample_data_refuses_to_overwrite(tmp_path):
    assert run("sample-data", str(tmp_path), "--size", "64").exit_code == 0
    proc = subprocess.run(
        cli_command("sample-data", tmp_path, "--size", "64"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "pre.tif: already exists; pass --overwrite" in proc.stderr
    assert run("sample-data", str(tmp_path), "--size", "64", "--overwrite").exit_code == 0


@pytest.mark.integration
def test_sample_data_bad_crs_is_exit_2(tmp_path):
    proc = subprocess.run(
        cli_command("sample-data", tmp_path / "x", "--post-crs", "EPSG:999999"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--post-crs EPSG:999999" in proc.stderr
    assert not (tmp_path / "x").exists()
