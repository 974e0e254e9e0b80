"""The sim bridge in real-time mode, the lock-step timeout, and refused start-up parameters."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from lps_msgs.msg import TaskStatus
from lps_msgs.srv import ResetEpisode
from lps_sim import ros_io
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_util import Collector, NodeProcess, RosClient, ros_arg
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

ARM = [f"fr3_joint{i}" for i in range(1, 8)]
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


def _trajectory(q, tfs: float) -> JointTrajectory:
    ns = int(round(tfs * 1e9))
    point = JointTrajectoryPoint(positions=[float(v) for v in q],
                                 time_from_start=Duration(sec=ns // 10**9, nanosec=ns % 10**9))
    return JointTrajectory(joint_names=ARM, points=[point])


def _stamps(msgs) -> np.ndarray:
    return np.array([ros_io.time_s(m.header.stamp) for m in msgs])


def _counters(diag: Collector) -> dict[str, str]:
    diag.clear()
    return {kv.key: kv.value for kv in diag.wait_count(1, 5.0)[-1].status[0].values}


def test_realtime_rates_pacing_and_command_following(tmp_path):
    params = {"clock_mode": "realtime", "joint_state_rate_hz": 50.0, "robot_state_rate_hz": 0.0, "seed": 3}
    with NodeProcess("lps_sim.bridge_node", tmp_path / "rt.log", params) as proc, RosClient("rt_test") as client:
        n = client.node
        joints = Collector(n, JointState, "joint_states", 1000)
        measured = Collector(n, JointState, "franka_robot_state_broadcaster/measured_joint_states", BEST_EFFORT)
        clock = Collector(n, Clock, "/clock", 1000)
        diag = Collector(n, DiagnosticArray, "diagnostics", 10)
        cmd = n.create_publisher(JointTrajectory, "fr3_arm_controller/joint_trajectory", 10)
        res = client.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=3), timeout=30.0)
        assert res.success, res.message
        joints.clear(), measured.clear(), clock.clear()
        wall0 = time.monotonic()
        clock.wait_count(2, 10.0)
        sim0 = ros_io.time_s(clock.snapshot()[0].clock)
        time.sleep(1.5)

        # Rates in simulated time (exact, whatever the machine's load): 50 Hz and 100 Hz.
        js_dt = np.diff(_stamps(joints.snapshot()))
        ms_dt = np.diff(_stamps(measured.snapshot()))
        assert len(js_dt) > 5 and len(ms_dt) > 10
        np.testing.assert_allclose(np.median(js_dt), 0.02, atol=1e-6)
        np.testing.assert_allclose(np.median(ms_dt), 0.01, atol=1e-6)
        # Pacing: the sim never runs ahead of the wall clock (it may fall behind on a loaded machine).
        sim_elapsed = ros_io.time_s(clock.snapshot()[-1].clock) - sim0
        assert 0.0 < sim_elapsed <= (time.monotonic() - wall0) * 1.05 + 0.05

        # One command, reached after its time_from_start with no further messages.
        q0 = np.array(joints.snapshot()[-1].position[:7])
        goal = q0 + np.array([0.2, 0.1, 0.0, -0.15, 0.0, 0.1, -0.2])
        cmd.publish(_trajectory(goal, 0.3))
        joints.wait_for(lambda m: np.abs(np.array(m[-1].position[:7]) - goal).max() < 5e-3, 20.0,
                        "joints at the commanded goal")
        c = _counters(diag)
        assert int(c["commands"]) == 1 and int(c["missed_steps"]) == 0
        assert float(c["real_time_factor"]) > 0.0
        assert proc.proc.poll() is None, proc.log()


def test_lockstep_timeout_holds_and_counts_missed_steps_but_an_episode_waits_for_its_first_command(tmp_path):
    params = {"clock_mode": "lockstep", "lockstep_timeout_s": 0.2}
    with NodeProcess("lps_sim.bridge_node", tmp_path / "ls.log", params) as proc, RosClient("ls_test") as client:
        status = Collector(client.node, TaskStatus, "task_status", 1000)
        joints = Collector(client.node, JointState, "joint_states", 1000)
        diag = Collector(client.node, DiagnosticArray, "diagnostics", 10)
        cmd = client.node.create_publisher(JointTrajectory, "fr3_arm_controller/joint_trajectory", 10)
        res = client.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=2), timeout=30.0)
        assert res.success, res.message
        # The policy's activation after a reset may take seconds: the first period waits for it
        # (lockstep_start_timeout_s, 30 s), not for the 0.2 s of later periods.
        time.sleep(1.5)
        # No step of the new episode: a missed one would have advanced it. (The start-up episode
        # before it did advance by time-outs: its first observation met no policy.)
        mine = [m.step for m in status.snapshot() if m.episode_id == res.episode_id]
        assert set(mine) <= {0}, mine
        status.clear()
        cmd.publish(_trajectory(np.asarray(res.joint_positions), 0.01))
        status.wait_for(lambda m: len(m) >= 5, 10.0, "steps advanced by the command, then by the timeout")
        steps = [m.step for m in status.snapshot()]
        assert steps == list(range(1, 1 + len(steps)))  # one period per command or timeout
        missed = int(_counters(diag)["missed_steps"])
        assert missed >= 3
        # Held: the one command asked for the reset posture, and it stays there.
        np.testing.assert_allclose(joints.snapshot()[-1].position[:7], res.joint_positions, atol=2e-3)
        assert "lockstep: no command" in proc.log()


@pytest.mark.parametrize("name,value,expected", [
    ("clock_mode", "fastest", "`clock_mode` must be one of"),
    ("control_rate_hz", 300.0, "`control_rate_hz` must divide"),
    ("task", "stack_cubes", "`task` must be one of"),
    ("profile", "moon_gravity", "`profile` must be one of"),
])
def test_bad_parameters_stop_the_node_with_a_message(name, value, expected):
    cmd = [sys.executable, "-m", "lps_sim.bridge_node", "--ros-args", "-p", ros_arg(name, value)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert expected in out.stderr and str(value) in out.stderr
