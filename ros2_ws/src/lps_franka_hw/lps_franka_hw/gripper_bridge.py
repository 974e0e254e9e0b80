"""``gripper_bridge``: the policy's ``gripper_command`` width stream -> franka_gripper actions.

Subscribes ``gripper_command`` (std_msgs/Float64, m). Sends ``<gripper_ns>/grasp``
(franka_msgs/action/Grasp) to close and ``<gripper_ns>/move`` (franka_msgs/action/Move) to
open, as decided by `lps_franka_hw.gripper_logic.GripperStateMachine` (hysteresis, one goal per
direction, preemption on a change of direction only). franka_msgs is part of franka_ros2 and not
on PyPI: without it the node stops at start with a message saying what to install.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from std_msgs.msg import Float64

from .gripper_logic import GripperConfig, GripperGoal, GripperStateMachine


class MissingDependency(RuntimeError):
    """A package only the real robot's ROS installation has."""


def import_franka_gripper_actions() -> tuple[type, type]:
    """(Grasp, Move) from franka_msgs, or MissingDependency naming what to install."""
    try:
        from franka_msgs.action import Grasp, Move
    except ImportError as exc:
        raise MissingDependency(
            "gripper_bridge needs the ROS package `franka_msgs` (franka_msgs.action.Grasp/Move), which "
            f"is not importable ({exc}). Install franka_ros2 for your ROS distribution (Humble: "
            "`apt install ros-humble-franka-msgs`; Jazzy: build franka_ros2's jazzy branch in a "
            "workspace) and source its setup.bash before starting this node. Without a real gripper, "
            "leave the bridge out: the sim bridge takes `gripper_command` directly.") from exc
    return Grasp, Move


PARAMETERS: dict[str, tuple[Any, str]] = {
    "gripper_command_topic": ("gripper_command", "std_msgs/Float64 width input (m)"),
    "gripper_namespace": ("franka_gripper", "namespace of franka_gripper_node's actions"),
    "close_below_m": (GripperConfig.close_below_m, "close (grasp) below this commanded width"),
    "open_above_m": (GripperConfig.open_above_m, "open (move) above this commanded width"),
    "open_width_m": (GripperConfig.open_width_m, "width the move goal opens to"),
    "move_speed_mps": (GripperConfig.move_speed_mps, "move goal speed"),
    "grasp_width_m": (GripperConfig.grasp_width_m, "grasp goal width"),
    "grasp_epsilon_inner_m": (GripperConfig.grasp_epsilon_inner_m, "grasp epsilon inner"),
    "grasp_epsilon_outer_m": (GripperConfig.grasp_epsilon_outer_m, "grasp epsilon outer"),
    "grasp_speed_mps": (GripperConfig.grasp_speed_mps, "grasp goal speed"),
    "grasp_force_n": (GripperConfig.grasp_force_n, "grasp force"),
    "min_switch_interval_s": (GripperConfig.min_switch_interval_s,
                              "least time between opposite goals"),
}


class GripperBridge(Node):
    def __init__(self, grasp_type: type, move_type: type, **kwargs: Any) -> None:
        super().__init__("gripper_bridge", **kwargs)
        from rclpy.action import ActionClient

        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text, read_only=True))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        cfg = GripperConfig(**{k: float(v) for k, v in p.items()
                               if k in GripperConfig.__dataclass_fields__})
        self.sm = GripperStateMachine(cfg)
        self._grasp_type, self._move_type = grasp_type, move_type
        ns = p["gripper_namespace"].rstrip("/")
        self._action_names = {"grasp": f"{ns}/grasp", "move": f"{ns}/move"}
        # Not `_clients`: rclpy.Node keeps its service clients under that name.
        self._action_clients = {"grasp": ActionClient(self, grasp_type, self._action_names["grasp"]),
                         "move": ActionClient(self, move_type, self._action_names["move"])}
        self._running_handle = None
        self._goal_seq = 0
        self.create_subscription(Float64, p["gripper_command_topic"], self._on_command, 10)
        self.create_timer(0.05, lambda: self._send(self.sm.tick(time.monotonic())))
        self._last_log = 0.0
        self.get_logger().info(f"gripper bridge: {p['gripper_command_topic']} -> {ns}/grasp, {ns}/move "
                               f"(close < {cfg.close_below_m} m, open > {cfg.open_above_m} m)")

    def _on_command(self, msg: Float64) -> None:
        goal = self.sm.command(msg.data, time.monotonic())
        if goal is None and self.sm.last_reason and time.monotonic() - self._last_log > 1.0:
            self._last_log = time.monotonic()
            self.get_logger().warn(self.sm.last_reason)
        self._send(goal)

    def _send(self, goal: GripperGoal | None) -> None:
        if goal is None:
            return
        client = self._action_clients[goal.action]
        if not client.server_is_ready():
            self.get_logger().error(f"franka_gripper action `{self._action_names[goal.action]}` is not available: "
                                    f"{goal.action} not sent")
            self.sm.goal_finished(False, time.monotonic())
            return
        if goal.preempt and self._running_handle is not None:
            self._running_handle.cancel_goal_async()
        if goal.action == "move":
            request = self._move_type.Goal(width=goal.width, speed=goal.speed)
        else:
            request = self._grasp_type.Goal(width=goal.width, speed=goal.speed, force=goal.force)
            request.epsilon.inner, request.epsilon.outer = goal.epsilon_inner, goal.epsilon_outer
        self._goal_seq += 1
        seq = self._goal_seq
        self.get_logger().info(f"gripper {goal.action}: width {goal.width:.4f} m")
        future = client.send_goal_async(request)
        future.add_done_callback(lambda f: self._on_accepted(f, seq))

    def _on_accepted(self, future: Any, seq: int) -> None:
        handle = future.result()
        if seq != self._goal_seq:
            return  # superseded by a newer goal
        if handle is None or not handle.accepted:
            self.get_logger().error("franka_gripper refused the goal")
            self._send(self.sm.goal_finished(False, time.monotonic()))
            return
        self._running_handle = handle
        handle.get_result_async().add_done_callback(lambda f: self._on_result(f, seq))

    def _on_result(self, future: Any, seq: int) -> None:
        if seq != self._goal_seq:
            return
        self._running_handle = None
        result = future.result().result
        if not result.success:
            self.get_logger().warn(f"gripper goal failed: {result.error}")
        self._send(self.sm.goal_finished(result.success, time.monotonic()))


def main(args: list[str] | None = None) -> int:
    try:
        grasp, move = import_franka_gripper_actions()
    except MissingDependency as exc:
        print(f"gripper_bridge: {exc}", file=sys.stderr)
        return 2
    rclpy.init(args=args)
    node = GripperBridge(grasp, move)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
