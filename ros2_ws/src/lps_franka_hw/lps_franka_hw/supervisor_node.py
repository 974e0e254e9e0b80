"""``franka_supervisor``: robot readiness for the policy node, and operator-triggered error recovery.

Subscribes franka_robot_state_broadcaster's ``robot_state`` (franka_msgs/FrankaRobotState) and
publishes ``robot_readiness`` (lps_msgs/RobotReadiness: ready iff the newest state is fresh and
its mode is IDLE or MOVE, `lps_franka_hw.robot_mode.judge`) on every change and at
``readiness_rate_hz``. The policy node takes it through its ``readiness_topic`` parameter, so it
never needs franka_msgs itself.

Rate: the broadcaster publishes the full state once per controller update, reliable. At the
controller manager's 1 kHz that is a thousand ~2 kB messages a second into Python; the controller
configuration (``config/fr3_controllers.yaml``) lowers the broadcaster's own ``update_rate``
instead, and this node subscribes best effort with depth 1, so a slow callback drops stale states
rather than queueing them (bench/bench_robot_state_rate.py measures both rates).

With ``use_fake_hardware`` franka_bringup starts no robot-state broadcaster: there is no robot
mode to judge, and the readiness says so (ready, robot_mode -1) once, at start, in the log.

``~/recover`` (std_srvs/Trigger) sends franka_hardware's ``action_server/error_recovery`` goal
(franka_msgs/action/ErrorRecovery) and answers with its outcome. It refuses while the policy
node's ``~/status`` says ``active``: recovery re-enables motion, and nothing may be streaming
commands into it. franka_msgs is part of franka_ros2 and not on PyPI: without it the node stops at
start with a message saying what to install.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import rclpy
from action_msgs.msg import GoalStatus
from lps_msgs.msg import RobotReadiness, SteeringStatus
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger

from .robot_mode import NO_MODE, Readiness, judge, mode_name


class MissingDependency(RuntimeError):
    """A package only the real robot's ROS installation has."""


def import_franka_types() -> tuple[type, type]:
    """(FrankaRobotState, ErrorRecovery) from franka_msgs, or MissingDependency naming what to install."""
    try:
        from franka_msgs.action import ErrorRecovery
        from franka_msgs.msg import FrankaRobotState
    except ImportError as exc:
        raise MissingDependency(
            "franka_supervisor needs the ROS package `franka_msgs` (FrankaRobotState, ErrorRecovery), "
            f"which is not importable ({exc}). It comes with franka_ros2 (docs/runbook.md: supported "
            "releases); source its install space before starting this node.") from exc
    return FrankaRobotState, ErrorRecovery


PARAMETERS: dict[str, tuple[Any, str]] = {
    "robot_state_topic": ("franka_robot_state_broadcaster/robot_state",
                          "franka_msgs/FrankaRobotState input"),
    "readiness_topic": ("robot_readiness", "lps_msgs/RobotReadiness output"),
    "readiness_rate_hz": (50.0, "readiness is published at this rate and on every change"),
    "max_state_age_ms": (300.0, "a robot state older than this makes the robot not ready"),
    "use_fake_hardware": (False, "franka_bringup's use_fake_hardware: no robot state exists, "
                                 "readiness is always true with robot_mode -1"),
    "policy_node": ("policy_node", "the policy node whose ~/status gates ~/recover (relative names "
                                   "resolve in this node's namespace)"),
    "status_timeout_s": (3.0, "a policy status older than this counts as no policy node running"),
    "error_recovery_action": ("action_server/error_recovery",
                              "franka_hardware's franka_msgs/action/ErrorRecovery server"),
    "recovery_timeout_s": (15.0, "longest wait for the error recovery result"),
}


