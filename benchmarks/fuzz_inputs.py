"""Fuzz the input rasters of ``s2m-geo predict`` within a bounded time (prints a summary).

Takes a small valid GeoTIFF pair from the synthetic generator and, for each case, mutates
the pre or post file — bytes of the TIFF header and IFD, random bytes anywhere, or a
truncation — then runs ``s2m-geo predict`` on it in a forked child with a time limit.
Every run must end cleanly: exit 0 (the damage was harmless) or exit 2 with one
``s2m-geo: error:`` line; a traceback (exit 1), a crash (signal) or a hang is a finding.
Deterministic for a seed. Exit status 1 when anything was found.

    python benchmarks/fuzz_inputs.py                 # 60 cases, seed 0
    python benchmarks/fuzz_inputs.py --cases 300 --seed 7 --timeout 60
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per run before it counts as a hang")
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()

    from s2m_geo.synthetic import SceneSpec, write_scene
    from s2m_geo.testing import tiny_model

    rng = random.Random(args.seed)
    findings, outcomes = [], {"ok": 0, "clean error": 0}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scene = write_scene(tmp / "scene", SceneSpec(size=args.size, seed=args.seed))
        model = tiny_model(tmp / "m.safetensors")
        for case in range(args.cases):
            which = rng.choice(["pre", "post"])
            data, kind = mutate(scene[which].read_bytes(), rng)
            bad = tmp / f"case{case}_{which}.tif"
            bad.write_bytes(data)
            pre, post = (bad, scene["post"]) if which == "pre" else (scene["pre"], bad)
            out = tmp / f"out{case}" / "c.gpkg"
            out.parent.mkdir()
            argv = [
                sys.executable,
                "-m",
                "s2m_geo.cli",
                "predict",
                str(pre),
                str(post),
                "-o",
                str(out),
                "--model",
                str(model),
            ]
            label = f"case {case} ({kind} of {which})"
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                findings.append(f"{label}: no answer within {args.timeout:.0f} s (hang)")
                continue
            code, err = proc.returncode, proc.stderr
            lines = [x for x in err.strip().splitlines() if x.startswith("s2m-geo:")]
            if code == 0:
                outcomes["ok"] += 1
            elif code == 2 and lines and "Traceback" not in err:
                outcomes["clean error"] += 1
            else:
                last = err.strip().splitlines()[-1] if err.strip() else ""
                findings.append(f"{label}: exit {code}: {last}")
            leftovers = [p.name for p in out.parent.iterdir()]
            if code != 0 and leftovers:
                findings.append(f"{label}: left {leftovers} after failing")
            bad.unlink()
    print(
        f"{args.cases} cases in {time.perf_counter() - t0:.0f} s: {outcomes['ok']} ran fine, "
        f"{outcomes['clean error']} clean errors (exit 2, one line), {len(findings)} findings"
    )
    for f in findings:
        print("  FINDING", f)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
