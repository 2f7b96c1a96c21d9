"""Start-up time of the command line: `probekit --help` and `probekit probe --help` against a bare
`python -c pass` measured in the same run (median of N runs each, one after the other).

    python scripts/bench_startup.py            # 7 runs each
    python scripts/bench_startup.py --runs 15

The aim (issue 26) is ≤ 0.5 s for each help; the help must load no torch, transformers, pandas or numpy
(tests/test_package.py checks the imports, this script the clock).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "probekit --help": [sys.executable, "-m", "probekit", "--help"],
    "probekit probe --help": [sys.executable, "-m", "probekit", "probe", "--help"],
    "probekit train --help": [sys.executable, "-m", "probekit", "train", "--help"],
}


def seconds(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=Path(__file__).parent.parent)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    base = None
    for name, command in COMMANDS.items():
        times = seconds(command, args.runs)
        median = statistics.median(times)
        extra = "" if base is None else f"  (bare python + {median - base:.3f} s; aim ≤ 0.5 s: {median / 0.5:.2f} of it)"
        base = median if base is None else base
        print(f"{name:<24} median {median:.3f} s (min {min(times):.3f}, max {max(times):.3f}){extra}")


if __name__ == "__main__":
    main()
