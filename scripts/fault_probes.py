#!/usr/bin/env python3
"""Run the policy node's fault suite (tests/fault_suite.py) and print what the node did.

    scripts/with-env python scripts/fault_probes.py              # every probe, one line each + summary
    scripts/with-env python scripts/fault_probes.py --only 'nan|silence'
    scripts/with-env python scripts/fault_probes.py --markdown   # also the README table

Starts its own fake_robot, policy node (shipped decoder + LP-DS head, default parameters) and, for
the sim-time probes, the MuJoCo sim bridge, in a ROS domain of its own on loopback. Exit status 0
only when every probe passed and no unsafe command was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

# Before rclpy is imported: discovery stays on this machine, in a domain of this run's own.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = str(random.Random(os.getpid()).randint(101, 200))
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests'))

import fault_suite  # noqa: E402


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument('--only', default='', help='regular expression: run the probes whose name or class matches')
    cli.add_argument('--no-sim', action='store_true', help='leave out the probes that need the sim bridge')
    cli.add_argument('--markdown', action='store_true', help="print the README's fault table too")
    cli.add_argument('--json', type=Path, help='write every result and the summary here')
    cli.add_argument('--logs', type=Path, help='keep the nodes\' logs in this folder')
    cli.add_argument('--list', action='store_true', help='list the probes and exit')
    args = cli.parse_args()

    probes = [p for p in fault_suite.PROBES
              if (not args.only or re.search(args.only, f'{p.name} {p.cls}')) and not (args.no_sim and p.sim)]
    if args.list:
        for p in probes:
            print(f'{p.name:<28} {p.cls}')
        return 0
    started = time.monotonic()
    done = [0]

    def progress(res: fault_suite.ProbeResult) -> None:
        done[0] += 1
        print(f'[{done[0]:2d}/{len(probes)} {time.monotonic() - started:5.0f} s] {res.line()}', flush=True)

    print(f'{len(probes)} probes; name, class, verdict, hold latency (periods/bound), '
          'resume jump (rad), unsafe commands, note', flush=True)
    results = fault_suite.run_probes(probes, workdir=args.logs, on_result=progress)
    s = fault_suite.summary(results)
    print()
    print(f"probes tried: {s['probes']}, passed: {s['passed']}, failed: {len(s['failed'])} "
          f"{' '.join(s['failed'])}")
    print(f"unsafe commands: {s['unsafe_commands']} (must be 0)")
    print(f"max hold latency: {s['max_latency_input']} periods for malformed/non-finite input "
          f"(bound {fault_suite.LATENCY_INPUT}), {s['max_latency_stale']} for silence "
          f"(bound {fault_suite.LATENCY_STALE}), {s['max_latency']} over all bounded probes")
    print(f"resume-jump max: {s['resume_jump_max']:.4f} rad (bound: one step, "
          f"{fault_suite.STEP.min():.4f}-{fault_suite.STEP.max():.4f} rad)")
    print(f'wall time: {time.monotonic() - started:.0f} s')
    if args.markdown:
        print()
        print('### What the node does on faults')
        print()
        print(fault_suite.markdown(results))
    if args.json:
        args.json.write_text(json.dumps({'results': [r.__dict__ for r in results], 'summary': s}, indent=1,
                                        default=str))
    return 0 if not s['failed'] and s['unsafe_commands'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
