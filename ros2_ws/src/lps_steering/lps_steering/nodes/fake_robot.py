"""Kinematic stand-in for a Franka arm + hand: test and demo infrastructure, no physics.

Speaks the interfaces of the real robot side: publishes ``joint_states`` (sensor_msgs/JointState,
``<robot>_joint1..7`` + ``<robot>_finger_joint1/2``) and, standing in for perception, a static
``object_pose`` (geometry_msgs/PoseStamped) and follows position targets received as
trajectory_msgs/JointTrajectory on ``command_topic`` and a gripper width on ``gripper_command``
(std_msgs/Float64). Each joint tracks its target with a first-order lag of time constant
``lag_s``, so a command is never reached instantly, as on a real joint trajectory controller.
Commands that are malformed (wrong names, non-finite values) are dropped with a warning: the
arm keeps its last target, which is what a controller does with a rejected goal.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory

# The Franka "ready" pose: far from joint limits, so every test starts from a safe state.
READY_POSE = (0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398)


def _desc(text: str, lo: float | None = None, hi: float | None = None, read_only: bool = True):
    d = ParameterDescriptor(description=text, read_only=read_only)
    if lo is not None:
        d.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
    return d


class FakeRobot(Node):
    """Publishes joint states of a first-order-lag arm that follows received position commands."""

    def __init__(self) -> None:
        super().__init__('fake_robot')
        robot = self.declare_parameter(
            'robot_type', 'fr3', _desc('fr3 or panda: prefix of the joint names')).value
        if robot not in ('fr3', 'panda'):
            raise ValueError(f"`robot_type` must be 'fr3' or 'panda', got {robot!r}")
        rate = self.declare_parameter(
            'publish_rate_hz', 100.0, _desc('joint state rate (Hz)', 1.0, 2000.0)).value
        self._lag_s = self.declare_parameter(
            'lag_s', 0.05, _desc('first-order lag time constant of every joint (s)', 1e-4, 10.0)).value
        initial = self.declare_parameter(
            'initial_positions', list(READY_POSE), _desc('arm joint positions at start (rad)')).value
        width = self.declare_parameter(
            'initial_gripper_width', 0.08, _desc('finger opening at start (m), sum of both fingers',
                                                 0.0, 0.08)).value
        command_topic = self.declare_parameter(
            'command_topic', 'fr3_arm_controller/joint_trajectory',
            _desc('JointTrajectory topic the arm follows')).value
        obj = self.declare_parameter(
            'object_position', [0.5, 0.0, 0.05],
            _desc('object position (x, y, z) published on object_pose with every joint state, '
                  'standing in for perception; [] publishes none')).value
        if len(obj) not in (0, 3):
            raise ValueError(f'`object_position` must be [] or 3 numbers (x, y, z), got {list(obj)}')
        if len(initial) != 7 or not all(math.isfinite(v) for v in initial):
            raise ValueError(f'`initial_positions` must be 7 finite values, got {list(initial)}')

        self._arm_names = [f'{robot}_joint{i}' for i in range(1, 8)]
        self._q = np.array(initial, dtype=np.float64)
        self._target = self._q.copy()
        self._dq = np.zeros(7)
        self._width = float(width)
        self._width_target = self._width
        self._dt = 1.0 / rate
        self.commands_received = 0

        self._msg = JointState()
        self._msg.name = self._arm_names + [f'{robot}_finger_joint1', f'{robot}_finger_joint2']
        self._pub = self.create_publisher(JointState, 'joint_states', 10)
        self.create_subscription(JointTrajectory, command_topic, self._on_trajectory, 10)
        self.create_subscription(Float64, 'gripper_command', self._on_gripper, 10)
        self._pose = None
        if len(obj) == 3:
            self._pose = PoseStamped()
            self._pose.header.frame_id = 'base'
            p = self._pose.pose.position
            p.x, p.y, p.z = (float(v) for v in obj)
            self._pose_pub = self.create_publisher(PoseStamped, 'object_pose', 10)
        self.create_timer(self._dt, self._tick)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not msg.points:
            self.get_logger().warning('JointTrajectory without points dropped')
            return
        try:
            index = [msg.joint_names.index(n) for n in self._arm_names]
        except ValueError:
            self.get_logger().warning(
                f'JointTrajectory dropped: joint_names must contain {self._arm_names}, '
                f'got {list(msg.joint_names)}')
            return
        positions = np.asarray(msg.points[-1].positions, dtype=np.float64)
        if positions.shape != (len(msg.joint_names),) or not np.all(np.isfinite(positions)):
            self.get_logger().warning(f'JointTrajectory dropped: bad positions {positions.tolist()}')
            return
        self._target = positions[index]
        self.commands_received += 1

    def _on_gripper(self, msg: Float64) -> None:
        if math.isfinite(msg.data):
            self._width_target = min(max(msg.data, 0.0), 0.08)

    def _tick(self) -> None:
        # Exact discretisation of x' = (target - x) / lag: stable for any dt/lag ratio.
        alpha = 1.0 - math.exp(-self._dt / self._lag_s)
        step = alpha * (self._target - self._q)
        self._dq = step / self._dt
        self._q = self._q + step
        self._width += alpha * (self._width_target - self._width)
        msg = self._msg
        msg.header.stamp = self.get_clock().now().to_msg()
        finger = self._width / 2.0
        msg.position = self._q.tolist() + [finger, finger]
        msg.velocity = self._dq.tolist() + [0.0, 0.0]
        msg.effort = []
        self._pub.publish(msg)
        if self._pose is not None:
            self._pose.header.stamp = msg.header.stamp
            self._pose_pub.publish(self._pose)


def main(args: list[str] | None = None) -> None:
    try:
        with rclpy.init(args=args):
            node = FakeRobot()
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == '__main__':
    main(sys.argv)
