"""benchmarks/fuzz_inputs.py judges its runs right: a few model-header and manifest cases go
through its harness (run_case), and runs that break the error contract are findings."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration  # runs the command line in child processes


def _load():
    spec = importlib.util.spec_from_file_location("fuzz_inputs", ROOT / "benchmarks" / "fuzz_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


fz = _load()


def test_header_and_manifest_cases_end_in_one_line_errors(tmp_path, tiny_model, small_scene):
    meta, _, _ = fz.read_header(tiny_model)
    hub = {**meta, "config": {**meta["config"], "backbone": "hf-hub:timm/resnet18.a1_in1k"}}
    pre, post = small_scene["pre"], small_scene["post"]
    cases = [
        fz.header_case(tmp_path, "hub", json.dumps(hub), tiny_model, small_scene, "hub backbone"),
        fz.header_case(tmp_path, "deep", "[" * 100_000 + "]" * 100_000, tiny_model, small_scene, "nested junk"),
        fz.manifest_case(tmp_path, "up", ".csv", f"scene_id,pre,post\n../up,{pre},{post}\n", tiny_model, "up"),
        fz.manifest_case(tmp_path, "long", ".csv", f"scene_id,pre,post\n{'é' * 200},{pre},{post}\n", tiny_model, "é"),
    ]
    outcomes = [fz.run_case(c, timeout=120) for c in cases]
    assert [o.kind for o in outcomes] == ["clean error"] * len(cases), [o.detail for o in outcomes]
    assert "hf-hub" in outcomes[0].detail and "not valid JSON" in outcomes[1].detail
    assert "row 1: scene_id '../up'" in outcomes[2].detail and "400 bytes" in outcomes[3].detail


def test_what_breaks_the_error_contract_is_a_finding(tmp_path):
    def case(code: str, out: Path | None = None) -> object:
        return fz.Case("c", [sys.executable, "-c", code], out or tmp_path / "none")

    left = tmp_path / "left"
    left.mkdir()
    (left / "half.gpkg").write_text("x")
    error = "import sys; print('s2m-geo: error: x: bad; fix it', file=sys.stderr); sys.exit(2)"
    assert fz.run_case(case(error), 20).kind == "clean error"
    assert fz.run_case(case("pass"), 20).kind == "ok"
    for bad in ("raise ValueError('boom')", "import os; os.kill(os.getpid(), 9)", "import time; time.sleep(30)"):
        assert fz.run_case(case(bad), 2).kind == "finding", bad
    two = "import sys; print('s2m-geo: error: a\\nb', file=sys.stderr); sys.exit(2)"
    assert fz.run_case(case(two), 20).kind == "finding"
    assert "left ['half.gpkg']" in fz.run_case(case(error, left), 20).detail
    mutated = {
        fz.mutate_header({"config": {"backbone": "x"}, "backbone": "x", "a": [1.0]}, random.Random(s))[1]
        for s in range(40)
    }
    assert len(mutated) > 5  # the mutations vary with the seed
