"""``sim_bridge``: one MuJoCo task behind franka_ros2's and realsense2_camera's ROS interfaces.

The policy node must not be able to tell this node from the real robot except through
``use_sim_time``: same relative topic names, message types and QoS (``docs/architecture.md``,
"ROS interfaces"). What it publishes:

| topic | type | QoS | when |
|---|---|---|---|
| ``joint_states`` | sensor_msgs/JointState | reliable, 10 | ``joint_state_rate_hz`` (lockstep: every period) |
| ``franka_robot_state_broadcaster/measured_joint_states`` | sensor_msgs/JointState | best effort, 10 | ``robot_state_rate_hz`` |
| ``franka_robot_state_broadcaster/current_pose`` | geometry_msgs/PoseStamped (TCP) | best effort, 10 | ``robot_state_rate_hz`` |
| ``object_pose``, ``target_pose`` | geometry_msgs/PoseStamped | reliable, 10 | with every joint state |
| ``object_pose_truth`` | geometry_msgs/PoseStamped | reliable, transient local, 10 | instead of ``object_pose`` with ``object_pose_from_camera`` |
| ``camera/camera/color/image_raw`` (rgb8) + ``.../color/camera_info`` | sensor_msgs | system default | ``camera_rate_hz`` if ``camera_enabled`` or ``object_pose_from_camera`` |
| ``camera/camera/aligned_depth_to_color/image_raw`` (16UC1 mm) + its camera_info | sensor_msgs | system default | same |
| ``task_status`` | lps_msgs/TaskStatus | reliable, 10 | every control period and on reset |
| ``/clock`` | rosgraph_msgs/Clock | reliable, 10 | every control period |
| ``diagnostics`` | diagnostic_msgs/DiagnosticArray | reliable, 10 | 1 Hz (wall): counters, real-time factor |

``object_pose`` / ``target_pose`` stand in for the perception front-end: the task's positions
(ground truth plus the profile's observation noise, none under ``nominal``), identity orientation.
The arm part of ``joint_states`` carries the profile's joint noise the same way.

Perception in the loop (``object_pose_from_camera``): the camera is on, ``object_pose`` is left to
the robot's own ``object_perception`` node (lps_franka_hw), and the truth goes out on
``object_pose_truth`` for the record instead. The profile's ``camera`` section acts on that path:
the camera's true pose moves while perception keeps its calibration (an extrinsic error), frames
are lost with ``frame_drop_prob`` and reach perception ``latency_s`` after their stamp. In lock-step
a period whose frame went out does not end before perception has reported that frame on
``perception_frames_topic`` (lps_msgs/PerceptionFrame), so the policy's observation of the period
holds the pose from it and results do not depend on machine load; after ``lockstep_timeout_s``
without the report the bridge goes on and counts a perception time-out. A report publisher not yet
discovered (a stack just started) is waited for as long, once per episode, and reports are read
latched, so one sent before the bridge matched still counts.

Commands, as the real robot takes them: trajectory_msgs/JointTrajectory on ``command_topic`` (the
last point is reached at ``time_from_start``, linear interpolation at the control rate; wrong joint
names or bad values are refused with a log line and the arm holds), std_msgs/Float64 on
``gripper_command`` (width in m; franka_gripper's actions need franka_msgs, which is served only
when importable). Service ``reset_episode`` (lps_msgs/srv/ResetEpisode).

Clocks (``clock_mode``): ``realtime`` paces physics by the wall clock (times ``real_time_factor``);
``lockstep`` publishes an observation, then waits for the next JointTrajectory and advances exactly
one control period per command, so results do not depend on machine load. After
``lockstep_timeout_s`` without one it advances anyway holding the trajectory in force and counts a
missed step; an episode's first period waits ``lockstep_start_timeout_s`` instead, as the policy
is activated only after the reset. A gripper command never advances the sim: it applies from the next period on, so one
sent after the trajectory of the same cycle may act one period late. In lockstep the episode's first
observation is the one ``reset_episode`` publishes (before it answers): reset once the policy is up.

Time: every stamp and ``/clock`` is simulated time, starting at 0 when the node starts and running on
across resets (``task_status.sim_time`` restarts at 0 each episode); with perception in the loop a
reset moves it on by ``RESET_GAP_S``. A zero trajectory stamp means
"start on receipt", as for a joint trajectory controller.

Threads: one physics thread owns the task (stepping, rendering, resets: MuJoCo's GL context stays in
one thread); the executor only validates commands and queues them. All maths is in
``lps_sim.ros_io`` and the task; this file converts and schedules.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from lps_msgs.msg import PerceptionFrame, TaskStatus
from lps_msgs.srv import ResetEpisode
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_system_default,
)
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory

from lps_sim import ros_io
from lps_sim import scene as sc
from lps_sim.randomization import available_profiles
from lps_sim.tasks import TASKS, FrankaTask, make_task

# franka_ros2: joint_states reliable depth 10; the robot state broadcaster's convenience topics are
# best effort since 2.4.0 (a default reliable subscriber receives nothing from them).
RELIABLE_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
BEST_EFFORT_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
LATCHED_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
CLOCK_MODES = ("realtime", "lockstep")
# With lockstep_timeout_s 0 (wait forever for commands and reports), how long a frame waits for an
# undiscovered perception node: one that never comes must not stop the sim before its first status.
DISCOVERY_WAIT_S = 5.0
OPTICAL_FRAME = "camera_color_optical_frame"  # realsense2_camera's, for colour and aligned depth
# With perception in the loop a reset takes this much sim time, so that every frame and pose of the
# previous episode is older than the new one's instead of sharing its stamp.
RESET_GAP_S = 1.0


def _desc(text: str, lo: float | None = None, hi: float | None = None, integer: bool = False) -> ParameterDescriptor:
    d = ParameterDescriptor(description=f"{text} (read at start)", read_only=True)
    if lo is not None and integer:
        d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    elif lo is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return d


# name -> (default, descriptor). Ranges are enforced by rclpy at declaration; the rest below.
PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = {
    "task": ("pick_place", _desc(f"task at start: {', '.join(sorted(TASKS))}")),
    "robot_type": ("fr3", _desc("'fr3' or 'panda': joint name prefix (<robot>_joint1..7)")),
    "profile": ("nominal", _desc("randomisation profile at start (lps_sim/profiles/*.yaml)")),
    "seed": (0, _desc("episode seed at start", 0, 2**32 - 1, integer=True)),
    "control_rate_hz": (100.0, _desc("control periods per simulated second; physics runs at 500 Hz "
                                     "(2 ms steps), so 500 / rate must be an integer", 1.0, 500.0)),
    "joint_state_rate_hz": (0.0, _desc("joint_states rate in simulated time, 0 = every control period "
                                       "(franka_ros2's default is 30); lockstep always publishes every "
                                       "period", 0.0, 500.0)),
    "robot_state_rate_hz": (0.0, _desc("rate of the franka_robot_state_broadcaster topics, 0 = every "
                                       "control period", 0.0, 500.0)),
    "clock_mode": ("realtime", _desc("'realtime': physics paced by the wall clock; 'lockstep': one "
                                     "control period per received JointTrajectory")),
    "real_time_factor": (1.0, _desc("realtime mode: simulated seconds per wall second asked for",
                                    0.01, 100.0)),
    "lockstep_timeout_s": (1.0, _desc("lockstep: wall seconds to wait for a command before advancing "
                                      "with the trajectory in force (a missed step); 0 = wait forever",
                                      0.0, 3600.0)),
    "lockstep_start_timeout_s": (30.0, _desc(
        "lockstep: the same for an episode's first command, which comes only once the policy is "
        "activated after the reset (seconds on a loaded machine); 0 = wait forever", 0.0, 3600.0)),
    "camera_enabled": (False, _desc("render and publish the RealSense D435 stand-in")),
    "camera_width": (640, _desc("image width (px)", 16, 1280, integer=True)),
    "camera_height": (480, _desc("image height (px)", 16, 960, integer=True)),
    "camera_rate_hz": (30.0, _desc("camera frames per simulated second", 0.1, 90.0)),
    "camera_vfov_deg": (ros_io.D435_COLOR_VFOV_DEG, _desc(
        "vertical field of view of the rendered camera (D435 colour: 69 x 42 deg, square pixels)",
        10.0, 120.0)),
    "camera_namespace": ("camera", _desc("realsense2_camera's camera_namespace")),
    "object_pose_from_camera": (False, _desc(
        "perception in the loop: camera on, no object_pose (object_perception publishes it), the truth "
        "on object_pose_truth; lock-step waits for each frame's perception report")),
    "perception_frames_topic": ("object_perception/frames", _desc(
        "lps_msgs/PerceptionFrame reports of object_perception (with object_pose_from_camera)")),
    "camera_name": ("camera", _desc("realsense2_camera's camera_name")),
    "joint_states_topic": ("joint_states", _desc("sensor_msgs/JointState output")),
    "command_topic": ("fr3_arm_controller/joint_trajectory", _desc("trajectory_msgs/JointTrajectory input")),
    "gripper_command_topic": ("gripper_command", _desc("std_msgs/Float64 gripper width input (m)")),
}


@dataclass
class _ResetRequest:
    task: str
    seed: int
    profile: str
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[bool, str, int, list[float]] = (False, "not handled", 0, [])


@dataclass
class _Counters:
    steps: int = 0  # control periods since start, all episodes
    commands: int = 0  # JointTrajectory messages accepted
    refused: int = 0  # JointTrajectory / gripper messages refused
    missed: int = 0  # lockstep periods advanced without a command
    frames: int = 0  # camera frames published
    frames_dropped: int = 0  # camera frames the profile lost before they were published
    perception_timeouts: int = 0  # lockstep frames whose perception report never came
    overruns: int = 0  # realtime periods that started late by more than a period


class SimBridge(Node):
    def __init__(self, node_name: str = "sim_bridge", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._check_parameters(p)
        self._p = p
        self._robot = p["robot_type"]
        self._lockstep = p["clock_mode"] == "lockstep"
        self._perception = bool(p["object_pose_from_camera"])
        self._camera_on = bool(p["camera_enabled"]) or self._perception
        self._period = 1.0 / p["control_rate_hz"]
        self._task_overrides = {"robot": self._robot, "control_period_s": self._period}

        # The first episode; a bad task or profile stops the node here with the task's own message.
        self._task = make_task(p["task"], **self._task_overrides)
        self._task_name = p["task"]
        self._apply_camera_fov(self._task)
        self._task.reset(seed=int(p["seed"]), profile=p["profile"])
        self._arm_names = tuple(self._task.ids.arm_joint_names)
        self._episode = _Episode(p["task"], p["profile"], int(p["seed"]), 0)
        # The servos' targets after reset, not the measured joints: the target must not jump.
        self._follower = ros_io.TrajectoryFollower(self._task.data.ctrl[self._task.ids.arm_actuators])
        self._gripper = sc.GRIPPER_MAX_WIDTH
        self._sim_time = 0.0  # /clock: monotonic over all episodes, unlike task.time
        self.counters = _Counters()

        # Shared between the executor (producers) and the physics thread (consumer).
        self._cv = threading.Condition()
        self._commands: deque[ros_io.TrajectoryCommand | ros_io.CommandError] = deque(maxlen=1000)
        self._reset_request: _ResetRequest | None = None
        self._stop = threading.Event()
        self._rtf = math.nan
        self._last_error_log = 0.0
        self._awaited: set[int] = set()  # stamps (ns) of delivered frames whose report is waited for
        self._reported: set[int] = set()  # of those, the ones perception has reported
        self._perception_absent = False  # no report publisher for a whole time-out: frames do not wait
        self._in_flight: deque[tuple[float, int, Any, Any]] = deque()  # (due, stamp ns, rgb, depth)
        self._frame_rng = np.random.default_rng([int(p["seed"]), 2])

        self._build_io()
        self._next_pub = {"joint": 0.0, "robot": 0.0, "camera": 0.0}
        self._thread = threading.Thread(target=self._run, name="physics", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"sim bridge: task={p['task']} robot={self._robot} profile={p['profile']} seed={p['seed']} "
            f"clock_mode={p['clock_mode']} control={p['control_rate_hz']:g} Hz "
            f"camera={'on' if self._camera_on else 'off'}"
            f"{' object_pose from the camera (perception in the loop)' if self._perception else ''}")

    # ============================================================== set-up
    @staticmethod
    def _check_parameters(p: dict[str, Any]) -> None:
        if p["robot_type"] not in sc.ROBOTS:
            raise ValueError(f"`robot_type` must be one of {sc.ROBOTS}, got {p['robot_type']!r}")
        if p["clock_mode"] not in CLOCK_MODES:
            raise ValueError(f"`clock_mode` must be one of {CLOCK_MODES}, got {p['clock_mode']!r}")
        if p["task"] not in TASKS:
            raise ValueError(f"`task` must be one of {sorted(TASKS)}, got {p['task']!r}")
        if p["profile"] not in available_profiles():
            raise ValueError(f"`profile` must be one of {available_profiles()}, got {p['profile']!r}")
        substeps = (1.0 / p["control_rate_hz"]) / sc.TIMESTEP
        if abs(substeps - round(substeps)) > 1e-6:
            raise ValueError(f"`control_rate_hz` must divide the 500 Hz physics rate into whole steps "
                             f"(e.g. 500, 250, 100, 50, 20), got {p['control_rate_hz']}")

    def _apply_camera_fov(self, task: FrankaTask) -> None:
        task.model.cam_fovy[task.ids.front_camera] = self._p["camera_vfov_deg"]

    def _build_io(self) -> None:
        p, robot = self._p, self._robot
        self._joint_pub = self.create_publisher(JointState, p["joint_states_topic"], RELIABLE_10)
        self._measured_pub = self.create_publisher(
            JointState, "franka_robot_state_broadcaster/measured_joint_states", BEST_EFFORT_10)
        self._tcp_pub = self.create_publisher(PoseStamped, "franka_robot_state_broadcaster/current_pose",
                                              BEST_EFFORT_10)
        # The truth is for the record: its last ten also reach a subscriber that matched late.
        self._object_pub = (self.create_publisher(PoseStamped, "object_pose_truth", LATCHED_10) if self._perception
                            else self.create_publisher(PoseStamped, "object_pose", RELIABLE_10))
        self._target_pub = self.create_publisher(PoseStamped, "target_pose", RELIABLE_10)
        self._status_pub = self.create_publisher(TaskStatus, "task_status", RELIABLE_10)
        self._clock_pub = self.create_publisher(Clock, "/clock", RELIABLE_10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", RELIABLE_10)

        self._joint_msg = JointState()
        self._base_frame = f"{robot}_link0"
        self._tcp_msg = PoseStamped()
        self._tcp_msg.header.frame_id = self._base_frame
        self._object_msg = PoseStamped()
        self._object_msg.header.frame_id = self._base_frame
        self._target_msg = PoseStamped()
        self._target_msg.header.frame_id = self._base_frame

        if self._camera_on:
            root = f"{p['camera_namespace']}/{p['camera_name']}"
            self._color_pub = self.create_publisher(Image, f"{root}/color/image_raw", qos_profile_system_default)
            self._color_info_pub = self.create_publisher(CameraInfo, f"{root}/color/camera_info",
                                                         qos_profile_system_default)
            self._depth_pub = self.create_publisher(Image, f"{root}/aligned_depth_to_color/image_raw",
                                                    qos_profile_system_default)
            self._depth_info_pub = self.create_publisher(
                CameraInfo, f"{root}/aligned_depth_to_color/camera_info", qos_profile_system_default)
            intr = ros_io.pinhole_intrinsics(p["camera_width"], p["camera_height"], p["camera_vfov_deg"])
            self._info_msg = ros_io.camera_info_msg(intr, OPTICAL_FRAME)
            self._color_msg, self._depth_msg = Image(), Image()
            self._color_msg.header.frame_id = self._depth_msg.header.frame_id = OPTICAL_FRAME

        # Gripper first: when both are waiting, the executor serves subscriptions in creation order,
        # and in lock-step the trajectory releases the step, so the gripper width sent with it
        # (the policy node publishes it just before) must already be in place.
        self.create_subscription(Float64, p["gripper_command_topic"], self._on_gripper, 10)
        self.create_subscription(JointTrajectory, p["command_topic"], self._on_trajectory, 10)
        self._reports_node: Node | None = None
        if self._perception and self._lockstep:
            # Perception's reports come on a node of their own, spun by a thread of their own: the
            # reset service waits in this node's executor while the physics thread waits for the
            # report of the reset's frame.
            self._reports_node = rclpy.create_node(f"{self.get_name()}_perception_reports",
                                                   namespace=self.get_namespace(), context=self.context)
            # Latched as object_perception offers them: a report sent before this reader matched
            # (a stack just started) still arrives.
            self._reports_node.create_subscription(PerceptionFrame, p["perception_frames_topic"],
                                                   self._on_perception_frame, LATCHED_10)
            self._reports_executor = SingleThreadedExecutor(context=self.context)
            self._reports_executor.add_node(self._reports_node)
            self._reports_thread = threading.Thread(target=self._spin_reports, name="perception-reports", daemon=True)
            self._reports_thread.start()
        self.create_service(ResetEpisode, "reset_episode", self._on_reset)
        self.create_timer(1.0, self._publish_diagnostics)
        self._serve_franka_gripper_actions()

    def _serve_franka_gripper_actions(self) -> None:
        """franka_gripper's move / grasp actions when franka_msgs exists (not on PyPI: real ROS only)."""
        try:
            from franka_msgs.action import Grasp, Move
            from rclpy.action import ActionServer
        except ImportError:
            self.get_logger().info(f"franka_msgs is not importable: gripper commands are taken on the "
                                   f"fallback topic `{self._p['gripper_command_topic']}` (std_msgs/Float64, m)")
            return

        # Untested here (franka_msgs cannot be installed on this machine): sets the width and answers
        # at once; a grasp's force and epsilon are not modelled.
        def execute(goal_handle: Any) -> Any:
            action = Move if isinstance(goal_handle.request, Move.Goal) else Grasp
            res = action.Result()
            try:
                self._set_gripper(goal_handle.request.width)
                goal_handle.succeed()
                res.success = True
            except ros_io.CommandError as exc:
                goal_handle.abort()
                res.success, res.error = False, str(exc)
            return res

        self._gripper_actions = [ActionServer(self, Move, "franka_gripper/move", execute),
                                 ActionServer(self, Grasp, "franka_gripper/grasp", execute)]

    # ============================================================== inputs (executor thread)
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            item: ros_io.TrajectoryCommand | ros_io.CommandError = ros_io.parse_trajectory(msg, self._arm_names)
        except ros_io.CommandError as exc:
            item = exc
            self.counters.refused += 1
            self._log_refusal(f"JointTrajectory refused, arm holds: {exc}")
        with self._cv:
            self._commands.append(item)
            self._cv.notify_all()

    def _spin_reports(self) -> None:
        while not self._stop.is_set():
            try:
                self._reports_executor.spin_once(timeout_sec=0.1)
            except (ExternalShutdownException, rclpy.executors.ShutdownException):
                return

    def _on_perception_frame(self, msg: PerceptionFrame) -> None:
        with self._cv:
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            # Only frames waited for: latched reports of another time line (a restarted bridge
            # beside a perception node that kept running) or late ones must not stand for a new frame.
            if stamp in self._awaited:
                self._reported.add(stamp)
            self._cv.notify_all()

    def _on_gripper(self, msg: Float64) -> None:
        try:
            self._set_gripper(msg.data)
        except ros_io.CommandError as exc:
            self.counters.refused += 1
            self._log_refusal(f"gripper command refused, width unchanged: {exc}")

    def _set_gripper(self, width: float) -> None:
        self._gripper = ros_io.check_gripper_width(width, sc.GRIPPER_MAX_WIDTH)

    def _log_refusal(self, text: str, warning: bool = False) -> None:
        # One line per second at most: a policy sending garbage at 100 Hz must not flood the log.
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:
            self._last_error_log = now
            (self.get_logger().warning if warning else self.get_logger().error)(text)

    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response) -> ResetEpisode.Response:
        req = _ResetRequest(request.task or self._task_name, int(request.seed), request.profile or "nominal")
        with self._cv:
            self._reset_request = req
            self._cv.notify_all()
        if not req.done.wait(60.0):
            req.result = (False, "reset timed out: the physics thread did not answer in 60 s", 0, [])
        response.success, response.message, response.episode_id, q = req.result
        response.joint_positions = q
        return response

    # ============================================================== physics thread
    def _run(self) -> None:
        try:
            self._publish_observation(first=True)
            if self._lockstep:
                self._run_lockstep()
            else:
                self._run_realtime()
        except Exception as exc:  # noqa: BLE001 - a dead physics thread must say why
            self.get_logger().fatal(f"physics thread stopped: {type(exc).__name__}: {exc}")
            raise
        finally:
            self._task.close()  # renderers hold a GL context current in this thread only

    def _measure_rtf(self, window: list[float]) -> None:
        """Simulated over wall seconds, over windows of about 2 s (window = [wall0, sim0])."""
        now = time.monotonic()
        if now - window[0] >= 2.0:
            self._rtf = (self._sim_time - window[1]) / (now - window[0])
            window[0], window[1] = now, self._sim_time

    def _run_lockstep(self) -> None:
        window = [time.monotonic(), self._sim_time]
        # A reset episode's first period waits for the policy's activation, which a loaded machine
        # may take seconds over: advancing it without the command would start the episode one
        # period late, depending on the load. The start-up's episode does not: its first
        # observation went out before a policy could subscribe, and only later periods reach it.
        starting = False
        while True:
            timeout = self._p["lockstep_start_timeout_s" if starting else "lockstep_timeout_s"] or None
            with self._cv:
                self._cv.wait_for(lambda: self._commands or self._reset_request or self._stop.is_set(),
                                  timeout)
                if self._stop.is_set():
                    return
                reset, self._reset_request = self._reset_request, None
                command = self._commands.popleft() if self._commands and reset is None else None
            if reset is not None:
                self._perception_absent = False  # a new episode gives perception its time-out again
                self._handle_reset(reset)
                starting = reset.result[0]  # a refused reset starts no episode
                continue
            starting = False
            if command is None:
                self.counters.missed += 1
                self._log_refusal(f"lockstep: no command for {timeout} s, advancing one period with the "
                                  f"trajectory in force ({self.counters.missed} missed)", warning=True)
            else:
                self._apply(command)
            self._step()
            self._publish_observation()
            self._measure_rtf(window)

    def _run_realtime(self) -> None:
        wall_period = self._period / self._p["real_time_factor"]
        window = [time.monotonic(), self._sim_time]
        deadline = window[0] + wall_period
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._reset_request or self._stop.is_set(),
                                  max(0.0, deadline - time.monotonic()))
                if self._stop.is_set():
                    return
                reset, self._reset_request = self._reset_request, None
                commands = list(self._commands)
                self._commands.clear()
            if reset is not None:
                self._handle_reset(reset)
                deadline = time.monotonic() + wall_period
                window[:] = [time.monotonic(), self._sim_time]
                continue
            for command in commands:  # in arrival order: the newest one is in force
                self._apply(command)
            self._step()
            self._publish_observation()
            deadline += wall_period
            now = time.monotonic()
            if now - deadline > wall_period:
                # Behind by more than a period: start again from now rather than burst to catch up.
                self.counters.overruns += 1
                deadline = now + wall_period
            self._measure_rtf(window)

    def _apply(self, command: ros_io.TrajectoryCommand | ros_io.CommandError) -> None:
        if isinstance(command, ros_io.CommandError):
            self._follower.hold(self._sim_time)
        else:
            self.counters.commands += 1
            self._follower.command(self._sim_time, command)

    def _step(self) -> None:
        t_end = self._sim_time + self._period
        q = self._follower.sample(t_end)
        try:
            result = self._task.step(q, self._gripper)
        except ValueError as exc:  # cannot happen with validated commands; hold if it does
            self._follower.hold(self._sim_time)
            self._log_refusal(f"task refused the command, arm holds: {exc}")
            result = None
        self._sim_time = self._episode.t0 + self._task.time
        self.counters.steps += 1
        ep = self._episode
        if result is not None and not ep.done:  # an ended episode's status stays as it ended
            ep.reward = result.reward
            if not ep.done and (result.terminated or result.truncated):
                ep.done = True
                ep.steps, ep.time = self._task.steps, self._task.time
                ep.success = result.success
                ep.termination = ("success" if result.success else "fault" if result.info.get("nan")
                                  else "failure" if result.info.get("out_of_bounds") else "timeout")
                self.get_logger().info(f"episode {ep.episode_id} done: {ep.termination} after "
                                       f"{self._task.steps} steps")
                if result.info.get("nan"):
                    self._follower.hold(self._sim_time)

    def _handle_reset(self, req: _ResetRequest) -> None:
        profiles = available_profiles()
        if req.task not in TASKS:
            req.result = (False, f"unknown task {req.task!r}; available tasks: {', '.join(sorted(TASKS))}",
                          self._episode.episode_id, [])
        elif req.profile not in profiles:
            req.result = (False, f"unknown profile {req.profile!r}; available profiles: {', '.join(profiles)}",
                          self._episode.episode_id, [])
        else:
            try:
                if req.task != self._task_name:
                    task = make_task(req.task, **self._task_overrides)
                    self._apply_camera_fov(task)
                    self._task.close()
                    self._task, self._task_name = task, req.task
                self._task.reset(seed=req.seed, profile=req.profile)
            except Exception as exc:  # noqa: BLE001 - report it to the caller, keep the node alive
                req.result = (False, f"reset failed: {type(exc).__name__}: {exc}", self._episode.episode_id, [])
            else:
                if self._perception:
                    self._sim_time += RESET_GAP_S
                self._episode = _Episode(req.task, req.profile, req.seed, self._episode.episode_id + 1,
                                         t0=self._sim_time)
                self._follower.reset(self._task.data.ctrl[self._task.ids.arm_actuators])
                self._gripper = float(self._task.data.ctrl[self._task.ids.gripper_actuator])
                with self._cv:
                    self._commands.clear()  # commands meant for the previous episode
                q = self._task.observation()["arm_joint_positions"]
                req.result = (True, f"episode {self._episode.episode_id}: {req.task} seed {req.seed} "
                              f"profile {req.profile}", self._episode.episode_id, [float(v) for v in q])
                self._next_pub = {"joint": self._sim_time, "robot": self._sim_time, "camera": self._sim_time}
                self._in_flight.clear()  # frames of the previous episode
                self._frame_rng = np.random.default_rng([req.seed, 2])
                # Publish before answering: a caller that activates a policy on the answer must find
                # the new episode's joint state there, not the previous episode's last one (both
                # carry the same sim-time stamp, so no age check can tell them apart).
                self._publish_observation(first=True)
                req.done.set()
                return
        self.get_logger().warning(f"reset_episode refused: {req.result[1]}")
        req.done.set()

    # ============================================================== outputs (physics thread)
    def _due(self, key: str, rate_hz: float, force: bool) -> bool:
        """Decimation in simulated time; rate 0 = every control period."""
        if rate_hz <= 0.0:
            return True
        if force or self._sim_time + 1e-9 >= self._next_pub[key]:
            # Advance from the schedule, not from now, so the mean rate stays exact.
            self._next_pub[key] = max(self._next_pub[key] + 1.0 / rate_hz, self._sim_time)
            return True
        return False

    def _publish_observation(self, first: bool = False) -> None:
        """Everything of one instant; joint_states last, as policies trigger on it."""
        p, task = self._p, self._task
        stamp = ros_io.time_msg(self._sim_time)
        # The clock first: a node on sim time (perception) then reads this instant when the frame comes.
        self._clock_pub.publish(Clock(clock=stamp))
        if self._camera_on:
            if self._due("camera", p["camera_rate_hz"], first):
                # The scene stood still while the episode was set up, as the camera kept streaming
                # it: the first frame is neither lost nor late.
                self._render_frame(first)
            self._deliver_frames()

        obs = task.observation()
        self._object_msg.header.stamp = self._target_msg.header.stamp = stamp
        self._object_pub.publish(ros_io.fill_pose(self._object_msg, obs["object_position"]))
        self._target_pub.publish(ros_io.fill_pose(self._target_msg, obs["target_position"]))

        names, pos, vel, eff = task.joint_state()
        pos[:7], vel[:7] = obs["arm_joint_positions"], obs["arm_joint_velocities"]
        js = self._joint_msg
        js.header.stamp = stamp
        js.name = list(names)
        js.position, js.velocity, js.effort = pos.tolist(), vel.tolist(), eff.tolist()

        if self._due("robot", p["robot_state_rate_hz"], first):
            quat = np.empty(4)
            mujoco.mju_mat2Quat(quat, task.data.site_xmat[task.ids.tcp_site])
            self._tcp_msg.header.stamp = stamp
            self._tcp_pub.publish(ros_io.fill_pose(self._tcp_msg, task.tcp_position(), quat))
            self._measured_pub.publish(js)

        self._status_pub.publish(self._status_msg(stamp))
        if self._lockstep or self._due("joint", p["joint_state_rate_hz"], first):
            self._joint_pub.publish(js)

    def _render_frame(self, first: bool = False) -> None:
        """Expose a frame now; it reaches the wire after the profile's latency, unless it is lost."""
        p, task = self._p, self._task
        gap = task.sampled.camera if task.sampled is not None and not first else None
        if gap is not None and gap.frame_drop_prob > 0 and self._frame_rng.random() < gap.frame_drop_prob:
            self.counters.frames_dropped += 1
            return
        h, w = p["camera_height"], p["camera_width"]
        rgb = task.render("front", height=h, width=w)
        depth = ros_io.depth_to_mm(task.render("front", height=h, width=w, depth=True))
        latency = task.sampled.camera_latency_s if gap is not None else 0.0
        stamp_ns = round(self._sim_time * 1e9)
        self._in_flight.append((self._sim_time + latency, stamp_ns, rgb, depth))

    def _deliver_frames(self) -> None:
        """Publish the frames due by now; in lock-step with perception, wait for their reports."""
        delivered = []
        while self._in_flight and self._in_flight[0][0] <= self._sim_time + 1e-9:
            _, stamp_ns, rgb, depth = self._in_flight.popleft()
            stamp = ros_io.time_msg(stamp_ns * 1e-9)
            self._color_msg.header.stamp = self._depth_msg.header.stamp = self._info_msg.header.stamp = stamp
            self._color_pub.publish(ros_io.fill_image(self._color_msg, rgb, "rgb8"))
            self._color_info_pub.publish(self._info_msg)
            self._depth_pub.publish(ros_io.fill_image(self._depth_msg, depth, "16UC1"))
            self._depth_info_pub.publish(self._info_msg)
            self.counters.frames += 1
            delivered.append(stamp_ns)
            if self._perception and self._lockstep:
                with self._cv:  # before its report can come
                    self._awaited.add(stamp_ns)
        if self._perception and self._lockstep and delivered:
            self._await_perception(delivered)

    def _await_perception(self, stamps: list[int]) -> None:
        timeout = self._p["lockstep_timeout_s"] or None
        topic = self._p["perception_frames_topic"]
        if not self._perception_absent:
            # A perception node that is up may not be discovered yet (a stack just started): going
            # on at once would leave its first frames unseen by the policy, on some runs only.
            deadline = time.monotonic() + (timeout if timeout is not None else DISCOVERY_WAIT_S)
            while (not self._reports_node.count_publishers(topic) and time.monotonic() < deadline
                   and not self._stop.is_set()):
                time.sleep(0.01)
        # Nobody to report after a whole time-out (perception not running, or gone): frames go on
        # unreported, and later ones do not wait for it again until it is there.
        self._perception_absent = not self._reports_node.count_publishers(topic)
        if self._perception_absent:
            with self._cv:
                self._awaited.difference_update(stamps)
            self.counters.perception_timeouts += len(stamps)
            self._log_refusal(f"lockstep: no publisher on {topic}: frames go unreported "
                              f"({self.counters.perception_timeouts} so far): is object_perception running?",
                              warning=True)
            return
        with self._cv:
            done = self._cv.wait_for(lambda: self._stop.is_set() or all(s in self._reported for s in stamps),
                                     timeout)
            missing = [s for s in stamps if s not in self._reported]
            self._reported.difference_update(stamps)
            self._awaited.difference_update(stamps)
        if not done or missing:
            self.counters.perception_timeouts += len(missing)
            self._log_refusal(f"lockstep: no perception report of {len(missing)} frame(s) within {timeout} s "
                              f"({self.counters.perception_timeouts} so far): is object_perception running?",
                              warning=True)

    def _status_msg(self, stamp: Any) -> TaskStatus:
        ep = self._episode
        msg = TaskStatus()
        msg.header.stamp = stamp
        msg.header.frame_id = self._base_frame
        msg.task, msg.profile, msg.episode_id, msg.seed = ep.task, ep.profile, ep.episode_id, ep.seed
        # A finished episode keeps reporting its own length: a reader that missed the first `done`
        # (a full queue on a loaded machine, a paused process) still reads when it ended.
        msg.step, msg.sim_time = (ep.steps, ep.time) if ep.done else (self._task.steps, self._task.time)
        msg.reward = float(ep.reward)
        msg.success = bool(ep.success) if ep.done else self._task.success()
        msg.sparse_reward = 1.0 if msg.success else 0.0
        msg.done, msg.termination = ep.done, ep.termination
        return msg

    def _publish_diagnostics(self) -> None:
        c = self.counters
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name=f"{self.get_name()}: sim bridge",
                                  message=self._p["clock_mode"], hardware_id="mujoco")
        if c.missed or c.refused or c.perception_timeouts:
            status.level = DiagnosticStatus.WARN
        values = {"steps": c.steps, "commands": c.commands, "refused": c.refused, "missed_steps": c.missed,
                  "overruns": c.overruns, "frames": c.frames, "frames_dropped": c.frames_dropped,
                  "perception_timeouts": c.perception_timeouts, "real_time_factor": f"{self._rtf:.3f}",
                  "episode_id": self._episode.episode_id, "sim_time": f"{self._sim_time:.3f}"}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    def shutdown(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        self._thread.join(5.0)
        if self._reports_node is not None:
            self._reports_thread.join(2.0)
            self._reports_executor.shutdown(timeout_sec=1.0)
            self._reports_node.destroy_node()


@dataclass
class _Episode:
    task: str
    profile: str
    seed: int
    episode_id: int
    t0: float = 0.0  # bridge sim time at reset
    reward: float = 0.0
    done: bool = False
    steps: int = 0  # control steps and task seconds at the end, once done
    time: float = 0.0
    success: bool = False
    termination: str = ""


def main(args: list[str] | None = None) -> None:
    argv = sys.argv if args is None else args
    cli = argparse.ArgumentParser(description="lps-franka MuJoCo bridge with franka_ros2's interfaces")
    cli.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        node = SimBridge()
    except (ValueError, KeyError) as exc:
        print(f"sim_bridge: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    # Not the EventsExecutor, although its C++ dispatch cut this process's CPU by a third in
    # lock-step evaluations: in one stack of a loaded CI run it never delivered a command (every
    # period a lock-step time-out). Wait sets find every message the middleware holds.
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def spin() -> None:
        try:
            while not stop.is_set():
                executor.spin_once(timeout_sec=0.1)
        except (ExternalShutdownException, rclpy.executors.ShutdownException):
            pass
        finally:
            stop.set()

    spinner = threading.Thread(target=spin, name="executor", daemon=True)
    spinner.start()
    crashed = False
    while not stop.wait(0.5):
        if not node._thread.is_alive():
            crashed = True
            break
    stop.set()  # the physics thread died: the spin loop must end too
    node.shutdown()
    spinner.join(2.0)  # out of spin_once before the executor lets go of the node
    executor.shutdown(timeout_sec=2.0)
    node.destroy_node()
    rclpy.try_shutdown()
    if crashed:
        sys.exit(1)


if __name__ == "__main__":
    main()
