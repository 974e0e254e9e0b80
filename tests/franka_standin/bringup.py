"""Stand-in of what franka_bringup's franka.launch.py starts, for one franka_ros2 release.

    python tests/franka_standin/bringup.py --release v3.4.0 [name:=value ...]

Arguments are taken as `ros2 launch` takes them for an included file: the release's declared
arguments with their defaults, overlaid by the given ones; a given argument the release does not
declare is dropped (ros2 launch does it silently; this prints `ignored argument NAME`, so tests
can see what a real launch would have lost).

Started, under `namespace` (a node per real one, all in this process):
- controller_manager: reads `controllers_yaml` as the real one reads its parameter file, then
  "spawns" by name what the release's launch spawns (joint_state_broadcaster; on real hardware
  franka_robot_state_broadcaster). A controller the file does not declare fails as in
  controller_manager: "The 'type' param was not defined for '<name>'." then the spawner's
  "Failed loading controller <name>". Further controllers are loaded through its `spawn`
  parameter, which the stand-in spawner (tests/franka_standin/spawner.py) sets: the real
  controller_manager_msgs services do not exist without ros2_control.
- joint_state_publisher: `joint_states` (sensor_msgs/JointState, reliable) at `joint_state_rate`
  once joint_state_broadcaster is active, joint names `<robot_type>_joint1..7`.
- franka_robot_state_broadcaster: `~/robot_state` (franka_msgs/FrankaRobotState, reliable) at the
  broadcaster's `update_rate` (its own parameter, else the manager's), robot_mode IDLE, MOVE
  while a trajectory controller is active, or whatever a test forces through the `robot_mode`
  parameter of `fake_robot` (-1 = follow the arm).
- <arm>_arm_controller (joint_trajectory_controller/JointTrajectoryController, positions): on
  activation it holds the measured pose, or, with set_last_command_interface_value_as_state_on_activation
  (true unless the YAML says false), the position command interface's value, which franka's
  hardware starts at 0. It then follows `~/joint_trajectory`, interpolating linearly to each
  point at its time_from_start; the arm follows the reference exactly (position control).
- action_server: `~/error_recovery` (franka_msgs/action/ErrorRecovery) sets the mode back.
- franka_gripper (load_gripper): `~/move` and `~/grasp` (franka_msgs/action/Move, Grasp) set the
  finger width, which joint_states then carries as `<robot_type>_finger_joint1/2` (half each).

`--startup-delay S` waits S seconds before anything appears (franka's bring-up is slow).
SIGINT/SIGTERM stop it with exit code 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
import yaml
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from releases import RELEASES, Release  # noqa: E402

READY_POSE = (0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398)
IDLE, MOVE = 1, 2


def effective_arguments(release: Release, given: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(values the launch file would see, names it would drop)."""
    values = dict(release.arguments)
    dropped = []
    for k, v in given.items():
        if k in values:
            values[k] = v
        else:
            dropped.append(k)
    return values, dropped


