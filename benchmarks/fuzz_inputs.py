"""Fuzz what s2m-geo reads from elsewhere within a bounded time (prints a summary).

Three kinds of input, each mutated from a small valid one, deterministic for a seed:

- ``raster``: the pre or post GeoTIFF of ``s2m-geo predict`` — bytes of the TIFF header and
  IFD, random bytes anywhere, or a truncation;
- ``header``: the JSON header of a tiny model package, run by ``s2m-geo predict`` — keys
  dropped, wrong types, NaN/inf, huge numbers, long strings, hub/URL/path backbone names,
  unknown ``backbone_kwargs``, nested junk;
- ``manifest``: a CSV or YAML manifest of ``s2m-geo batch`` — missing columns, duplicate ids,
  ids with ``/``, ``..``, a leading dot, very long or non-ASCII ids, empty rows, a BOM, wrong
  types, junk.

Each case runs the command in a child process with a time and memory limit
(:func:`run_case`). Every run must end cleanly: exit 0 (the damage was harmless; ``batch``:
also 3, "some scenes failed", which it reports) or exit 2 with one ``s2m-geo: error:`` line
and nothing left at the output. A traceback (exit 1), a crash (signal), a hang, more than
one line or a file left behind is a finding. Exit status 1 when anything was found.

    python benchmarks/fuzz_inputs.py                       # 30 cases of each kind, seed 0
    python benchmarks/fuzz_inputs.py --kinds header --cases 200 --seed 7 --timeout 60
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("raster", "header", "manifest")
#: The address space a child may use: a header asking for a huge network must fail as an
#: error, not take the machine's memory.
MEMORY_LIMIT = 16 << 30


@dataclass
class Case:
    """One run: ``argv`` and the output folder that must hold nothing when it fails."""

    label: str
    argv: list[str]
    out: Path
    ok_codes: tuple[int, ...] = (0,)


@dataclass
class Outcome:
    kind: str  # "ok", "clean error" or "finding"
    detail: str = ""


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _files_under(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def run_case(case: Case, timeout: float) -> Outcome:
    """Run one case and judge it by the error contract (docs/errors.md)."""
    try:
        proc = subprocess.run(
            case.argv, capture_output=True, text=True, timeout=timeout, preexec_fn=_limit_memory, errors="replace"
        )
    except subprocess.TimeoutExpired:
        return Outcome("finding", f"{case.label}: no answer within {timeout:.0f} s (hang)")
    code, err = proc.returncode, proc.stderr
    lines = [x for x in err.strip().splitlines() if not x.startswith("warning: ")]
    left = _files_under(case.out)
    if code in case.ok_codes:
        return Outcome("ok")
    if code == 2 and len(lines) == 1 and lines[0].startswith("s2m-geo: error: ") and not left:
        return Outcome("clean error", lines[0])
    last = lines[-1] if lines else "(no message)"
    what = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
    if code == 2 and len(lines) == 1 and left:
        return Outcome("finding", f"{case.label}: left {left[:5]} after failing: {last[:300]}")
    return Outcome("finding", f"{case.label}: {what}, {len(lines)} line(s): {last[:300]}")


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "s2m_geo.cli", *map(str, args)]


# --- rasters ------------------------------------------------------------------------------------


def mutate_raster(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    kind = rng.choice(["header", "bytes", "truncate"])
    b = bytearray(data)
    if kind == "header":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(min(len(b), 1024))
            b[i] = rng.randrange(256)
        return bytes(b), kind
    if kind == "bytes":
        for _ in range(rng.randint(1, 64)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        return bytes(b), kind
    return bytes(b[: rng.randrange(8, len(b))]), kind


def raster_cases(tmp: Path, rng: random.Random, n: int, scene: dict[str, Path], model: Path) -> Iterator[Case]:
    for i in range(n):
        which = rng.choice(["pre", "post"])
        data, kind = mutate_raster(scene[which].read_bytes(), rng)
        bad = tmp / f"raster{i}_{which}.tif"
        bad.write_bytes(data)
        pre, post = (bad, scene["post"]) if which == "pre" else (scene["pre"], bad)
        out = tmp / f"raster_out{i}"
        out.mkdir()
        yield Case(
            f"raster {i} ({kind} of {which})", _cli("predict", pre, post, "-o", out / "c.gpkg", "--model", model), out
        )


# --- model headers ------------------------------------------------------------------------------


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """A safetensors file as (its s2m-geo header, the whole safetensors header, the tensor bytes)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    outer = json.loads(raw[8 : 8 + n])
    return json.loads(outer["__metadata__"]["s2m_geo"]), outer, raw[8 + n :]


def write_header(path: Path, meta_text: str, outer: dict[str, Any], data: bytes) -> None:
    """The same tensors with another s2m-geo header (any text, valid JSON or not)."""
    outer = {**outer, "__metadata__": {**outer["__metadata__"], "s2m_geo": meta_text}}
    head = json.dumps(outer).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + data)


