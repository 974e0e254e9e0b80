"""ROS helpers the policy node uses on the real robot: robot mode and error recovery.

`RobotModeMonitor` subscribes to franka_robot_state_broadcaster's FrankaRobotState and keeps the
newest `robot_mode`; `ErrorRecoveryClient` calls franka_hardware's ``error_recovery`` action.
Both work without franka_msgs (sim, tests): they report themselves unavailable and the start-up
check skips the robot mode. The message/action types are injectable so the calls can be tested
over DDS with a stand-in type.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from action_msgs.msg import GoalStatus
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data

ROBOT_STATE_TOPIC = "franka_robot_state_broadcaster/robot_state"
# franka_hardware's ActionServer node is named "action_server" and offers "~/error_recovery".
ERROR_RECOVERY_ACTION = "action_server/error_recovery"


def _franka_type(module: str, name: str) -> type | None:
    try:
        mod = __import__(f"franka_msgs.{module}", fromlist=[name])
        return getattr(mod, name)
    except (ImportError, AttributeError):
        return None


class RobotModeMonitor:
    """Newest robot_mode from FrankaRobotState; `mode` is None until one arrived or without franka_msgs."""

    def __init__(self, node: Node, topic: str = ROBOT_STATE_TOPIC, msg_type: type | None = None) -> None:
        self.msg_type = msg_type or _franka_type("msg", "FrankaRobotState")
        self.mode: int | None = None
        self.stamp_s: float | None = None
        self._node = node
        self.sub = None
        if self.msg_type is not None:
            # Best effort matches both the reliable and the best-effort publisher of the broadcaster.
            self.sub = node.create_subscription(self.msg_type, topic, self._on_state, qos_profile_sensor_data)

    @property
    def available(self) -> bool:
        return self.msg_type is not None

    def _on_state(self, msg: Any) -> None:
        self.mode = int(msg.robot_mode)
        self.stamp_s = self._node.get_clock().now().nanoseconds * 1e-9


class ErrorRecoveryClient:
    """Sends an (empty) ErrorRecovery goal; the result arrives through `done(success, message)`."""

    def __init__(self, node: Node, action_name: str = ERROR_RECOVERY_ACTION, action_type: type | None = None) -> None:
        from rclpy.action import ActionClient

        self.action_type = action_type or _franka_type("action", "ErrorRecovery")
        self.action_name = action_name
        self._client = ActionClient(node, self.action_type, action_name) if self.action_type else None
        self._busy = threading.Lock()

    @property
    def available(self) -> bool:
        return self._client is not None and self._client.server_is_ready()

    def recover(self, done: Callable[[bool, str], None]) -> bool:
        """Start one recovery; False (and `done` not called) when it cannot be started now."""
        if self._client is None:
            done(False, "franka_msgs is not installed: no error recovery action type")
            return False
        if not self._client.server_is_ready():
            done(False, f"error recovery action `{self.action_name}` is not available")
            return False
        if not self._busy.acquire(blocking=False):
            return False

        def finish(ok: bool, text: str) -> None:
            self._busy.release()
            done(ok, text)

        def on_result(future: Any) -> None:
            res = future.result()
            status = getattr(res, "status", None)
            finish(status == GoalStatus.STATUS_SUCCEEDED, f"error recovery finished with status {status}")

        def on_goal(future: Any) -> None:
            handle = future.result()
            if handle is None or not handle.accepted:
                finish(False, "error recovery goal refused")
                return
            handle.get_result_async().add_done_callback(on_result)

        self._client.send_goal_async(self.action_type.Goal()).add_done_callback(on_goal)
        return True
