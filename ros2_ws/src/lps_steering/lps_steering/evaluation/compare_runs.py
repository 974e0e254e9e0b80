"""Do two recorded runs of one episode send the same commands? `python -m lps_steering.evaluation.compare_runs
A.mcap B.mcap` (files of `--record-mcap`): the count of arm commands in each, the first one that
differs and by how much. Lock-step episodes of the same head, profile and seed should send the same
commands bit for bit; the first difference is where to look when they do not (docs/architecture.md).
No ROS: the files are read with mcap_ros2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

COMMAND_TOPIC_SUFFIX = "joint_trajectory"
STATUS_TOPIC_SUFFIX = "task_status"


class Comparison(NamedTuple):
    counts: tuple[int, int]       # arm commands in each file
    first_difference: int | None  # index of the first command that differs (None: the shared ones agree)
    max_abs_rad: float            # the largest joint difference at that command


def commands(path: Path) -> list[np.ndarray]:
    """The joint positions of the episode's arm commands, in recorded order: as many as its first
    task_status with `done` counts steps (one command per lock-step period; after them come the
    deactivation's braking commands, whose number depends on when the evaluator stopped the policy,
    and which may be recorded before or after that status)."""
    from mcap_ros2.reader import read_ros2_messages

    out: list[np.ndarray] = []
    steps = None
    for m in read_ros2_messages(str(path)):
        if m.channel.topic.endswith(COMMAND_TOPIC_SUFFIX) and m.ros_msg.points:
            out.append(np.asarray(m.ros_msg.points[0].positions, dtype=float))
        elif m.channel.topic.endswith(STATUS_TOPIC_SUFFIX) and m.ros_msg.done and steps is None:
            steps = int(m.ros_msg.step)
    return out if steps is None else out[:steps]


def compare(a: list[np.ndarray], b: list[np.ndarray]) -> Comparison:
    """The first command that differs; one run having more commands differs where the other ends."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x.shape != y.shape or not np.array_equal(x, y):
            gap = float(np.max(np.abs(x - y))) if x.shape == y.shape else float("inf")
            return Comparison((len(a), len(b)), i, gap)
    if len(a) != len(b):
        return Comparison((len(a), len(b)), min(len(a), len(b)), float("inf"))
    return Comparison((len(a), len(b)), None, 0.0)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m lps_steering.evaluation.compare_runs", description=__doc__)
    cli.add_argument("a", type=Path)
    cli.add_argument("b", type=Path)
    opts = cli.parse_args(argv)
    c = compare(commands(opts.a), commands(opts.b))
    print(f"commands: {c.counts[0]} and {c.counts[1]}")
    if c.first_difference is None:
        print("identical, bit for bit")
        return 0
    if c.first_difference == min(c.counts):
        print(f"the first {min(c.counts)} are identical, but one episode has more commands")
    else:
        print(f"first difference at command {c.first_difference}: up to {c.max_abs_rad:.3g} rad")
    return 1


if __name__ == "__main__":
    sys.exit(main())