def node_parameters(data: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    """Parameters a ROS parameter file gives node `name` in `namespace` (wildcards, nested form)."""
    fqn = f"/{namespace.strip('/')}/{name}" if namespace.strip("/") else f"/{name}"
    ns = fqn.rsplit("/", 1)[0] or "/"
    out: dict[str, Any] = {}
    for key, block in (data or {}).items():
        if not isinstance(block, dict):
            continue
        if key in (fqn, name, f"/**/{name}", f"**/{name}"):
            out.update(block.get("ros__parameters", {}))
        elif key in ("/**", "**", ns, ns.lstrip("/")) and name in block:
            out.update((block[name] or {}).get("ros__parameters", {}))
    return out


class Robot:
    """The arm: joint positions following the trajectory controller's reference."""

    def __init__(self, q0: tuple[float, ...]) -> None:
        self.lock = threading.Lock()
        self.q = list(q0)
        self.command_interface = [0.0] * 7  # franka_hardware's position command starts at 0
        self.segment: tuple[float, list[float], float, list[float]] | None = None  # t0, q0, t1, q1
        self.controller_active = False
        self.forced_mode = -1
        self.width = 0.08

    def step(self, now: float) -> None:
        with self.lock:
            if not self.controller_active or self.segment is None:
                return
            t0, a, t1, b = self.segment
            s = 1.0 if t1 <= t0 else min(1.0, max(0.0, (now - t0) / (t1 - t0)))
            self.q = [x + s * (y - x) for x, y in zip(a, b, strict=True)]
            self.command_interface = list(self.q)

    def mode(self) -> int:
        if self.forced_mode >= 0:
            return self.forced_mode
        return MOVE if self.controller_active else IDLE


class StandIn:
    def __init__(self, release: Release, args: dict[str, str]) -> None:
        self.release, self.args = release, args
        self.ns = args.get("namespace", "")
        self.robot_type = args.get("robot_type") or args.get("arm_id") or "fr3"
        self.joints = [f"{self.robot_type}_joint{i}" for i in range(1, 8)]
        path = args.get("controllers_yaml", "")
        if not path or path.startswith("$("):
            raise SystemExit(f"stand-in: controllers_yaml {path!r} is franka's own file, which this "
                             f"stand-in does not have")
        self.params_file = yaml.safe_load(Path(path).read_text())
        self.cm_params = node_parameters(self.params_file, self.ns, "controller_manager")
        self.update_rate = int(self.cm_params.get("update_rate", 100))
        self.robot = Robot(READY_POSE)
        self.loaded: dict[str, str] = {}
        self.nodes: list[Node] = []
        self._spawn_lock = threading.Lock()

        self.cm = self._node("controller_manager")
        self.cm.declare_parameter("spawn", "")
        self.cm.add_on_set_parameters_callback(self._on_spawn)
        self.fake = self._node("fake_robot")
        self.fake.declare_parameter("robot_mode", -1)
        self.fake.add_on_set_parameters_callback(self._on_fake_params)
        self.jsp = self._node("joint_state_publisher")
        self._js_pub = self.jsp.create_publisher(JointState, "joint_states", 10)
        self._js_timer = None
        self._rs_timer = None
        self.log = self.cm.get_logger()
        self.gripper = args.get("load_gripper", "false").lower() == "true"
        if self.gripper:
            self._start_gripper()

    def _node(self, name: str) -> Node:
        node = Node(name, namespace=self.ns or None)
        self.nodes.append(node)
        return node

    # ------------------------------------------------------------------ controller manager
    def _on_spawn(self, params: list[Any]) -> SetParametersResult:
        for p in params:
            if p.name == "spawn" and p.value:
                ok, reason = self.spawn(p.value)
                if not ok:
                    return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def spawn(self, name: str) -> tuple[bool, str]:
        """load + configure + activate, as controller_manager's spawner asks it."""
        with self._spawn_lock:
            if name in self.loaded:
                return True, "already loaded"
            ctype = (self.cm_params.get(name) or {}).get("type") if isinstance(
                self.cm_params.get(name), dict) else None
            if not ctype:
                self.log.error(f"The 'type' param was not defined for '{name}'.")
                return False, f"Failed loading controller {name}"
            self.log.info(f"Loading controller : '{name}' of type '{ctype}'")
            self.loaded[name] = ctype
            params = node_parameters(self.params_file, self.ns, name)
            if ctype == "joint_state_broadcaster/JointStateBroadcaster":
                rate = float(self.args.get("joint_state_rate", "30"))
                self._js_timer = self.jsp.create_timer(1.0 / rate, self._publish_joint_states)
            elif ctype == "franka_robot_state_broadcaster/FrankaRobotStateBroadcaster":
                self._start_robot_state(int(params.get("update_rate", self.update_rate)))
            elif ctype == "joint_trajectory_controller/JointTrajectoryController":
                self._start_jtc(name, params)
            self.log.info(f"Configured and activated {name}")
            return True, ""

    def spawn_franka_defaults(self) -> None:
        """What the release's franka.launch.py spawns by name; a failure is the spawner's exit 1."""
        names = ["joint_state_broadcaster"]
        if self.release.spawns_robot_state_broadcaster(self.args):
            names.append("franka_robot_state_broadcaster")
        for name in names:
            ok, reason = self.spawn(name)
            if not ok:
                self.log.fatal(reason)
                print(f"[spawner_{name}]: process has died [exit code 1]", flush=True)

    # ------------------------------------------------------------------ publishers
    def _publish_joint_states(self) -> None:
        msg = JointState()
        msg.header.stamp = self.jsp.get_clock().now().to_msg()
        fingers = [f"{self.robot_type}_finger_joint1", f"{self.robot_type}_finger_joint2"]
        msg.name = list(self.joints) + (fingers if self.gripper else [])
        self.robot.step(time.monotonic())
        with self.robot.lock:
            msg.position = list(self.robot.q) + ([self.robot.width / 2] * 2 if self.gripper else [])
        msg.velocity = [0.0] * len(msg.name)
        msg.effort = [0.0] * len(msg.name)
        self._js_pub.publish(msg)

    def _start_gripper(self) -> None:
        from franka_msgs.action import Grasp, Move
        from rclpy.action import ActionServer

        node = self._node("franka_gripper")

        def run(action: type) -> Any:
            def execute(goal: Any) -> Any:
                with self.robot.lock:
                    self.robot.width = min(0.08, max(0.0, float(goal.request.width)))
                goal.succeed()
                return action.Result(success=True)
            return execute

        self._gripper_servers = [ActionServer(node, Move, "~/move", run(Move)),
                                 ActionServer(node, Grasp, "~/grasp", run(Grasp))]

    def _start_robot_state(self, rate_hz: int) -> None:
        from franka_msgs.msg import FrankaRobotState

        node = self._node("franka_robot_state_broadcaster")
        pub = node.create_publisher(FrankaRobotState, "~/robot_state",
                                    QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        msg = FrankaRobotState()
        msg.measured_joint_state.name = list(self.joints)

        def tick() -> None:
            msg.header.stamp = node.get_clock().now().to_msg()
            self.robot.step(time.monotonic())
            with self.robot.lock:
                msg.measured_joint_state.position = list(self.robot.q)
            msg.robot_mode = self.robot.mode()
            pub.publish(msg)

        self._rs_timer = node.create_timer(1.0 / rate_hz, tick)
        self._register_recovery()

    def _register_recovery(self) -> None:
        from franka_msgs.action import ErrorRecovery
        from rclpy.action import ActionServer

        node = self._node("action_server")

        def execute(goal: Any) -> Any:
            self.robot.forced_mode = -1
            goal.succeed()
            return ErrorRecovery.Result()

        self._recovery_server = ActionServer(node, ErrorRecovery, "~/error_recovery", execute)

    def _on_fake_params(self, params: list[Any]) -> SetParametersResult:
        for p in params:
            if p.name == "robot_mode":
                self.robot.forced_mode = int(p.value)
        return SetParametersResult(successful=True)

    def _start_jtc(self, name: str, params: dict[str, Any]) -> None:
        node = self._node(name)
        joints = list(params.get("joints", []))
        if joints != self.joints:
            self.log.error(f"{name}: joints {joints} are not the arm's {self.joints}")
        last_command_as_state = bool(params.get("set_last_command_interface_value_as_state_on_activation", True))
        with self.robot.lock:
            hold = list(self.robot.command_interface if last_command_as_state else self.robot.q)
            now = time.monotonic()
            self.robot.segment = (now, list(self.robot.q), now + 0.5, hold)
            self.robot.controller_active = True

        def on_trajectory(msg: JointTrajectory) -> None:
            if list(msg.joint_names) != self.joints or not msg.points:
                node.get_logger().error("trajectory refused: joint names or points")
                return
            point = msg.points[-1]
            dt = point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
            now = time.monotonic()
            self.robot.step(now)
            with self.robot.lock:
                self.robot.segment = (now, list(self.robot.q), now + dt, list(point.positions))

        node.create_subscription(JointTrajectory, "~/joint_trajectory", on_trajectory, 10)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--release", choices=sorted(RELEASES), default="v3.4.0")
    cli.add_argument("--startup-delay", type=float, default=0.0)
    cli.add_argument("launch_args", nargs="*", metavar="name:=value")
    opts = cli.parse_args(argv)
    given = dict(a.split(":=", 1) for a in opts.launch_args)
    release = RELEASES[opts.release]
    args, dropped = effective_arguments(release, given)
    for name in dropped:
        print(f"[franka_bringup {release.tag}] ignored argument {name} (not declared)", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if stop.wait(opts.startup_delay):
        return 0
    rclpy.init(args=[sys.argv[0]], signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    standin = StandIn(release, args)
    executor = SingleThreadedExecutor()
    for node in standin.nodes:
        executor.add_node(node)

    def spin() -> None:
        while not stop.is_set():
            for node in standin.nodes:  # nodes made while spawning controllers
                if node not in executor.get_nodes():
                    executor.add_node(node)
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    # Spawned from here while the executor serves what is already up, as franka's spawners do.
    standin.spawn_franka_defaults()
    print(f"[franka_bringup {release.tag}] up: {', '.join(standin.loaded)}", flush=True)
    stop.wait()
    # Executor stopped before anything it serves is destroyed.
    spinner.join(5.0)
    executor.shutdown(timeout_sec=2.0)
    for node in standin.nodes:
        node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
