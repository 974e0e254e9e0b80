"""fake_robot over DDS: the arm stand-in publishes franka_ros2-style joint states and follows commands."""

from __future__ import annotations

import math
import os
import shutil
import time
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


def test_fake_robot_injects_faults_on_request(tmp_path: Path) -> None:
    from std_srvs.srv import Trigger

    with RosClient('fake_robot_fault_test') as client:
        states = Collector(client.node, JointState, 'joint_states', 1000)
        targets = Collector(client.node, PoseStamped, 'target_pose')
        pub = client.node.create_publisher(JointTrajectory, 'fr3_arm_controller/joint_trajectory', 10)
        with NodeProcess('', tmp_path / 'fake_robot.log', {'lag_s': 0.02},
                         executable=_console_script('fake_robot')):
            states.wait_count(5, 20.0)
            assert targets.wait_count(1, 2.0)[-1].pose.position.y == pytest.approx(0.2)

            def faulty(**values) -> JointState:
                results = client.set_parameters('fake_robot', values)
                assert all(r.successful for r in results), [r.reason for r in results]
                n = len(states.snapshot())
                return states.wait_count(n + 3, 2.0)[-1]

            msg = faulty(fault_joint=2, fault='nan')
            assert math.isnan(msg.position[1]) and math.isfinite(msg.position[0])
            msg = faulty(fault_joint=4, fault='missing_joint')
            assert 'fr3_joint4' not in msg.name and len(msg.name) == len(msg.position) == 8
            msg = faulty(fault='empty_positions')
            assert len(msg.name) == 9 and list(msg.position) == []
            msg = faulty(fault='foreign_names')
            assert all(n.startswith('panda_') for n in msg.name)
            msg = faulty(fault_joint=1, fault_value=0.5, fault='offset')
            assert msg.position[0] == pytest.approx(READY_POSE[0] + 0.5)
            msg = faulty(fault_value=5.0, fault='future_stamp')
            ahead = (msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
                     - client.node.get_clock().now().nanoseconds * 1e-9)
            assert 4.5 < ahead < 5.5
            assert client.set_parameters('fake_robot', {'fault': 'silence'})[0].successful
            time.sleep(0.05)
            n = len(states.snapshot())
            time.sleep(0.3)
            assert len(states.snapshot()) <= n + 1  # at most one in flight
            # A teleport moves the arm itself, once; the truth is published again afterwards.
            msg = faulty(fault_joint=3, fault_value=0.3, fault='teleport')
            assert msg.position[2] == pytest.approx(READY_POSE[2] + 0.3)
            # A stuck joint ignores commands; the others follow.
            msg = faulty(fault_joint=1, fault='stuck')
            target = np.array(msg.position[:7]) + 0.1
            pub.publish(JointTrajectory(joint_names=ARM, points=[JointTrajectoryPoint(positions=target.tolist())]))
            time.sleep(0.5)
            last = np.array(states.snapshot()[-1].position[:7])
            assert last[0] == pytest.approx(msg.position[0]) and last[1] == pytest.approx(target[1], abs=1e-3)

            [res] = client.set_parameters('fake_robot', {'fault': 'bogus'})
            assert not res.successful and 'fault' in res.reason
            assert client.call(Trigger, 'fake_robot/reset', Trigger.Request()).success
            n = len(states.snapshot())
            msg = states.wait_count(n + 3, 2.0)[-1]
            np.testing.assert_allclose(msg.position[:7], READY_POSE, atol=1e-9)
            assert list(msg.name) == ARM + ['fr3_finger_joint1', 'fr3_finger_joint2']
