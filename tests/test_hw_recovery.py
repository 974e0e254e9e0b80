"""franka_supervisor: robot readiness from FrankaRobotState, and ~/recover, over DDS.

The supervisor runs as its installed executable against the franka_bringup stand-in
(tests/franka_standin), which publishes the franka_msgs stand-in's FrankaRobotState with
franka's topic and QoS and serves franka_hardware's error-recovery action. The test process
speaks only lps_msgs / std_srvs / parameters: what the policy node and an operator see.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from lps_franka_hw.robot_mode import (
    AUTOMATIC_ERROR_RECOVERY,
    GUIDING,
    IDLE,
    MOVE,
    NO_MODE,
    OTHER,
    REFLEX,
    USER_STOPPED,
    judge,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "franka_standin"))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUPERVISOR = ROOT / "ros2_ws/install/lps_franka_hw/lib/lps_franka_hw/franka_supervisor"


def test_ready_only_in_idle_or_move_with_a_fresh_state():
    assert judge(IDLE, 0.01, 0.3).ready and judge(MOVE, 0.29, 0.3).ready
    for mode in (OTHER, GUIDING, REFLEX, USER_STOPPED, AUTOMATIC_ERROR_RECOVERY, 17):
        r = judge(mode, 0.01, 0.3)
        assert not r.ready and r.robot_mode == mode and r.reason
    assert "REFLEX" in judge(REFLEX, 0.0, 0.3).reason and "~/recover" in judge(REFLEX, 0.0, 0.3).reason
    stale = judge(MOVE, 0.31, 0.3)
    assert not stale.ready and "stale" in stale.reason and stale.robot_mode == MOVE
    none = judge(None, None, 0.3)
    assert not none.ready and none.robot_mode == NO_MODE and "no franka_msgs/FrankaRobotState" in none.reason


def test_without_franka_msgs_the_supervisor_says_what_to_install():
    try:
        import franka_msgs  # noqa: F401
        pytest.skip("franka_msgs is importable here: the missing-package path cannot be exercised")
    except ImportError:
        pass
    proc = subprocess.run([str(SUPERVISOR)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "needs the ROS package `franka_msgs`" in proc.stderr and "franka_ros2" in proc.stderr


def _supervisor(env, log: Path, **params) -> subprocess.Popen:
    cmd = [str(SUPERVISOR), "--ros-args"] + [x for k, v in params.items() for x in ("-p", f"{k}:={v}")]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115


@pytest.mark.ros
@pytest.mark.slow
def test_readiness_follows_the_robot_mode_and_recovery_waits_for_the_policy(tmp_path):
    from lps_msgs.msg import RobotReadiness, SteeringStatus
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from ros_util import Collector, RosClient
    from std_srvs.srv import Trigger

    env = harness.standin_env(tmp_path, "v3.4.0")
    franka = harness.start_bringup(env, "v3.4.0", harness.include_arguments(env, load_gripper="false"),
                                   tmp_path / "franka.log")
    supervisor = _supervisor(env, tmp_path / "supervisor.log")
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    try:
        with RosClient("supervisor_test") as ros:
            readiness = Collector(ros.node, RobotReadiness, "robot_readiness", latched)
            status_pub = ros.node.create_publisher(SteeringStatus, "policy_node/status", 10)

            def newest(pred, what, timeout=30.0):
                readiness.wait_for(lambda m: bool(m) and pred(m[-1]), timeout, what)
                return readiness.snapshot()[-1]

            r = newest(lambda m: m.ready, "ready")
            assert r.robot_mode == IDLE and r.reason == ""
            # A reflex: not ready, and the reason names it.
            ros.set_parameters("fake_robot", {"robot_mode": REFLEX})
            r = newest(lambda m: not m.ready, "not ready on REFLEX")
            assert r.robot_mode == REFLEX and "REFLEX" in r.reason

            def recover() -> Trigger.Response:
                return ros.call(Trigger, "franka_supervisor/recover", Trigger.Request(), 30)

            current: list[str] = []
            # Repeated as the policy node does (about 1 Hz): a first message may precede the match.
            ros.node.create_timer(0.1, lambda: current and status_pub.publish(
                SteeringStatus(lifecycle_state=current[-1])))

            def status(state: str) -> None:
                current.append(state)

            status("active")
            time.sleep(0.5)
            res = recover()
            assert not res.success and "policy node is active" in res.message
            time.sleep(0.5)
            assert not readiness.snapshot()[-1].ready  # nothing was recovered
            status("inactive")
            time.sleep(0.5)
            res = recover()
            assert res.success, res.message
            r = newest(lambda m: m.ready, "ready after recovery")
            assert r.robot_mode == IDLE
            # franka goes away: the state turns stale.
            assert harness.stop(franka, 15) == 0
            r = newest(lambda m: not m.ready, "not ready once the state stops", 10)
            assert "stale" in r.reason
            res = recover()
            assert not res.success and "not available" in res.message
    finally:
        harness.stop(franka, 15)
        rc = harness.stop(supervisor, 15)
    assert rc == 0, (tmp_path / "supervisor.log").read_text()


@pytest.mark.ros
def test_with_fake_hardware_readiness_has_no_robot_mode(tmp_path):
    from lps_msgs.msg import RobotReadiness
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from ros_util import Collector, RosClient

    env = harness.standin_env(tmp_path, "v3.4.0")
    supervisor = _supervisor(env, tmp_path / "supervisor.log", use_fake_hardware="true")
    try:
        with RosClient("supervisor_fake_test") as ros:
            readiness = Collector(ros.node, RobotReadiness, "robot_readiness", QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
            msgs = readiness.wait_count(3, 30)
            assert all(m.ready and m.robot_mode == NO_MODE for m in msgs)
    finally:
        rc = harness.stop(supervisor, 15)
    assert rc == 0, (tmp_path / "supervisor.log").read_text()
