"""Run every benchmark (bench/bench_*.py) in turn, each in its own process, and print their output.

Each benchmark prints its own numbers and a ratio against a baseline measured in the same run;
targets are stated beside the numbers, never asserted.
"""

import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    only = set(sys.argv[1:])
    failed = []
    # A domain of this run's own: a demo, a test run or a stray node elsewhere on the machine
    # must not answer the benchmark's service calls.
    env = dict(os.environ, ROS_DOMAIN_ID=str(1 + os.getpid() % 100), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    for script in scripts:
        if only and script.stem.removeprefix("bench_") not in only:
            continue
        print(f"\n=== {script.stem} ===", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)], env=env)
        print(f"--- {script.stem}: exit {rc}, {time.monotonic() - start:.1f} s", flush=True)
        if rc:
            failed.append(script.stem)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
