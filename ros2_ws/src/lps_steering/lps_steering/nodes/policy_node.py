"""Lifecycle policy node: the thin ROS shell around `lps_steering.core.SteeringController`.

configure  read parameters, build the controller (load + validate models, warm up), create
           publishers and subscriptions. Any error -> FAILURE, reason logged, node unconfigured.
activate   run the start-up checks (`lps_steering.core.startup`: a joint state received within
           `startup_max_joint_state_age_ms`, waited for up to 2 s; joints inside the limits with
           the filter's margin; robot mode IDLE or MOVE where a FrankaRobotState monitor exists
           and use_sim_time is off; models validated; providers as requested). Any failure ->
           FAILURE, the reasons logged and in `~/status` (safety_reason). Then the controller
           starts afresh from the measured pose and the control loop runs.
deactivate stop the loop; the arm holds: with `jerk_scale` > 0 hold commands decelerate the last
           command to rest (at most 2 s), then nothing more is sent; without, one hold at the
           measured position.
cleanup    release the ONNX sessions.

Watchdog: joint states that stop arriving or whose header stamp stops advancing for
`watchdog_timeout_ms` latch a hold with the reason; it is released when fresh states return, and
chunks restart from the measured pose. The same holds while the robot reports a mode other than
IDLE / MOVE (real robot only).

`~/recover` (std_srvs/Trigger) sends franka_hardware's error recovery goal, only when called and
only while the node is not active. The robot-mode monitor and the recovery client come from
`lps_franka_hw.recovery` and need franka_msgs; both are optional imports (the package does not
exec_depend on them: lps_franka_hw depends on this package, and franka_msgs is not on PyPI). Without
them the robot-mode check is skipped and `~/recover` answers that franka_msgs is not installed.

Threads. Control cycles run in a dedicated control thread, never in the executor: the executor
(SingleThreadedExecutor by default) serves lifecycle and parameter services, `/clock` and the
status timer. So a slow service call, above all a head swap (ONNX session creation and warm-up
inside the parameter callback), can never delay a cycle; the loaded head is handed to the control
thread and installed between two cycles. Joint states and poses bypass the executor: the control
thread waits on their subscriptions itself and takes them (`control_input`), so a joint state
reaches the cycle without an executor pass or a thread handover. The controller is only ever
touched from one thread.

trigger=timer: the control thread waits for joint states until absolute deadlines (steady clock,
or the ROS clock when use_sim_time is set). trigger=observation: one cycle per received joint
state, run as soon as it is taken.
A missed cycle is one that starts more than one command period after its deadline.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
import rclpy.task
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from lps_msgs.msg import SteeringStatus, SteeringTelemetry
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from rclpy.time import Time as RosTime
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from lps_steering.core import SAFETY_HOLD, ControllerConfig, CycleResult, RobotLimits, SteeringController
from lps_steering.core.startup import (
    READY_MODES,
    ROBOT_MODES,
    StartupReport,
    StateWatchdog,
    run_startup_checks,
)
from lps_steering.nodes.control_input import ControlThreadInput, ControlThreadInputs

ARM_DOF = 7
SPIN_BEFORE_DEADLINE_S = 0.0003  # timer trigger: busy-wait this much before each deadline
NO_HEAD = 'none'
# An activation right after configure must not race the first joint state: wait this long for one.
STARTUP_WAIT_S = 2.0
# Deactivation decelerates to rest; a stop that takes longer than this is reported and abandoned
# (the joint trajectory controller then holds the last point it got).
BRAKE_TIMEOUT_S = 2.0
RECOVERY_TIMEOUT_S = 30.0

# Parameters read at configure; changing them needs cleanup + configure, so they are refused
# while the node is configured (the descriptor says so too).
_CONFIG_TIME = 'read at configure: change it while unconfigured (cleanup, set, configure)'


def _float(text: str, lo: float, hi: float, *, live: bool = False) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=text if live else f'{text}; {_CONFIG_TIME}',
        floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi, step=0.0)])


def _int(text: str, lo: int, hi: int, *, live: bool = False) -> ParameterDescriptor:
    return ParameterDescriptor(description=text if live else f'{text}; {_CONFIG_TIME}',
                               integer_range=[IntegerRange(from_value=lo, to_value=hi, step=1)])


def _text(text: str, *, live: bool = False) -> ParameterDescriptor:
    return ParameterDescriptor(description=text if live else f'{text}; {_CONFIG_TIME}')


# name -> (default, descriptor). Order is the order of `ros2 param list`.
PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = {
    'decoder': ('', _text('path of the decoder .onnx (its manifest .json lies beside it)')),
    'steering_head': (NO_HEAD, _text(
        "path of the steering head .onnx, or 'none' for the frozen base policy. Settable while "
        'configured: the head is loaded and validated in the parameter call and installed '
        'between two control cycles; a refused head leaves the running one in place', live=True)),
    'policy_rate_hz': (0.0, _float(
        "rate of the actions inside a chunk (Hz); 0 = the decoder manifest's, otherwise it must "
        'equal it', 0.0, 1000.0)),
    'command_rate_hz': (100.0, _float('rate of control cycles and commands (Hz)', 1.0, 1000.0)),
    'execute_steps': (4, _int('actions of a chunk executed before the next inference', 1, 256)),
    'temporal_ensemble_decay': (0.0, _float(
        'temporal ensembling of overlapping chunks, weights exp(-m*i); 0 disables ensembling',
        0.0, 10.0)),
    'trigger': ('timer', _text(
        "'timer': fixed-rate loop on the node clock; 'observation': one cycle per joint state")),
    'robot_type': ('fr3', _text("'fr3' or 'panda': joint name prefix and limit table")),
    'joint_states_topic': ('joint_states', _text('sensor_msgs/JointState input')),
    'object_pose_topic': ('object_pose', _text('geometry_msgs/PoseStamped, if the model uses it')),
    'target_pose_topic': ('target_pose', _text('geometry_msgs/PoseStamped, if the model uses it')),
    'command_topic': ('fr3_arm_controller/joint_trajectory', _text(
        'trajectory_msgs/JointTrajectory output (one point per command)')),
    'gripper_command_topic': ('gripper_command', _text('std_msgs/Float64 gripper width output (m)')),
    'guard': (0.0, _float('run-time trust-region guard for lpds heads (x trust_region_delta); 0 = off',
                          0.0, 100.0)),
    'noise_seed': (0, _int(
        'seed of the base noise generator. Settable while configured: the generator restarts from '
        'it at the next replan (the evaluator sets it to the episode seed before every episode)',
        0, 2**31 - 1, live=True)),
    'providers': (['CPUExecutionProvider'], _text('ONNX Runtime execution providers, in priority order')),
    'allow_provider_fallback': (False, _text('accept a session that runs on other providers than asked')),
    'intra_op_threads': (1, _int('ONNX Runtime intra-op threads per session', 1, 64)),
    'max_observation_age_ms': (200.0, _float('older observations make the cycle hold (ms)', 1.0, 10000.0)),
    'workspace_min': ([0.2, -0.6, 0.02], _text('lower corner (x, y, z) of the TCP box, base frame (m)')),
    'workspace_max': ([0.85, 0.6, 0.9], _text('upper corner (x, y, z) of the TCP box, base frame (m)')),
    'max_joint_step': (0.02, _float('largest change of a joint command per command period (rad)',
                                    1e-4, 0.2)),
    'jerk_scale': (0.5, _float(
        'fraction of the joint jerk limits the safety filter allows; commands then carry '
        'velocities and holds decelerate to rest. 0 = no jerk limit (holds stop dead)', 0.0, 1.0)),
    'watchdog_timeout_ms': (200.0, _float(
        'joint states that stop arriving, or whose header stamp stops advancing, for this long '
        'make the arm hold until fresh ones return (ms)', 1.0, 10000.0)),
    'startup_max_joint_state_age_ms': (500.0, _float(
        'activation is refused unless a joint state arrived within this time (ms); a missing or '
        'older one is waited for up to 2 s first', 1.0, 10000.0)),
}
_LIVE = frozenset({'steering_head', 'noise_seed'})


class PolicyNode(LifecycleNode):
    """Managed node running `SteeringController` at `command_rate_hz`."""

    def __init__(self, node_name: str = 'policy_node', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._state = 'unconfigured'
        self._controller: SteeringController | None = None
        self._cmd_pub = self._grip_pub = self._telemetry_pub = self._status_pub = None
        self._status_timer = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._inputs: ControlThreadInputs | None = None
        self._joint_input: ControlThreadInput | None = None
        self._sim_time = False
        self._pose_inputs: dict[str, ControlThreadInput] = {}
        self._pending_lock = threading.Lock()
        self._pending_head: tuple[Any, str] | None = None
        self._pending_seed: int | None = None
        self._watchdog: StateWatchdog | None = None
        self._mode_monitor: Any = None
        self._external_hold = ''
        self._head_path = NO_HEAD
        self._last_swap_error = ''
        self._reset_counters()
        # Newest messages, written by subscription callbacks, read by the control thread.
        self._joint_msg: tuple[JointState, float, int] | None = None
        self._cmd_stamp = None  # when the last command was published (builtin_interfaces/Time)
        self._pose_msgs: dict[str, tuple[PoseStamped, float] | None] = {}
        # Error recovery is served in every state: a robot in reflex must be recoverable before
        # the policy is configured.
        self._recovery: Any = None
        self._recovery_missing = ''
        try:
            from lps_franka_hw.recovery import ErrorRecoveryClient
        except ImportError as exc:
            self._recovery_missing = f'lps_franka_hw is not installed ({exc})'
        else:
            self._recovery = ErrorRecoveryClient(self)
        self._recover_srv = self.create_service(Trigger, '~/recover', self._on_recover)

    # ================================================================ parameters
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name not in PARAMETERS:
                continue
            reason = self._check_value(p)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if p.name not in _LIVE and self._state != 'unconfigured':
                return SetParametersResult(successful=False, reason=(
                    f'`{p.name}` is read at configure and the node is {self._state}: cleanup first'))
        for p in params:
            if p.name == 'steering_head' and self._controller is not None:
                reason = self._load_head(p.value)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
            if p.name == 'noise_seed' and self._controller is not None:
                self._queue_reseed(p.value)
        return SetParametersResult(successful=True)

    def _queue_reseed(self, seed: int) -> None:
        """Reseed now when no loop runs, else hand it to the control thread (applied before a cycle)."""
        if self._thread is not None and self._thread.is_alive():
            with self._pending_lock:
                self._pending_seed = seed
        else:
            self._controller.reseed(seed)

    @staticmethod
    def _check_value(p: Parameter) -> str:
        """What the descriptors cannot say (choices, vector sizes); empty string when valid."""
        v = p.value
        if p.name == 'trigger' and v not in ('timer', 'observation'):
            return f"`trigger` must be 'timer' or 'observation', got {v!r}"
        if p.name == 'robot_type' and v not in ('fr3', 'panda'):
            return f"`robot_type` must be 'fr3' or 'panda', got {v!r}"
        if p.name in ('workspace_min', 'workspace_max') and (
                len(v) != 3 or not all(math.isfinite(x) for x in v)):
            return f'`{p.name}` must be 3 finite numbers (x, y, z) in metres, got {list(v)}'
        if p.name == 'providers' and (len(v) == 0 or not all(v)):
            return f'`providers` must be a non-empty list of provider names, got {list(v)}'
        if p.name == 'steering_head' and not v:
            return "`steering_head` must be a path to a head .onnx or 'none', got ''"
        return ''

    def _load_head(self, path: str) -> str:
        """Load + validate a head (slow: session creation, warm-up) and queue it; '' if accepted."""
        if path == NO_HEAD:
            head = None
        else:
            started = time.monotonic()
            try:
                head = self._controller.load_head(path)
            except Exception as exc:  # noqa: BLE001 - every refusal reason goes back to the caller
                self._last_swap_error = f'{type(exc).__name__}: {exc}'
                self.get_logger().error(f'steering head {path} refused: {self._last_swap_error}')
                self._publish_status()
                return f'steering head refused: {self._last_swap_error}'
            self.get_logger().info(
                f'steering head {head.model_id} loaded in {1e3 * (time.monotonic() - started):.1f} ms')
        self._last_swap_error = ''
        if self._thread is not None and self._thread.is_alive():
            with self._pending_lock:
                self._pending_head = (head, path)
        else:
            self._install(head, path)
        return ''

    def _install(self, head: Any, path: str) -> None:
        self._controller.install_head(head)
        self._head_path = path
        self._status_dirty = True

    def _config(self) -> ControllerConfig:
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        head = p['steering_head']
        return ControllerConfig(
            decoder_path=p['decoder'],
            head_path='' if head == NO_HEAD else head,
            robot=p['robot_type'],
            providers=tuple(p['providers']),
            allow_provider_fallback=p['allow_provider_fallback'],
            intra_op_threads=p['intra_op_threads'],
            command_rate_hz=p['command_rate_hz'],
            execute_steps=p['execute_steps'],
            temporal_ensembling=p['temporal_ensemble_decay'] > 0.0,
            ensemble_decay=p['temporal_ensemble_decay'],
            max_observation_age_s=p['max_observation_age_ms'] / 1e3,
            guard=p['guard'],
            seed=p['noise_seed'],
            max_step_rad=p['max_joint_step'],
            jerk_scale=p['jerk_scale'],  # 0 = off: ControllerConfig reads it as None
            workspace_min=tuple(p['workspace_min']),
            workspace_max=tuple(p['workspace_max']),
        )

    # ================================================================ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            config = self._config()
            controller = SteeringController(config)
            controller.configure()
            wanted_rate = self.get_parameter('policy_rate_hz').value
            if wanted_rate > 0.0 and not math.isclose(wanted_rate, controller.policy_rate_hz):
                raise ValueError(f'`policy_rate_hz` must equal the decoder manifest\'s '
                                 f'({controller.policy_rate_hz}) or be 0, got {wanted_rate}')
        except Exception as exc:  # noqa: BLE001 - any reason is logged and reported as FAILURE
            self.get_logger().error(f'configure failed: {type(exc).__name__}: {exc}')
            return TransitionCallbackReturn.FAILURE
        self._controller = controller
        self._head_path = self.get_parameter('steering_head').value
        self._period = 1.0 / config.command_rate_hz
        self._trigger = self.get_parameter('trigger').value
        self._sim_time = bool(self.get_parameter('use_sim_time').value)
        self._max_age = config.max_observation_age_s
        # The time the last cycle ran at, and the node's clock then (sim time gates idle cycles).
        self._last_cycle_now = self._last_clock_s = -math.inf
        self._startup_age = self.get_parameter('startup_max_joint_state_age_ms').value / 1e3
        self._watchdog = StateWatchdog(self.get_parameter('watchdog_timeout_ms').value / 1e3)
        self._mode_monitor = self._make_mode_monitor()
        self._build_io(config)
        self._state = 'inactive'
        self.get_logger().info(
            f'configured: decoder {controller.decoder_id}, head {controller.head_id}, '
            f'providers {controller.providers}, {config.command_rate_hz:g} Hz, trigger {self._trigger}')
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def _build_io(self, config: ControllerConfig) -> None:
        robot = config.robot
        self._arm_names = [f'{robot}_joint{i}' for i in range(1, ARM_DOF + 1)]
        self._finger_names = [f'{robot}_finger_joint1', f'{robot}_finger_joint2']
        self._name_cache: tuple[list[str], list[int], list[int]] | None = None
        g = self.get_parameter
        self._cmd_pub = self.create_publisher(JointTrajectory, g('command_topic').value, 10)
        self._grip_pub = self.create_publisher(Float64, g('gripper_command_topic').value, 10)
        self._telemetry_pub = self.create_publisher(SteeringTelemetry, '~/telemetry', 100)
        self._status_pub = self.create_publisher(SteeringStatus, '~/status', 10)
        self._inputs = ControlThreadInputs(self)
        self._joint_input = self._inputs.subscribe(JointState, g('joint_states_topic').value, 10)
        sources = set(self._controller.required_sources)
        self._pose_msgs = {}
        self._pose_inputs = {}
        for source, param in (('object_position', 'object_pose_topic'),
                              ('target_position', 'target_pose_topic')):
            if source in sources:
                self._pose_msgs[source] = None
                self._pose_inputs[source] = self._inputs.subscribe(PoseStamped, g(param).value, 10)
        self._uses_velocity = 'arm_joint_velocities' in sources
        self._uses_gripper = 'gripper_width' in sources
        self._status_timer = self.create_timer(1.0, self._publish_status)
        # Preallocated messages: the cycle only fills in numbers.
        self._traj = JointTrajectory(joint_names=self._arm_names)
        self._traj.points = [JointTrajectoryPoint(time_from_start=_duration(self._period))]
        self._grip_msg = Float64()
        self._telemetry = SteeringTelemetry()
        self._telemetry.header.frame_id = ''

    def _make_mode_monitor(self) -> Any:
        """FrankaRobotState monitor on the real robot; None in sim or without franka_msgs."""
        if self._sim_time:
            return None
        try:
            from lps_franka_hw.recovery import RobotModeMonitor
        except ImportError:
            return None
        monitor = RobotModeMonitor(self)
        return monitor if monitor.available else None

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        report = self._startup_report()
        if not report.ok:
            reason = f'activation refused: {report.summary()}'
            self.get_logger().error(reason)
            self._last_safety, self._last_reason = SAFETY_HOLD, reason
            self._publish_status()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(report.summary())
        self._reset_counters()
        # Afresh from the measured pose: the arm may have moved since the last command (a new
        # episode, guiding mode), so neither chunks nor the filter's history carry over.
        self._controller.reset()
        self._external_hold = ''
        self._stop.clear()
        self._thread = threading.Thread(target=self._control_loop, name='control', daemon=True)
        self._state = 'active'
        self._thread.start()
        self.get_logger().info('active: control loop started')
        self._publish_status()
        return super().on_activate(state)

    def _startup_report(self) -> StartupReport:
        c, cfg = self._controller, self._controller.config
        # The control thread is not running yet: this thread may take joint states.
        self._take_inputs()
        latest = self._joint_msg
        give_up = time.monotonic() + STARTUP_WAIT_S
        while latest is None or self._now_s() - latest[1] > self._startup_age:
            remaining = give_up - time.monotonic()
            if remaining <= 0.0:
                break
            if self._inputs.wait(remaining):
                self._take_inputs()
                latest = self._joint_msg
        limits = RobotLimits.for_robot(cfg.robot)
        monitor = self._mode_monitor
        return run_startup_checks(
            now_s=self._now_s(), joint_state_stamp_s=latest[1] if latest is not None else None,
            joint_positions=self._measured_q(), q_min=limits.q_min, q_max=limits.q_max,
            robot_mode=monitor.mode if monitor is not None else None,
            robot_mode_required=monitor is not None,
            decoder_id=c.decoder_id, head_id=c.head_id, head_requested=self._head_path != NO_HEAD,
            requested_providers=cfg.providers, active_providers=c.providers,
            allow_provider_fallback=cfg.allow_provider_fallback,
            max_joint_state_age_s=self._startup_age, joint_margin_rad=cfg.joint_margin_rad)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_loop()
        self._stop_arm('deactivated')
        self._state = 'inactive'
        self.get_logger().info('inactive: control loop stopped, arm holds')
        self._publish_status()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = 'unconfigured'
        self._publish_status_unconfigured()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._thread is not None:
            self._stop_loop()
            self._stop_arm('shutdown')
        self._release()
        self._state = 'finalized'
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_loop()
        self._stop_arm('error')
        self._release()
        self._state = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._inputs is not None:
            self._inputs.destroy()
        self._inputs = self._joint_input = None
        self._pose_inputs = {}
        if self._status_timer is not None:
            self.destroy_timer(self._status_timer)
            self._status_timer = None
        if self._mode_monitor is not None and self._mode_monitor.sub is not None:
            self.destroy_subscription(self._mode_monitor.sub)
        self._mode_monitor = None
        self._watchdog = None
        for pub in (self._cmd_pub, self._grip_pub, self._telemetry_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._cmd_pub = self._grip_pub = self._telemetry_pub = None
        if self._controller is not None:
            self._controller.cleanup()
        self._controller = None
        self._joint_msg = None
        with self._pending_lock:
            self._pending_head = None
            self._pending_seed = None

    def _stop_loop(self) -> None:
        self._stop.set()
        if self._inputs is not None:
            self._inputs.wake()
        if self._thread is not None:
            self._thread.join(5.0)
            if self._thread.is_alive():
                self.get_logger().error('control thread did not stop within 5 s')
        self._thread = None

    def _hold_at_measured(self, reason: str) -> None:
        """Command the last measured arm position: the arm stops where it is."""
        if self._controller is None:
            return
        self._controller.hold(reason)
        q = self._measured_q()
        if q is None or not np.all(np.isfinite(q)) or self._cmd_pub is None:
            self.get_logger().warning(f'{reason}: no finite joint state to hold at; no command sent')
            return
        self._traj.points[0].positions = q
        self._traj.points[0].velocities = [0.0] * ARM_DOF
        self._cmd_pub.publish(self._traj)

    def _stop_arm(self, reason: str) -> None:
        """Hold after the loop stopped: decelerate to rest (jerk-limited) or one hold at the measured pose.

        Runs in the calling (executor) thread with the loop already stopped, so the controller is
        touched by one thread only. Commands only, no telemetry: these periods are not control
        cycles of an episode.
        """
        c = self._controller
        if c is None or c.safety is None or not c.safety.jerk_limited:
            self._hold_at_measured(reason)
            return
        c.hold(reason)
        started = time.monotonic()
        deadline, sent = started, 0
        while self._cmd_pub is not None:
            self._take_inputs()  # the control thread has stopped: this thread takes them now
            q = self._measured_q()
            result = c.step(self._now_s(), q if q is not None else np.full(ARM_DOF, math.nan))
            if not np.all(np.isfinite(result.command)):
                self.get_logger().warning(f'{reason}: no command was ever sent and no finite joint '
                                          'state to hold at; no command sent')
                return
            self._send(result.command, c.safety.velocity)
            sent += 1
            if c.safety.at_rest:
                self.get_logger().info(f'{reason}: at rest after {sent} hold commands '
                                       f'({1e3 * (time.monotonic() - started):.0f} ms)')
                return
            if time.monotonic() - started > BRAKE_TIMEOUT_S:
                self.get_logger().error(f'{reason}: not at rest after {BRAKE_TIMEOUT_S} s '
                                        f'({sent} hold commands); the controller holds the last one')
                return
            deadline += self._period
            time.sleep(max(0.0, deadline - time.monotonic()))

    def _send(self, q: np.ndarray, velocity: np.ndarray) -> None:
        point = self._traj.points[0]
        point.positions = q
        # Velocities make joint_trajectory_controller join points with cubic splines that match
        # the filter's velocity, instead of velocity jumps at every point.
        point.velocities = velocity
        # Telemetry's header stamp is this instant: command latency = it - observation_stamp.
        self._cmd_stamp = self.get_clock().now().to_msg()
        self._cmd_pub.publish(self._traj)

    # ================================================================ inputs
    def _received_at(self, stamp: Time, age_s: float) -> float:
        """Receipt time on the node's clock of a message taken `age_s` after it arrived.

        With sim time the node's clock follows /clock through the executor, which may not have
        seen the /clock published just before this message yet: a message is never older than
        its own stamp there (wall-clock age means nothing while a lock-step sim waits).
        """
        if self._sim_time:
            return max(self._now_s(), _seconds(stamp))
        return self._now_s() - age_s

    def _on_joint_state(self, msg: JointState, age_s: float) -> None:
        now = self._received_at(msg.header.stamp, age_s)
        self._joint_msg = (msg, now, time.monotonic_ns() - int(age_s * 1e9))
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.feed(now, _seconds(msg.header.stamp))

    def _take_inputs(self) -> bool:
        """Take every queued pose and joint state (the newest of each wins); True if a joint state came.

        Poses first: a cycle triggered by a joint state then sees the poses published before it.
        Only the thread that runs the control loop calls this, or any thread while no loop runs.
        """
        if self._joint_input is None:
            return False
        for source, pose_input in self._pose_inputs.items():
            while (taken := pose_input.take()) is not None:
                self._on_pose(source, *taken)
        took = False
        while (taken := self._joint_input.take()) is not None:
            self._on_joint_state(*taken)
            took = True
        return took

    def _on_pose(self, source: str, msg: PoseStamped, age_s: float) -> None:
        self._pose_msgs[source] = (msg, self._received_at(msg.header.stamp, age_s))

    def _measured_q(self) -> np.ndarray | None:
        latest = self._joint_msg
        if latest is None:
            return None
        index = self._joint_index(latest[0])
        if index is None:
            return None
        return np.asarray(latest[0].position, dtype=np.float64)[index[0]]

    def _joint_index(self, msg: JointState) -> tuple[list[int], list[int]] | None:
        """Positions of the arm and finger joints in the message; cached while names repeat."""
        cache = self._name_cache
        if cache is not None and cache[0] == msg.name:
            return cache[1], cache[2]
        names = list(msg.name)
        if not all(n in names for n in self._arm_names) or len(msg.position) != len(names):
            return None
        arm = [names.index(n) for n in self._arm_names]
        fingers = [names.index(n) for n in self._finger_names if n in names]
        self._name_cache = (names, arm, fingers)
        return arm, fingers

    def _feed(self) -> tuple[np.ndarray | None, float]:
        """Give the controller the newest messages; returns measured q and its receipt time."""
        latest = self._joint_msg
        if latest is None:
            return None, math.nan
        msg, stamp, _ = latest
        index = self._joint_index(msg)
        if index is None:
            return None, stamp
        arm, fingers = index
        position = np.asarray(msg.position, dtype=np.float64)
        q = position[arm]
        c = self._controller
        try:
            c.observe('arm_joint_positions', q, stamp)
            if self._uses_velocity and len(msg.velocity) == len(msg.position):
                c.observe('arm_joint_velocities', np.asarray(msg.velocity, dtype=np.float64)[arm], stamp)
            if self._uses_gripper and len(fingers) == 2:
                c.observe('gripper_width', float(position[fingers].sum()), stamp)
            for source, item in self._pose_msgs.items():
                if item is not None:
                    p = item[0].pose.position
                    c.observe(source, np.array((p.x, p.y, p.z)), item[1])
        except Exception as exc:  # noqa: BLE001 - a refused observation must end in a hold
            self._feed_error = f'observation refused: {exc}'
        return q, stamp

    # ================================================================ control loop
    def _control_loop(self) -> None:
        try:
            if self._trigger == 'observation':
                self._observation_loop()
            elif self._sim_time:
                self._ros_clock_loop()
            else:
                self._steady_loop()
        except Exception as exc:  # noqa: BLE001 - the loop must never die silently
            self.get_logger().fatal(f'control loop crashed: {type(exc).__name__}: {exc}')
            self._hold_at_measured(f'control loop crashed: {exc}')

    def _steady_loop(self) -> None:
        period = self._period
        source = self._inputs
        deadline = time.monotonic() + period
        while not self._stop.is_set():
            wait = deadline - time.monotonic() - SPIN_BEFORE_DEADLINE_S
            if wait > 0.0:
                # Joint states are taken as they arrive, so their receipt times are true ones.
                if source.wait(wait):
                    self._take_inputs()
                continue
            # A timed wait wakes 0.05-1 ms late depending on load; the last stretch is spun.
            while time.monotonic() < deadline:
                pass
            self._take_inputs()
            late = time.monotonic() - deadline
            self._cycle(late)
            deadline += period
            behind = time.monotonic() - deadline
            if behind > period:
                # Skip the deadlines already lost instead of bursting to catch up; each counts.
                lost = int(behind // period)
                self._missed += lost
                deadline += lost * period

    def _ros_clock_loop(self) -> None:
        clock = self.get_clock()
        period_ns = int(round(self._period * 1e9))
        deadline = clock.now().nanoseconds + period_ns
        while not self._stop.is_set():
            if not clock.sleep_until(RosTime(nanoseconds=deadline, clock_type=clock.clock_type)):
                if self._stop.is_set() or not self.context.ok():
                    return
                deadline = clock.now().nanoseconds + period_ns  # time source changed: restart
                continue
            self._take_inputs()
            self._cycle((clock.now().nanoseconds - deadline) * 1e-9)
            deadline += period_ns

    def _observation_loop(self) -> None:
        source = self._inputs
        quiet_since = time.monotonic()
        # The state that passed the start-up checks has not been answered yet; a lock-step sim
        # publishes it once and waits for the command.
        self._take_inputs()
        if self._joint_msg is not None:
            self._cycle((time.monotonic_ns() - self._joint_msg[2]) * 1e-9)
        while not self._stop.is_set():
            ready = source.wait(max(0.0, quiet_since + self._max_age - time.monotonic()))
            if self._stop.is_set():
                return
            if ready and self._take_inputs():
                quiet_since = time.monotonic()
                self._cycle((time.monotonic_ns() - self._joint_msg[2]) * 1e-9)
            elif time.monotonic() - quiet_since >= self._max_age:
                quiet_since = time.monotonic()
                if self._sim_time and self._last_clock_s <= self._now_s() <= self._last_cycle_now:
                    # Sim time has not moved on since the last cycle: a lock-step sim is still
                    # working on our command (a loaded machine), so no cycle is due. Another command
                    # would advance it one extra period and make the episode depend on machine load.
                    # A clock that went back (a restarted sim) counts as moved.
                    continue
                # Nothing arrived for max_age: run a cycle anyway so the controller holds (stale).
                self._cycle(0.0)

    def _cycle(self, late_s: float) -> None:
        started = time.perf_counter()
        self._cmd_stamp = None  # a hold sent outside a cycle must not stamp this cycle's telemetry
        if late_s > self._period:
            self._missed += 1
        self._cycles += 1
        with self._pending_lock:
            pending, self._pending_head = self._pending_head, None
            seed, self._pending_seed = self._pending_seed, None
        if pending is not None:
            self._install(*pending)
        c = self._controller
        if seed is not None:
            c.reseed(seed)
        self._feed_error = ''
        q, received = self._feed()
        now = self._last_clock_s = self._now_s()
        if self._sim_time and math.isfinite(received):
            now = max(now, received)  # see _received_at
        self._last_cycle_now = now
        self._check_external_hold(now)
        if q is None:
            result = None
            reason = 'no joint state with all arm joints received yet'
        else:
            if self._feed_error:
                q = np.full(ARM_DOF, math.nan)  # the controller turns a bad measurement into a hold
            result = c.step(now, q)
            reason = self._feed_error or result.safety_reason
            grip = math.isfinite(result.gripper)
            if grip:
                self._grip_msg.data = result.gripper
            # A lock-step sim (sim time) advances on the arm command, so the gripper goes first
            # there: after it, it would act one period later, depending on machine load. On the
            # robot the arm command is the one a control cycle waits for, so no other publish
            # goes before it.
            if grip and self._sim_time:
                self._grip_pub.publish(self._grip_msg)
            if np.all(np.isfinite(result.command)):
                self._send(result.command, c.safety.velocity)
            if grip and not self._sim_time:
                self._grip_pub.publish(self._grip_msg)
        self._publish_telemetry(result, reason, started)

    def _check_external_hold(self, now: float) -> None:
        """Watchdog and robot mode: latch a hold with the reason; release it once both are fine."""
        reason = self._watchdog.check(now) if self._watchdog is not None else ''
        monitor = self._mode_monitor
        if not reason and monitor is not None and monitor.mode is not None and monitor.mode not in READY_MODES:
            reason = f'robot mode {ROBOT_MODES.get(monitor.mode, monitor.mode)}: not ready to move'
        if reason and not self._external_hold:
            self._controller.hold(reason)
            self._external_hold = reason
            self.get_logger().warning(f'holding: {reason}')
        elif not reason and self._external_hold:
            # resume() restarts chunk execution from the measured pose.
            self._controller.resume()
            self.get_logger().info(f'released the hold ({self._external_hold}): joint states fresh again')
            self._external_hold = ''

    # ================================================================ error recovery
    async def _on_recover(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Operator-triggered error recovery; never called by the node itself."""
        if self._recovery is None:
            response.success, response.message = False, f'error recovery unavailable: {self._recovery_missing}'
        elif self._state == 'active':
            response.success, response.message = False, (
                'the policy node is active: deactivate it first (recovery while it streams commands '
                'would let the arm move at once), recover, then activate (the start-up checks run again)')
        else:
            future = rclpy.task.Future()

            def done(ok: bool, text: str) -> None:
                if not future.done():
                    future.set_result((ok, text))

            if not self._recovery.recover(done):
                done(False, 'an error recovery is already running')
            if not future.done():
                timer = self.create_timer(RECOVERY_TIMEOUT_S, lambda: done(
                    False, f'error recovery did not finish within {RECOVERY_TIMEOUT_S} s'))
                try:
                    await future
                finally:
                    self.destroy_timer(timer)
            response.success, response.message = future.result()
        log = self.get_logger().info if response.success else self.get_logger().error
        log(f'~/recover: {response.message}')
        return response

    def _publish_telemetry(self, result: CycleResult | None, reason: str, started: float) -> None:
        c, t = self._controller, self._telemetry
        sent, self._cmd_stamp = self._cmd_stamp, None
        t.header.stamp = sent if sent is not None else self.get_clock().now().to_msg()
        t.decoder_id, t.head_id, t.head_type = c.decoder_id, c.head_id, c.head_type
        t.cycle = self._cycles
        t.trust_region_delta = c.trust_region_delta
        if result is None:
            t.safety_state, t.safety_reason = SAFETY_HOLD, reason
            t.command, t.gripper_command = [], math.nan
            t.replanned, t.inference_ms, t.observation_age_ms = False, math.nan, math.nan
            t.delta_sq_norm = t.guard_scale = t.latent_norm = math.nan
        else:
            # The joint state's own stamp (its publisher's clock), as the message defines it, so
            # header.stamp - observation_stamp is the observation -> command latency end to end.
            latest = self._joint_msg
            t.observation_stamp = (latest[0].header.stamp if latest is not None
                                   else _time_msg(result.observation_stamp_s))
            t.chunk_count, t.chunk_index = result.chunk_count, result.chunk_index
            t.replanned = result.replanned
            t.inference_ms = result.inference_ms
            t.observation_age_ms = result.observation_age_ms
            t.delta_sq_norm, t.guard_scale = result.delta_sq_norm, result.guard_scale
            t.latent_norm = result.latent_norm
            t.safety_state, t.safety_reason = result.safety_state, reason
            t.command, t.gripper_command = result.command, result.gripper
        t.cycle_ms = (time.perf_counter() - started) * 1e3
        self._telemetry_pub.publish(t)
        if t.safety_state != self._last_safety or self._status_dirty:
            self._last_safety, self._last_reason = t.safety_state, t.safety_reason
            self._status_dirty = False
            self._publish_status()

    # ================================================================ status
    def _reset_counters(self) -> None:
        self._cycles = 0
        self._missed = 0
        self._last_safety = -1
        self._last_reason = ''
        self._status_dirty = False
        self._feed_error = ''
        self._rate_mark = (time.monotonic(), 0)

    def _publish_status(self) -> None:
        pub, c = self._status_pub, self._controller
        if pub is None or c is None:
            return
        s = SteeringStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        s.lifecycle_state = self._state
        s.decoder_id = c.decoder_id
        s.decoder_sha256 = c.decoder.sha256 if c.decoder is not None else ''
        s.head_id, s.head_type = c.head_id, c.head_type
        s.head_path = '' if self._head_path == NO_HEAD else self._head_path
        s.head_sha256 = c.head.sha256 if c.head is not None else ''
        s.providers = c.providers
        s.policy_rate_hz = c.policy_rate_hz
        s.command_rate_hz = 1.0 / self._period
        now, cycles = time.monotonic(), self._cycles
        mark_t, mark_c = self._rate_mark
        if now - mark_t >= 0.5:
            self._achieved = (cycles - mark_c) / (now - mark_t) if self._state == 'active' else 0.0
            self._rate_mark = (now, cycles)
        s.achieved_rate_hz = getattr(self, '_achieved', 0.0)
        s.cycles, s.missed_cycles = cycles, self._missed
        s.head_swaps = c.head_swaps
        s.last_swap_error = self._last_swap_error
        s.safety_state = max(self._last_safety, 0)
        s.safety_reason = self._last_reason
        pub.publish(s)

    def _publish_status_unconfigured(self) -> None:
        if self._status_pub is not None:
            s = SteeringStatus(lifecycle_state='unconfigured', head_id='none', head_type='none')
            s.header.stamp = self.get_clock().now().to_msg()
            self._status_pub.publish(s)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9