class FrankaSupervisor(Node):
    def __init__(self, state_type: type, recovery_type: type, **kwargs: Any) -> None:
        super().__init__("franka_supervisor", **kwargs)
        from rclpy.action import ActionClient

        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text, read_only=True))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._max_age_s = float(p["max_state_age_ms"]) / 1e3
        self._fake = bool(p["use_fake_hardware"])
        self._status_timeout_s = float(p["status_timeout_s"])
        self._recovery_timeout_s = float(p["recovery_timeout_s"])
        self._recovery_type = recovery_type
        self._action_name = p["error_recovery_action"]
        self._lock = threading.Lock()
        self._mode: int | None = None
        self._state_time: float | None = None
        self._states = 0
        self._policy_state: str | None = None
        self._policy_time = 0.0
        self._last: Readiness | None = None

        # Latched (transient local, depth 1): a policy node that starts later gets the current
        # readiness at once; volatile and transient-local subscribers both match it.
        self._pub = self.create_publisher(RobotReadiness, p["readiness_topic"], QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        # Best effort, depth 1: matches the broadcaster's reliable publisher, and a late callback
        # finds only the newest state instead of a backlog.
        self.create_subscription(state_type, p["robot_state_topic"], self._on_state,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        policy = p["policy_node"].rstrip("/")
        self.create_subscription(SteeringStatus, f"{policy}/status", self._on_status, 10)
        # The action client lives on a node of its own with its own executor thread: ~/recover
        # waits for the result inside this node's executor, which must not be the one that has
        # to deliver it. Global arguments (the launch's node-name remap) are not applied to it.
        self._client_node = Node(f"{self.get_name()}_recovery", namespace=self.get_namespace(),
                                 context=self.context, use_global_arguments=False)
        self._recovery = ActionClient(self._client_node, recovery_type, self._action_name)
        self._client_executor = SingleThreadedExecutor(context=self.context)
        self._client_executor.add_node(self._client_node)
        self._client_stop = threading.Event()
        self._client_thread = threading.Thread(target=self._spin_client, daemon=True)
        self._client_thread.start()
        self.create_service(Trigger, "~/recover", self._on_recover)
        self.create_timer(1.0 / float(p["readiness_rate_hz"]), self._publish)
        if self._fake:
            self.get_logger().warn("use_fake_hardware: franka publishes no robot state; readiness is "
                                   "always true (robot_mode -1)")
        self.get_logger().info(f"robot state {p['robot_state_topic']} -> readiness {p['readiness_topic']}, "
                               f"~/recover -> {self._action_name} (refused while {policy} is active)")

    def _spin_client(self) -> None:
        try:
            while not self._client_stop.is_set():
                self._client_executor.spin_once(timeout_sec=0.1)
        except (ExternalShutdownException, rclpy.executors.ShutdownException):
            pass

    # --------------------------------------------------------------------- readiness
    def _on_state(self, msg: Any) -> None:
        mode = int(msg.robot_mode)
        with self._lock:
            changed = mode != self._mode
            self._mode, self._state_time = mode, time.monotonic()
            self._states += 1
        if changed:
            self._publish()

    @property
    def states_received(self) -> int:
        return self._states

    def readiness(self) -> Readiness:
        if self._fake:
            return Readiness(True, "", NO_MODE)
        with self._lock:
            mode, stamp = self._mode, self._state_time
        return judge(mode, None if stamp is None else time.monotonic() - stamp, self._max_age_s)

    def _publish(self) -> None:
        r = self.readiness()
        if r != self._last:
            log = self.get_logger().info if r.ready else self.get_logger().warn
            log(f"robot {'ready' if r.ready else 'NOT ready'}"
                + (f" (mode {mode_name(r.robot_mode)})" if r.robot_mode != NO_MODE else "")
                + (f": {r.reason}" if r.reason else ""))
            self._last = r
        msg = RobotReadiness(ready=r.ready, reason=r.reason, robot_mode=r.robot_mode)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub.publish(msg)

    # --------------------------------------------------------------------- recovery
    def _on_status(self, msg: SteeringStatus) -> None:
        self._policy_state, self._policy_time = msg.lifecycle_state, time.monotonic()

    def _on_recover(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        res.success, res.message = self.recover()
        (self.get_logger().info if res.success else self.get_logger().warn)(f"~/recover: {res.message}")
        return res

    def recover(self) -> tuple[bool, str]:
        """Runs in this node's executor and blocks it until the result (readiness pauses too):
        recovery is refused while the policy node is active, so nothing is waiting for it."""
        if (self._policy_state == "active"
                and time.monotonic() - self._policy_time < self._status_timeout_s):
            return False, ("refused: the policy node is active; deactivate it first "
                           "(lifecycle transition deactivate), then call ~/recover again")
        if not self._recovery.server_is_ready():
            return False, f"error recovery action `{self._action_name}` is not available"
        handle = self._wait(self._recovery.send_goal_async(self._recovery_type.Goal()))
        if handle is None:
            return False, "error recovery goal was not answered"
        if not handle.accepted:
            return False, "error recovery goal refused"
        result = self._wait(handle.get_result_async())
        if result is None:
            return False, f"error recovery did not finish within {self._recovery_timeout_s} s"
        self._state_time = None  # judge the robot from states that arrive after the recovery
        if result.status == GoalStatus.STATUS_SUCCEEDED:
            return True, "error recovery succeeded"
        return False, f"error recovery failed (goal status {result.status}); see franka_hardware's log"

    def _wait(self, future: Any) -> Any:
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        return future.result() if done.wait(self._recovery_timeout_s) else None

    def destroy_node(self) -> None:
        # Stopped and joined before anything it waits on is destroyed.
        self._client_stop.set()
        self._client_thread.join(2.0)
        if self._client_thread.is_alive():
            # Destroying a node an executor still waits on can block for good; the process is
            # ending, and the daemon thread goes with it.
            self.get_logger().warn("recovery client thread still busy at shutdown: left to the exit")
        else:
            self._client_executor.shutdown(timeout_sec=1.0)
            self._client_node.destroy_node()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    try:
        state_type, recovery_type = import_franka_types()
    except MissingDependency as exc:
        print(f"franka_supervisor: {exc}", file=sys.stderr)
        return 2
    # Our own SIGINT/SIGTERM handling: a KeyboardInterrupt raised inside rclpy's C++ calls
    # surfaces as an unrelated RuntimeError and a non-zero exit.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = FrankaSupervisor(state_type, recovery_type)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        node.get_logger().info(f"stopping: {node.states_received} robot states received")
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
