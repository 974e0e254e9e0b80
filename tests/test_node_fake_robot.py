"""fake_robot over DDS: the arm stand-in publishes franka_ros2-style joint states and follows commands."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from ros_util import READY_POSE, Collector, NodeProcess, RosClient
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

pytestmark = pytest.mark.ros
ARM = [f'fr3_joint{i}' for i in range(1, 8)]


def _console_script(name: str) -> str:
    """The installed entry point, as a launch file would start it."""
    return shutil.which(name) or str(
        Path(os.environ['LPS_ROOT']) / 'ros2_ws/install/lps_steering/lib/lps_steering' / name)


def test_fake_robot_follows_commands_with_lag(tmp_path: Path) -> None:
    with RosClient('fake_robot_test') as client:
        states = Collector(client.node, JointState, 'joint_states')
        poses = Collector(client.node, PoseStamped, 'object_pose')
        pub = client.node.create_publisher(JointTrajectory, 'fr3_arm_controller/joint_trajectory', 10)
        with NodeProcess('', tmp_path / 'fake_robot.log', {'lag_s': 0.05, 'publish_rate_hz': 200.0},
                         executable=_console_script('fake_robot')) as proc:
            first = states.wait_count(5, 20.0)[-1]
            assert list(first.name) == ARM + ['fr3_finger_joint1', 'fr3_finger_joint2']
            np.testing.assert_allclose(first.position[:7], READY_POSE, atol=1e-9)
            assert poses.wait_count(1, 2.0)[-1].pose.position.x == pytest.approx(0.5)

            target = np.array(READY_POSE) + 0.2
            # Names in another order, as a controller may send them: the robot maps by name.
            order = list(reversed(range(7)))
            cmd = JointTrajectory(joint_names=[ARM[i] for i in order],
                                  points=[JointTrajectoryPoint(positions=target[order].tolist())])
            pub.publish(cmd)
            n = len(states.snapshot())
            early = states.wait_count(n + 2, 2.0)[-1]
            err_early = np.abs(np.array(early.position[:7]) - target).max()
            assert 0.0 < err_early < 0.2 + 1e-9  # moving towards the target, not there at once
            states.wait_for(lambda m: np.abs(np.array(m[-1].position[:7]) - target).max() < 1e-3, 3.0,
                            'convergence to the commanded target')

            # Non-finite or misnamed commands are dropped: the arm stays at its target.
            pub.publish(JointTrajectory(joint_names=ARM, points=[JointTrajectoryPoint(
                positions=[math.nan] * 7)]))
            pub.publish(JointTrajectory(joint_names=[f'panda_joint{i}' for i in range(1, 8)],
                                        points=[JointTrajectoryPoint(positions=[0.0] * 7)]))
            n = len(states.snapshot())
            later = states.wait_count(n + 40, 3.0)[-1]
            np.testing.assert_allclose(later.position[:7], target, atol=1e-3)
            assert 'dropped' in proc.log()