def _duration(seconds: float) -> Duration:
    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _seconds(stamp: Time) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def _time_msg(seconds: float) -> Time:
    if not math.isfinite(seconds):
        return Time()
    ns = int(seconds * 1e9)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


# No EventsExecutor: it ignores callback groups, so it would take the joint states meant for the
# control thread (measured: a third of them lost), and with these wheels its spin() dispatches
# nothing.
EXECUTORS = {
    'single': SingleThreadedExecutor,
    'multi': lambda: MultiThreadedExecutor(num_threads=2),
}


def main(args: list[str] | None = None) -> None:
    argv = sys.argv if args is None else args
    cli = argparse.ArgumentParser(description='lps-franka lifecycle policy node')
    # 'single' by default: it is the one the DDS tests exercise; bench/bench_node_loop.py measures both.
    cli.add_argument('--executor', choices=sorted(EXECUTORS), default='single',
                     help='executor serving services, parameters, /clock and the status timer (not '
                          'the control loop and its inputs, which have their own thread)')
    cli.add_argument('--autostart', action='store_true',
                     help='configure and activate at start (for launches without a lifecycle manager)')
    opts = cli.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    # The GIL is handed over every 5 ms by default: too coarse for a 100 Hz control thread that
    # shares the interpreter with a head being loaded in the executor thread.
    sys.setswitchinterval(0.0005)
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = PolicyNode()
    executor = EXECUTORS[opts.executor]()
    executor.add_node(node)

    def spin() -> None:
        # spin_once in a loop, not spin(), so a stop request is seen within 0.1 s.
        try:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
        except (ExternalShutdownException, rclpy.executors.ShutdownException):
            pass
        finally:
            stop.set()

    # Autostart before the executor runs, so no service call can race these transitions.
    if opts.autostart and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
        node.trigger_activate()
    spinner = threading.Thread(target=spin, name='executor', daemon=True)
    spinner.start()
    while not stop.wait(0.5):
        pass
    # Executor first, so no transition races the shutdown one; then the arm holds; then DDS.
    executor.shutdown(timeout_sec=2.0)
    spinner.join(2.0)
    if node._state != 'finalized':
        node.trigger_shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main()
