"""Errors that name a parameter: one template, rendered by each front end in its own words."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2m_geo.cli.main import cli, flag_names
from s2m_geo.errors import PLACEHOLDER, InputError

ROOT = Path(__file__).resolve().parents[1]


def test_render_names_each_listed_parameter_and_nothing_else():
    exc = InputError("/data/{tile_size}.tif: {tile_size} 33 with {overlap} 16; try {tile_size} 64", params=("overlap",))
    assert (
        exc.render({"overlap": "--overlap"})
        == "/data/{tile_size}.tif: {tile_size} 33 with --overlap 16; try {tile_size} 64"
    )
    exc = InputError(
        "{tile_size} 33 is too small; use {tile_size} 64 or drop {overlap}", params=("tile_size", "overlap")
    )
    assert str(exc) == "tile_size 33 is too small; use tile_size 64 or drop overlap"
    assert exc.render({"tile_size": "--tile-size"}) == "--tile-size 33 is too small; use --tile-size 64 or drop overlap"
    assert exc.params == ("tile_size", "overlap") and exc.exit_code == 2


def test_a_message_without_parameters_is_its_text():
    exc = InputError("a.tif: has no CRS {not a placeholder}")
    assert str(exc) == exc.render({"a": "--a"}) == "a.tif: has no CRS {not a placeholder}"


def _raised_params() -> set[str]:
    """Every parameter name written literally in a ``params=(...)`` of the package."""
    names: set[str] = set()
    for path in (ROOT / "s2m_geo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg == "params" and isinstance(node.value, ast.Tuple):
                names |= {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
    return names


def test_every_parameter_an_error_names_is_a_flag_of_the_command_line():
    flags = flag_names(cli)
    raised = _raised_params()
    assert {"tile_size", "overlap", "bands", "device", "model", "crs"} <= raised
    assert raised <= set(flags), sorted(raised - set(flags))
    assert flags["tile_size"] == "--tile-size" and flags["post_bands"] == "--post-bands"


def test_one_flag_per_parameter_name_across_commands():
    seen: dict[str, set[str]] = {}
    for command in cli.commands.values():
        for p in command.params:
            if p.param_type_name == "option":
                seen.setdefault(p.name, set()).add(max(p.opts, key=len))
    assert {n: f for n, f in seen.items() if len(f) > 1} == {}


@pytest.fixture
def pair(small_scene):
    return [str(small_scene["pre"]), str(small_scene["post"])]


def test_cli_names_the_flag_in_text_and_json(pair, tmp_path):
    args = ["predict", *pair, "-o", str(tmp_path / "c.tif"), "--overlap", "400"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1].startswith("s2m-geo: error: --overlap 400: must be at least 0")
    res = CliRunner().invoke(cli, [*args, "--progress", "json"])
    assert res.exit_code == 2
    event = json.loads(res.output.strip().splitlines()[-1])
    assert event["error"].startswith("--overlap 400: must be at least 0")
    assert event["template"].startswith("{overlap} 400: must be at least 0")
    assert event["params"] == {"overlap": "--overlap"}
    assert not (tmp_path / "c.tif").exists()


def test_a_usage_error_in_json_mode_names_its_parameter(pair, tmp_path):
    args = ["predict", *pair, "-o", str(tmp_path / "c.tif"), "--tile-size", "3", "--progress", "json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2
    event = json.loads(res.output.strip().splitlines()[-1])
    assert "'--tile-size'" in event["error"] and "'{tile_size}'" in event["template"]
    assert event["params"] == {"tile_size": "--tile-size"}


def test_an_error_without_a_parameter_in_json_mode(tmp_path):
    missing = tmp_path / "nope.tif"
    res = CliRunner().invoke(
        cli, ["predict", str(missing), str(missing), "-o", str(tmp_path / "c.tif"), "--progress", "json"]
    )
    assert res.exit_code == 2
    event = json.loads(res.output.strip().splitlines()[-1])
    assert set(event) == {"error"} and str(missing) in event["error"]


def test_the_qgis_runner_renders_like_the_library(qgis_runner):
    exc = InputError("{bands} 1,9: band 9 of a.tif {x}; use {bands} 1,2,3 or {device} cpu", params=("bands", "device"))
    flags = {"bands": "--bands", "device": "--device"}
    event = {"error": exc.render(flags), "template": exc.template, "params": flags}
    assert qgis_runner.render_error(event) == exc.render(flags)
    labels = {"device": "Device"}
    assert qgis_runner.render_error(event, labels) == exc.render({"bands": "--bands", "device": '"Device"'})
    assert qgis_runner.render_error({"error": "plain text"}, labels) == "plain text"
    assert qgis_runner.PLACEHOLDER.pattern == PLACEHOLDER.pattern
