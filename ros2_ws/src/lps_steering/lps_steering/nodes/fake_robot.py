"""Kinematic stand-in for a Franka arm + hand: test and demo infrastructure, no physics.

Speaks the interfaces of the real robot side: publishes ``joint_states`` (sensor_msgs/JointState,
``<robot>_joint1..7`` + ``<robot>_finger_joint1/2``) and, standing in for perception, a static
``object_pose`` (geometry_msgs/PoseStamped) and follows position targets received as
trajectory_msgs/JointTrajectory on ``command_topic`` and a gripper width on ``gripper_command``
(std_msgs/Float64). Each joint tracks its target with a first-order lag of time constant
``lag_s``, so a command is never reached instantly, as on a real joint trajectory controller.
Commands that are malformed (wrong names, non-finite values) are dropped with a warning: the
arm keeps its last target, which is what a controller does with a rejected goal.

Faults, for the fault suite (``tests/fault_suite.py``): the live parameter ``fault`` makes the
published joint states wrong in one way (see ``FAULTS``), with ``fault_joint`` (1-7) and
``fault_value`` as its argument; '' publishes the truth again. ``object_position`` and
``target_position`` can be changed live. ``~/reset`` (std_srvs/Trigger) puts the arm back at
``initial_positions`` at rest and clears the fault: a known state between two probes.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

# The Franka "ready" pose: far from joint limits, so every test starts from a safe state.
READY_POSE = (0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398)

# What `fault` does to every published joint state (j = fault_joint, v = fault_value); the arm
# itself keeps following commands unless the fault says otherwise.
FAULTS = {
    '': 'none: the measured state',
    'silence': 'publish no joint states (the arm still moves)',
    'empty_positions': 'all names, an empty position array',
    'short_positions': 'all 9 names, only the 7 arm positions',
    'missing_joint': 'joint j left out (name and position)',
    'foreign_names': "the other robot type's joint names (panda_* on fr3 and back)",
    'duplicate_names': 'joint j listed twice, the second copy at the measured value + v',
    'nan': 'joint j position NaN',
    'inf': 'joint j position +inf',
    'set_joint': 'joint j reported at v (rad) wherever it is',
    'offset': 'joint j reported at its measured value + v (rad)',
    'teleport': 'once: the arm itself jumps by v (rad) on joint j, then the fault clears',
    'stuck': 'joint j stops following commands (a blocked joint: tracking error)',
    'future_stamp': 'stamps v seconds ahead of the clock',
    'frozen_stamp': 'the stamp stays at its value when the fault began',
    'duplicate': 'every message published twice',
    'out_of_order': 'after every message, the previous one again (older stamp and position)',
    'pose_silence': 'joint states as measured, but no object_pose / target_pose (perception lost)',
}


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
        obj = self._declare_position('object_position', [0.5, 0.0, 0.05],
                                     'object position (x, y, z) published on object_pose with every joint '
                                     'state, standing in for perception')
        if len(initial) != 7 or not all(math.isfinite(v) for v in initial):
            raise ValueError(f'`initial_positions` must be 7 finite values, got {list(initial)}')

        self._fault = self.declare_parameter(
            'fault', '', _desc('injected joint-state fault, one of: ' + '; '.join(
                f"'{k}' {v}" for k, v in FAULTS.items()), read_only=False)).value
        self._fault_joint = self.declare_parameter(
            'fault_joint', 1, _desc('joint (1-7) the fault applies to', read_only=False)).value
        self._fault_value = self.declare_parameter(
            'fault_value', 0.0, _desc('argument of the fault (rad or s)', read_only=False)).value
        tgt = self._declare_position('target_position', [0.5, 0.2, 0.0],
                                     'target zone position (x, y, z) published on target_pose with every '
                                     'joint state')
        self._robot = robot
        self._initial = np.array(initial, dtype=np.float64)
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
        self._poses = {'object_pose': self._pose_msg(obj), 'target_pose': self._pose_msg(tgt)}
        self._pose_pubs = {topic: self.create_publisher(PoseStamped, topic, 10) for topic in self._poses}
        self._previous: JointState | None = None
        self._frozen = None
        self._last_tick: int | None = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.create_timer(self._dt, self._tick)

    def _declare_position(self, name: str, default: list[float], text: str) -> list[float]:
        value = self.declare_parameter(name, default, _desc(f'{text}; [] publishes none', read_only=False)).value
        if len(value) not in (0, 3):
            raise ValueError(f'`{name}` must be [] or 3 numbers (x, y, z), got {list(value)}')
        return value

    @staticmethod
    def _pose_msg(position) -> PoseStamped | None:
        if len(position) != 3:
            return None
        pose = PoseStamped()
        pose.header.frame_id = 'base'
        p = pose.pose.position
        p.x, p.y, p.z = (float(v) for v in position)
        return pose

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == 'fault' and p.value not in FAULTS:
                return SetParametersResult(successful=False, reason=(
                    f'`fault` must be one of {sorted(FAULTS)}, got {p.value!r}'))
            if p.name == 'fault_joint' and not 1 <= p.value <= 7:
                return SetParametersResult(successful=False, reason='`fault_joint` must be 1-7')
            if p.name in ('object_position', 'target_position') and len(p.value) not in (0, 3):
                return SetParametersResult(successful=False, reason=f'`{p.name}` must be [] or 3 numbers')
        # The fault last, so its joint and value set in the same call apply to it.
        for p in sorted(params, key=lambda p: p.name == 'fault'):
            if p.name == 'fault':
                self._fault = p.value
                self._frozen = None
                if p.value == 'teleport':
                    self._q[self._fault_joint - 1] += self._fault_value
                    self._target = self._q.copy()
                    self._fault = ''
            elif p.name == 'fault_joint':
                self._fault_joint = p.value
            elif p.name == 'fault_value':
                self._fault_value = p.value
            elif p.name == 'object_position':
                self._poses['object_pose'] = self._pose_msg(p.value)
            elif p.name == 'target_position':
                self._poses['target_pose'] = self._pose_msg(p.value)
        return SetParametersResult(successful=True)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._q = self._initial.copy()
        self._target = self._q.copy()
        self._dq[:] = 0.0
        self._fault, self._frozen, self._previous = '', None, None
        self._last_tick = None
        response.success, response.message = True, 'arm at its initial positions, no fault'
        return response

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
        # The arm moves on in time even when this process is starved and ticks late (a real arm
        # does not slow down with the machine): integrate over the time that really passed.
        now = self.get_clock().now().nanoseconds
        dt = self._dt if self._last_tick is None else min(max((now - self._last_tick) * 1e-9, 1e-4), 0.1)
        self._last_tick = now
        # Exact discretisation of x' = (target - x) / lag: stable for any dt/lag ratio.
        alpha = 1.0 - math.exp(-dt / self._lag_s)
        step = alpha * (self._target - self._q)
        if self._fault == 'stuck':
            step[self._fault_joint - 1] = 0.0
        self._dq = step / dt
        self._q = self._q + step
        self._width += alpha * (self._width_target - self._width)
        stamp = self.get_clock().now().to_msg()
        if self._fault == 'silence':
            return
        msg = self._state_msg(stamp)
        self._pub.publish(msg)
        if self._fault == 'duplicate':
            self._pub.publish(msg)
        elif self._fault == 'out_of_order' and self._previous is not None:
            self._pub.publish(self._previous)
        self._previous = msg
        for topic, pose in self._poses.items():
            if pose is not None and self._fault != 'pose_silence':
                pose.header.stamp = msg.header.stamp
                self._pose_pubs[topic].publish(pose)

    def _state_msg(self, stamp) -> JointState:
        """The joint state to publish now: the truth, or the truth with the injected fault."""
        fault, j, v = self._fault, self._fault_joint - 1, self._fault_value
        finger = self._width / 2.0
        names = list(self._msg.name)
        position = self._q.tolist() + [finger, finger]
        velocity = self._dq.tolist() + [0.0, 0.0]
        if fault == 'future_stamp':
            ns = stamp.sec * 1_000_000_000 + stamp.nanosec + int(v * 1e9)
            stamp.sec, stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
        elif fault == 'frozen_stamp':
            if self._frozen is None:
                self._frozen = stamp
            stamp = self._frozen
        elif fault == 'empty_positions':
            position = []
        elif fault == 'short_positions':
            position, velocity = position[:7], velocity[:7]
        elif fault == 'missing_joint':
            for seq in (names, position, velocity):
                del seq[j]
        elif fault == 'foreign_names':
            other = 'panda' if self._robot == 'fr3' else 'fr3'
            names = [n.replace(self._robot, other, 1) for n in names]
        elif fault == 'duplicate_names':
            names.append(names[j])
            position.append(position[j] + v)
            velocity.append(0.0)
        elif fault == 'nan':
            position[j] = math.nan
        elif fault == 'inf':
            position[j] = math.inf
        elif fault == 'set_joint':
            position[j] = v
        elif fault == 'offset':
            position[j] += v
        msg = JointState()
        msg.header.stamp = stamp
        msg.name, msg.position, msg.velocity = names, position, velocity
        return msg


def main(args: list[str] | None = None) -> None:
    try:
        with rclpy.init(args=args):
            node = FakeRobot()
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == '__main__':
    main(sys.argv)
