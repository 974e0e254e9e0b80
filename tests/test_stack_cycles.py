"""Ten consecutive start/stop cycles of the sim stack and of the real stack (against the
franka_bringup stand-in), each brought to an active policy and stopped with Ctrl-C (SIGINT) as a
user would: no hang (the runner SIGKILLs what outlives its grace and then exits non-zero) and no
process exiting non-zero (the runner's exit code covers every process it started).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "franka_standin"))
import harness  # noqa: E402

CYCLES = 10
GRACE_S = 8.0


def _cycle(ros, env, stack: str, args: dict[str, str], log: Path, *options: str) -> float:
    """One start, active, stop; returns the seconds the stop took."""
    proc = harness.start_stack(env, stack, args, log, "--grace", str(GRACE_S), *options)
    deadline = time.monotonic() + 90
    try:
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not active within 90 s:\n{log.read_text()}"
            try:
                if ros.get_state("policy_node", 2) == "active":
                    break
            except TimeoutError:
                pass
            time.sleep(0.1)
    finally:
        t0 = time.monotonic()
        rc = harness.stop(proc, GRACE_S + 10)
        took = time.monotonic() - t0
    text = log.read_text()
    assert rc == 0, f"exit {rc} after {took:.1f} s:\n{text[-6000:]}"
    assert "SIGKILL" not in text and "exited with code" not in text, text[-6000:]
    return took


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("stack", ["sim", "real"])
def test_ten_start_stop_cycles(tmp_path, tiny_models, stack):
    from ros_util import RosClient

    if stack == "real":
        env = harness.standin_env(tmp_path, "v3.4.0")
        franka = harness.start_bringup(env, "v3.4.0", harness.include_arguments(env, load_gripper="false"),
                                       tmp_path / "franka.log")
        # load_gripper:=false: no finger joints, so the policy gets its gripper width nowhere; the
        # cycles are about start and stop, which it reaches holding.
        args = {"load_gripper": "false", "use_camera": "false", "decoder": str(tiny_models.decoder)}
        options = ("--no-includes",)
    else:
        env, franka, args, options = harness.standin_env(tmp_path, None, franka_msgs=False), None, {}, ()
    stops = []
    try:
        with RosClient(f"{stack}_cycles_test") as ros:
            for i in range(CYCLES):
                stops.append(_cycle(ros, env, stack, args, tmp_path / f"{stack}-{i}.log", *options))
    finally:
        if franka is not None:
            assert harness.stop(franka, 15) == 0, (tmp_path / "franka.log").read_text()
    print(f"{stack}: stop took {min(stops):.2f}-{max(stops):.2f} s over {CYCLES} cycles")
