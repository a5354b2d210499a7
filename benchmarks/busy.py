"""Two ``interp analyze`` runs started together on the same cores, against one alone.

    python benchmarks/busy.py [--analyzer neuron-stats] [--run narrow]

Each run is a subprocess of the ``interp`` command on the bundled series (its own output folder); the wall time of
one run alone, then of two started at once (the slower of the two), in one sitting, best of 2 each. With OpenMP's
default of spinning threads, two torch processes of 2 threads each on 2 cores ran 8x slower instead of 2x; the
``interp`` command makes OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``), and the same pair is timed
with spinning threads (``OMP_WAIT_POLICY=ACTIVE``) for comparison. Target: two at once <= 2.5 x one alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def runs(n: int, folder: Path, args, policy: str) -> float:
    """Wall seconds until the last of ``n`` simultaneous runs ends."""
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", "from interp.cli import entry; entry()", "analyze",
                               "-a", args.analyzer, "--run", args.run, "--out", str(folder / f"{policy}{n}-{i}"), "-q"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(n)]
    for p in procs:
        if p.wait():
            raise SystemExit(p.stderr.read().decode()[-2000:])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--analyzer", default="neuron-stats")
    ap.add_argument("--run", default="narrow")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        res = {}
        for rep in range(2):
            for policy in ("PASSIVE", "ACTIVE"):
                for n in (1, 2):
                    t = runs(n, folder / str(rep), args, policy)
                    res[(policy, n)] = min(res.get((policy, n), t), t)
    for policy in ("PASSIVE", "ACTIVE"):
        one, two = res[(policy, 1)], res[(policy, 2)]
        print(f"OMP_WAIT_POLICY={policy}: one run {one:.1f} s, two at once {two:.1f} s: {two / one:.2f} x "
              f"(target <= 2.5; 2.0 is fair sharing)")


if __name__ == "__main__":
    main()
