"""Peak memory and speed of the synthetic scene generator (not a test: prints a table).

Each size runs in a fresh process, so peak RSS is that scene's alone. Flat memory means the
8k x 8k scene peaks at about the same RSS as the 2k x 2k one.

    python benchmarks/synthetic.py            # 2048 and 8192
    python benchmarks/synthetic.py 2048 20000
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
from s2m_geo.synthetic import SceneSpec, write_scene
size, out = int(sys.argv[1]), sys.argv[2]
t = time.perf_counter()
write_scene(out, SceneSpec(size=size, seed=0))
dt = time.perf_counter() - t
print(json.dumps({"size": size, "seconds": dt,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(sizes: list[int]) -> None:
    print(f"{'scene':>13} {'Mpx':>8} {'seconds':>9} {'Mpx/s':>7} {'peak RSS MiB':>13}")
    for size in sizes:
        with tempfile.TemporaryDirectory() as out:
            res = subprocess.run(
                [sys.executable, "-c", CHILD, str(size), out], check=True, capture_output=True, text=True
            )
        r = json.loads(res.stdout)
        mpx = size * size / 1e6
        print(f"{size:>6}x{size:<6} {mpx:8.1f} {r['seconds']:9.1f} {mpx / r['seconds']:7.2f} {r['peak_rss_mib']:13.0f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2048, 8192])