def _leaves(d: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every value of a JSON document (containers too, except the root)."""
    out = [path] if path else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _leaves(v, (*path, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _leaves(v, (*path, i))
    return out


def _set(d: Any, path: tuple[Any, ...], value: Any) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _drop(d: Any, path: tuple[Any, ...]) -> None:
    for k in path[:-1]:
        d = d[k]
    del d[path[-1]]


WRONG_TYPES: list[Any] = ["x", "", [], {}, None, True, -1, 0, 1.5, [1, "a"], {"a": {"b": []}}]
NUMBERS: list[Any] = [float("nan"), float("inf"), -float("inf"), 10**9, -(10**9), 10**30, 1e308, 2**63, -1e-320]
LONG_STRINGS = ["a" * 100_000, "é" * 5_000, "中" * 3_000 + "\u202e", 'a"<b>&\n\t\x00|x', "../" * 200 + "etc/passwd"]
BACKBONES = [
    "hf-hub:timm/resnet18.a1_in1k",
    "https://example.org/w.safetensors",
    "/etc/passwd",
    "../../weights/resnet18.pth",
    "resnet18.a.b",
    "timm/resnet18",
    "Resnet18",
    "resnet18 ",
    "no_such_model_v9",
    "resnet18",
]
BACKBONE_KWARGS = [
    {"pretrained_cfg_overlay": {"file": "/etc/passwd"}},
    {"checkpoint_path": "w.pth"},
    {"pretrained": True},
    {"depth": 10**6},
    {"embed_dim": float("nan")},
    {"num_heads": 3},
    {"depth": 2, "num_heads": 64, "embed_dim": 8},
    {"qkv_bias": "yes"},
    {"__class__": "x"},
]


def _nested(depth: int) -> Any:
    junk: Any = 0
    for _ in range(depth):
        junk = [junk]
    return junk


def mutate_header(meta: dict[str, Any], rng: random.Random) -> tuple[str, str]:
    """A mutated header as JSON text (NaN/inf written as JSON allows them: NaN, Infinity)."""
    m = copy.deepcopy(meta)
    kind = rng.choice(["drop", "type", "number", "string", "backbone", "kwargs", "junk", "config"])
    paths = _leaves(m)
    path = rng.choice(paths)
    if kind == "drop":
        _drop(m, path)
    elif kind == "type":
        _set(m, path, copy.deepcopy(rng.choice(WRONG_TYPES)))
    elif kind == "number":
        numeric = [p for p in paths if isinstance(_get(m, p), (int, float)) and not isinstance(_get(m, p), bool)]
        path = rng.choice(numeric or paths)
        _set(m, path, rng.choice(NUMBERS))
    elif kind == "string":
        strings = [p for p in paths if isinstance(_get(m, p), str)]
        path = rng.choice(strings or paths)
        _set(m, path, rng.choice(LONG_STRINGS))
    elif kind == "backbone":
        name = rng.choice(BACKBONES)
        m["config"]["backbone"] = m["backbone"] = name
        path = ("config", "backbone")
    elif kind == "kwargs":
        m["config"]["backbone_kwargs"] = copy.deepcopy(rng.choice(BACKBONE_KWARGS))
        path = ("config", "backbone_kwargs")
    elif kind == "junk":
        junk = rng.choice([_nested(rng.choice([50, 5_000, 200_000])), {"a": {"b": {"c": [None] * 10}}}, [{}] * 1000])
        _set(m, path, junk)
    else:  # a config field: huge, negative or of a wrong type
        key = rng.choice(sorted(m["config"]))
        path = ("config", key)
        m["config"][key] = rng.choice([10**6, 10**9, -3, 0, "4", [4], None, 2.5, float("nan")])
    try:
        text = json.dumps(m, allow_nan=True)
    except RecursionError:
        text = "[" * 200_000 + "]" * 200_000
    return text, f"{kind} at {'.'.join(map(str, path))}"


def _get(d: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        d = d[k]
    return d


def header_case(tmp: Path, name: str, meta_text: str, model: Path, scene: dict[str, Path], label: str) -> Case:
    """A case running ``predict`` with ``model``'s tensors under the header ``meta_text``."""
    _, outer, data = read_header(model)
    bad = tmp / f"{name}.safetensors"
    write_header(bad, meta_text, outer, data)
    out = tmp / f"{name}_out"
    out.mkdir()
    argv = _cli("predict", scene["pre"], scene["post"], "-o", out / "c.gpkg", "--model", bad)
    return Case(label, argv, out)


def header_cases(tmp: Path, rng: random.Random, n: int, scene: dict[str, Path], model: Path) -> Iterator[Case]:
    meta, _, _ = read_header(model)
    for i in range(n):
        text, kind = mutate_header(meta, rng)
        yield header_case(tmp, f"header{i}", text, model, scene, f"header {i} ({kind})")


# --- batch manifests ----------------------------------------------------------------------------

BAD_IDS = [
    "a/b",
    "..",
    "../up",
    ".hidden",
    "a\\b",
    "é" * 200,
    "x" * 300,
    "中" * 68,
    "all_changes",
    "CON",
    "a\u202eb",
    " ",
    "a:b",
    "-rf",
    "a" * 203,
]


def _yaml_text(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"scenes": rows}, ensure_ascii=False)  # JSON is YAML


