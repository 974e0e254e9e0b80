"""Error-recovery hook over DDS with a stand-in action type (franka_msgs is not installable here)."""

from __future__ import annotations

import threading

import pytest
from lps_franka_hw.recovery import ErrorRecoveryClient, RobotModeMonitor
from lps_msgs.action import RunEvaluation
from rclpy.action import ActionServer
from ros_util import RosClient


def wait_result(client: ErrorRecoveryClient, timeout: float = 10.0) -> tuple[bool, str]:
    done, out = threading.Event(), []
    started = client.recover(lambda ok, text: (out.append((ok, text)), done.set()))
    assert done.wait(timeout), "recovery never finished"
    return started, out[0]


@pytest.mark.parametrize("succeed", [True, False])
def test_recovery_goal_is_sent_and_its_outcome_reported(succeed):
    calls = []

    def execute(goal_handle):
        calls.append(goal_handle.request)
        if succeed:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return RunEvaluation.Result()

    with RosClient("recovery_test") as ros:
        server = ActionServer(ros.node, RunEvaluation, "action_server/error_recovery", execute)
        client = ErrorRecoveryClient(ros.node, action_type=RunEvaluation)
        assert client._client.wait_for_server(timeout_sec=10.0)
        assert client.available
        started, (ok, text) = wait_result(client)
        server.destroy()
    assert started and len(calls) == 1
    assert ok is succeed
    assert ("status 4" in text) if succeed else ("status 6" in text)  # SUCCEEDED / ABORTED


def test_without_server_or_without_franka_msgs_recovery_says_why():
    with RosClient("recovery_test2") as ros:
        client = ErrorRecoveryClient(ros.node, action_name="nobody/error_recovery", action_type=RunEvaluation)
        started, (ok, text) = wait_result(client)
        assert not started and not ok and "`nobody/error_recovery` is not available" in text
        try:
            import franka_msgs  # noqa: F401
        except ImportError:
            bare = ErrorRecoveryClient(ros.node)
            started, (ok, text) = wait_result(bare)
            assert not bare.available and not ok and "franka_msgs is not installed" in text
            monitor = RobotModeMonitor(ros.node)
            assert not monitor.available and monitor.mode is None