def mutate_manifest(scene: dict[str, Path], rng: random.Random) -> tuple[str, str, str]:
    """``(suffix, text, what)``: a manifest of one or two scenes (the valid pair), mutated."""
    pre, post = str(scene["pre"]), str(scene["post"])
    rows: list[dict[str, Any]] = [{"scene_id": "s1", "pre": pre, "post": post}]
    kind = rng.choice(["column", "duplicate", "id", "empty", "bom", "types", "csv junk", "yaml junk"])
    suffix = rng.choice([".csv", ".yaml"])
    if kind == "column":
        rows = [{k: v for k, v in rows[0].items() if k != rng.choice(["scene_id", "pre", "post"])}]
    elif kind == "duplicate":
        rows.append({**rows[0], "scene_id": rng.choice(["s1", "S1", "s1 "])})
    elif kind == "id":
        rows[0]["scene_id"] = rng.choice(BAD_IDS)
    elif kind == "types" or (kind in ("bom", "empty") and suffix == ".yaml"):
        suffix = ".yaml"
        key = rng.choice(["scene_id", "pre", "post", "pre_date", "post_date"])
        rows[0][key] = rng.choice([12, 1.5e300, True, None, [1, 2], {"a": 1}, "2023-13-45", "", "\ufeff"])
        kind = f"types ({key})"
    if kind == "yaml junk":
        suffix = ".yaml"
        text = rng.choice(
            [
                "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nscenes: [*b, *b, *b]\n",
                "scenes: !!python/object/apply:os.system ['echo pwned']\n",
                "scenes:\n  - {scene_id: s1, pre: " + pre + ", post: " + post + "}\n  - \n  - []\n",
                "- " * 5000 + "x\n",
                "{" * 10_000,
                "scenes: 7\n",
            ]
        )
        return suffix, text, kind
    if suffix == ".yaml":
        return suffix, _yaml_text(rows), kind
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [",".join(cols)] + [",".join(_csv_cell(r.get(c, "")) for c in cols) for r in rows]
    if kind == "empty":
        lines = rng.choice([[], [lines[0]], [lines[0], "", ",,", lines[1]], ["", "", ""]])
    elif kind == "bom":
        return suffix, "\ufeff" + "\n".join(lines) + "\n", kind
    elif kind == "csv junk":
        lines = rng.choice(
            [
                [lines[0], '"unclosed,' + pre + "," + post],
                [lines[0].replace(",", ";"), lines[1]],
                [lines[0], lines[1] + ",extra,cells"],
                [lines[0], "\x00" * 10],
                [lines[0], "x" * 1_000_000 + "," + pre + "," + post],
                ["scene_id\tpre\tpost", f"s1\t{pre}\t{post}"],
            ]
        )
    return suffix, "\n".join(lines) + "\n", kind


def _csv_cell(value: Any) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def manifest_case(tmp: Path, name: str, suffix: str, text: str, model: Path, label: str) -> Case:
    """A case running ``batch`` on a manifest ``text`` (exit 3, scenes failed, is reported)."""
    path = tmp / f"{name}{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out = tmp / f"{name}_out"
    argv = _cli("batch", path, "-o", out, "--model", model, "--workers", "1")
    return Case(label, argv, out, ok_codes=(0, 3))


def manifest_cases(tmp: Path, rng: random.Random, n: int, scene: dict[str, Path], model: Path) -> Iterator[Case]:
    for i in range(n):
        suffix, text, kind = mutate_manifest(scene, rng)
        yield manifest_case(tmp, f"manifest{i}", suffix, text, model, f"manifest {i} ({kind}, {suffix})")


GENERATORS: dict[str, Callable[..., Iterator[Case]]] = {
    "raster": raster_cases,
    "header": header_cases,
    "manifest": manifest_cases,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    ap.add_argument("--cases", type=int, default=30, help="cases of each kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per run before it counts as a hang")
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()

    from s2m_geo.synthetic import SceneSpec, write_scene
    from s2m_geo.testing import tiny_model

    all_findings = 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        scene = write_scene(tmp / "scene", SceneSpec(size=args.size, seed=args.seed))
        model = tiny_model(tmp / "m.safetensors")
        for kind in args.kinds.split(","):
            rng = random.Random(f"{kind}-{args.seed}")
            counts = {"ok": 0, "clean error": 0, "finding": 0}
            findings = []
            t0 = time.perf_counter()
            work = tmp / kind
            work.mkdir()
            for case in GENERATORS[kind](work, rng, args.cases, scene, model):
                outcome = run_case(case, args.timeout)
                counts[outcome.kind] += 1
                if outcome.kind == "finding":
                    findings.append(outcome.detail)
            print(
                f"{kind}: {args.cases} cases in {time.perf_counter() - t0:.0f} s (seed {args.seed}): "
                f"{counts['ok']} ran fine, {counts['clean error']} clean errors (exit 2, one line), "
                f"{counts['finding']} findings"
            )
            for f in findings:
                print("  FINDING", f)
            all_findings += len(findings)
    return 1 if all_findings else 0


if __name__ == "__main__":
    sys.exit(main())
