"""Lifecycle policy node: the thin ROS shell around `lps_steering.core.SteeringController`.

Where each job lives (package `lps_steering.nodes.policy`):
  parameters  declarations, value checks, what they become at configure
  decoding    JointState / PoseStamped -> arrays; every malformation -> a reason (topic, field)
  inputs      the control thread takes joint states, poses and /clock itself; watchdog feed
  faults      the node's own faults, latched until ~/resume
  loops       when a cycle runs (timer on steady or ROS time, or one per observation)
  timing      message-time conversions; a ROS-clock wait that ends on stop and reports stalls
  readiness   the generic "may the robot move" input from a hardware supervisor
  wire        other publishers on the joint-state input or the command topic
  outputs     commands, telemetry, status
This module: lifecycle transitions, one control cycle, the resume service and `main`.

configure  read parameters, build the controller (load + validate models, warm up), create
           publishers and subscriptions. Any error -> FAILURE, reason logged, node unconfigured.
activate   run the start-up checks (`lps_steering.core.startup`: a joint state received within
           `startup_max_joint_state_age_ms`, waited for up to 3 s; joints inside the limits with
           the filter's margin; models validated; providers as requested; with a
           `readiness_topic`, a fresh `ready: true`; no other publisher on the joint-state input
           or the command topic). Any failure -> FAILURE, the reasons logged and in `~/status`
           (safety_reason). Then the controller starts afresh from the measured pose, the
           watchdog is re-armed and the control loop runs. The first command is the measured
           pose moved by at most one allowed step.
deactivate stop the loop; the arm holds: with `jerk_scale` > 0 hold commands decelerate the last
           command to rest (at most 2 s), then nothing more is sent; without, one hold at the
           measured position.
cleanup    release the ONNX sessions.
error      a control thread that cannot go on (an exception even in its brake path, three
           cycles in a row) brakes and takes the node through ErrorProcessing to unconfigured,
           the reason logged and in `~/status`.

Faults. Any error in decoding an input or in a cycle holds with the jerk-limited brake, a brake
command every period, and a reason naming the message and field (telemetry and ~/status). A
robot that stops talking gets its brake to rest, then nothing until it talks again; the hold then
stands where it is measured (see `_step`). The
node's own faults (malformed input, joint states silent / frozen / stamped in the future, a
stalled sim clock, readiness false or silent, a second publisher) are latched: the node holds
until `~/resume` (std_srvs/Trigger) is called and accepted, which it is only once the cause is
gone (else it answers why not), or until deactivate/activate. `auto_resume_after_stale` lets
pure staleness release itself. After any hold the first command starts from the measured pose.

Time. `use_sim_time` is refused while configured. Under sim time the control loop waits on
/clock with a steady-time bound: stopping never waits for a clock, and a /clock that stops
advancing holds with "sim clock stalled". A /clock that goes back (a restarted simulation)
forgets every input from before it and holds, latched, until ~/resume; the next command then
starts from the measured pose of the restarted simulation. Activation runs in the executor, which
therefore delivers no /clock meanwhile: its checks wait for a /clock taken by the inputs
themselves and judge freshness against it. ~/status is published on steady time (about 1 Hz and
on every change), so it keeps coming while sim time stands still.

Threads. Control cycles run in a dedicated control thread, never in the executor: the executor
(SingleThreadedExecutor by default) serves lifecycle, parameter and resume services, `/clock`
(the node's clock), the publisher check and the status timer. So a slow service call, above all a head
swap (ONNX session creation and warm-up inside the parameter callback), can never delay a
cycle; the loaded head is handed to the control thread and installed between two cycles. Joint
states, poses, readiness and a copy of /clock bypass the executor: the control thread waits on
their subscriptions itself and takes them (`control_input`). The controller is only ever touched from one thread.

`--autostart` configures, then retries activation until `startup_timeout_s` while it logs what
is missing (joint states on which topic, readiness on which topic); see `autostart`.
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
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger

from lps_steering.core import (
    ARM_DOF,
    NO_HEAD,
    SAFETY_HOLD,
    CycleResult,
    RobotLimits,
    SteeringController,
    arm_joint_names,
)
from lps_steering.core.startup import CheckResult, StartupReport, StateWatchdog, run_startup_checks
from lps_steering.nodes.policy.autostart import autostart
from lps_steering.nodes.policy.faults import FaultBoard
from lps_steering.nodes.policy.inputs import POSE_SOURCES, ObservationInputs
from lps_steering.nodes.policy.loops import ControlLoops
from lps_steering.nodes.policy.outputs import CommandOutput, StatusOutput, TelemetryOutput
from lps_steering.nodes.policy.parameters import (
    PARAMETERS,
    NodeSettings,
    check_value,
    controller_config,
)
from lps_steering.nodes.policy.readiness import ReadinessInput
from lps_steering.nodes.policy.timing import seconds_of_ns
from lps_steering.nodes.policy.wire import OtherPublishers

# A lifecycle activate request (a service call, served by the executor) waits this long for a
# first joint state; the long wait for a robot that is still coming up is `--autostart`'s. Longer
# than a lock-step sim's default wait for a command (2 s), after which it publishes again: a
# state lost to discovery right after a reset is then replaced within the wait.
ACTIVATE_WAIT_S = 3.0
# Under sim time the activation wait also looks for a first /clock, which does not end a wait on
# the inputs: it looks again this often.
CLOCK_POLL_S = 0.02
# Deactivation decelerates to rest; a stop that takes longer than this is reported and abandoned
# (the joint trajectory controller then holds the last point it got).
BRAKE_TIMEOUT_S = 2.0
# Cycles in a row whose brake itself failed before the node gives up (error state).
FATAL_AFTER = 3
# ~/resume answers once the next cycle ran, or after this long.
RESUME_WAIT_S = 1.0
# Failed decodes are logged at most this often (a malformed stream arrives at 100-1000 Hz).
LOG_EVERY_S = 2.0


class PolicyNode(LifecycleNode):
    """Managed node running `SteeringController` at `command_rate_hz`."""

    def __init__(self, node_name: str = 'policy_node', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.state = 'unconfigured'
        self.controller: SteeringController | None = None
        self.settings: NodeSettings | None = None
        self.inputs: ObservationInputs | None = None
        self.stop = threading.Event()
        self.faults = FaultBoard()
        self.missed = 0
        self._thread: threading.Thread | None = None
        self._loops: ControlLoops | None = None
        self._commands: CommandOutput | None = None
        self._telemetry: TelemetryOutput | None = None
        self._readiness: ReadinessInput | None = None
        self._wire: OtherPublishers | None = None
        self._wire_timer = None
        self._pending_lock = threading.Lock()
        self._pending_head: tuple[Any, str] | None = None
        self._pending_seed: int | None = None
        self._pending_resume = False
        self._resume_waiters: list[tuple[list[str], threading.Event]] = []
        self._resume_cycle = False
        self._restarts_seen = 0
        self._unheard_hold = False     # holds went unsent to a silent robot (see _step)
        self._answered_ns = 0          # arrival of the newest joint state a cycle answered
        self._node_hold = ''
        self._head_path = NO_HEAD
        self._last_swap_error = ''
        self._error_reason = ''
        self._reset_counters()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        # Status on steady time: it must keep coming when a sim clock stands still.
        self._status = StatusOutput(self)
        self._status_timer = self.create_timer(1.0, self.publish_status, clock=steady)
        self._steady = steady
        self._resume_srv = self.create_service(Trigger, '~/resume', self._on_resume)
        # The control thread asks for the error transition through this (the executor runs it).
        self._fatal_gc = self.create_guard_condition(self._enter_error_state)

    # ================================================================ parameters
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            reason = check_value(p.name, p.value, self.state)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for p in params:
            if p.name == 'steering_head' and self.controller is not None:
                reason = self._load_head(p.value)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
            if p.name == 'noise_seed' and self.controller is not None:
                self._queue_reseed(p.value)
        return SetParametersResult(successful=True)

    def _loop_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _queue_reseed(self, seed: int) -> None:
        """Reseed now when no loop runs, else hand it to the control thread (applied before a cycle)."""
        if self._loop_running():
            with self._pending_lock:
                self._pending_seed = seed
        else:
            self.controller.reseed(seed)

    def _load_head(self, path: str) -> str:
        """Load + validate a head (slow: session creation, warm-up) and queue it; '' if accepted."""
        if path == NO_HEAD:
            head = None
        else:
            started = time.monotonic()
            try:
                head = self.controller.load_head(path)
            except Exception as exc:  # noqa: BLE001 - every refusal reason goes back to the caller
                self._last_swap_error = f'{type(exc).__name__}: {exc}'
                self.get_logger().error(f'steering head {path} refused: {self._last_swap_error}')
                self.publish_status()
                return f'steering head refused: {self._last_swap_error}'
            self.get_logger().info(
                f'steering head {head.model_id} loaded in {1e3 * (time.monotonic() - started):.1f} ms')
        self._last_swap_error = ''
        if self._loop_running():
            with self._pending_lock:
                self._pending_head = (head, path)
        else:
            self._install(head, path)
        return ''

    def _install(self, head: Any, path: str) -> None:
        self.controller.install_head(head)
        self._head_path = path
        self._status_dirty = True

    def _parameter_values(self) -> dict[str, Any]:
        names = [*PARAMETERS, 'use_sim_time']
        return {name: self.get_parameter(name).value for name in names}

    # ================================================================ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            p = self._parameter_values()
            config = controller_config(p)
            settings = NodeSettings.from_parameters(p)
            controller = SteeringController(config)
            controller.configure()
            wanted_rate = p['policy_rate_hz']
            if wanted_rate > 0.0 and not math.isclose(wanted_rate, controller.policy_rate_hz):
                raise ValueError(f'`policy_rate_hz` must equal the decoder manifest\'s '
                                 f'({controller.policy_rate_hz}) or be 0, got {wanted_rate}')
        except Exception as exc:  # noqa: BLE001 - any reason is logged and reported as FAILURE
            self.get_logger().error(f'configure failed: {type(exc).__name__}: {exc}')
            return TransitionCallbackReturn.FAILURE
        self.controller, self.settings = controller, settings
        self._head_path = p['steering_head']
        self._error_reason = ''
        # The time the last cycle ran at, and the node's clock then (sim time gates idle cycles).
        self._last_cycle_now = self._last_clock_s = -math.inf
        self._build_io(config.robot, p)
        self.state = 'inactive'
        self.get_logger().info(
            f'configured: decoder {controller.decoder_id}, head {controller.head_id}, '
            f'providers {controller.providers}, {config.command_rate_hz:g} Hz, trigger {settings.trigger}')
        self.publish_status()
        return TransitionCallbackReturn.SUCCESS

    def _build_io(self, robot: str, p: dict[str, Any]) -> None:
        s = self.settings
        self._commands = CommandOutput(self, arm_joint_names(robot), s.command_topic,
                                       p['gripper_command_topic'], s.period_s)
        self._telemetry = TelemetryOutput(self)
        sources = set(self.controller.required_sources)
        poses = {src: p[param] for src, param in POSE_SOURCES if src in sources}
        self.inputs = ObservationInputs(
            self, robot, s.joint_states_topic, poses,
            # No future-stamp check under sim time: the sim's clock is the reference and the
            # node's copy of it lags by design (a lock-step sim stamps a state before the node
            # has seen the /clock of that step, or any /clock at all after a restart).
            StateWatchdog(s.watchdog_timeout_s, None if s.sim_time else s.future_tolerance_s),
            self.now_s, s.sim_time)
        self._restarts_seen = 0
        self._unheard_hold = False
        self._answered_ns = 0
        self._uses_velocity = 'arm_joint_velocities' in sources
        self._uses_gripper = 'gripper_width' in sources
        self._readiness = (ReadinessInput(self, s.readiness_topic, s.readiness_timeout_s)
                           if s.readiness_topic else None)
        self._wire = OtherPublishers(self, self.inputs.joint_topic, self._commands.arm.topic_name)
        self.faults = FaultBoard(s.auto_resume_after_stale)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        report = self.startup_report(wait_s=min(ACTIVATE_WAIT_S, self.settings.startup_timeout_s))
        if not report.ok:
            reason = f'activation refused: {report.summary()}'
            self.get_logger().error(reason)
            self.report_refusal(reason)
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(report.summary())
        self._reset_counters()
        # Afresh from the measured pose: the arm may have moved since the last command (a new
        # episode, guiding mode), so neither chunks nor the filter's history carry over. Every
        # latched fault is released: activation is the other way to resume.
        self.controller.reset()
        self.faults.clear()
        self.inputs.restart_fault()  # the checks just passed on states from this simulation
        self.inputs.restart = ''
        self._applied_faults = self.faults.generation
        with self._pending_lock:
            self._pending_resume = False
        self.stop.clear()
        self._loops = ControlLoops(self)
        self._thread = threading.Thread(target=self._control_thread, name='control', daemon=True)
        self.state = 'active'
        self._thread.start()
        if self._wire_timer is None and self.settings.publisher_check_hz > 0.0:
            self._wire_timer = self.create_timer(1.0 / self.settings.publisher_check_hz,
                                                 self._check_wire, clock=self._steady)
        self.get_logger().info('active: control loop started')
        self.publish_status()
        return super().on_activate(state)

    def startup_report(self, wait_s: float = 0.0) -> StartupReport:
        """Every start-up check; waits up to `wait_s` for a fresh joint state first.

        Only while no control loop runs: this thread then takes the joint states (and, under sim
        time, /clock: this runs in the executor, so the node's clock stands still meanwhile and
        the checks use the newest /clock taken here).
        """
        c, cfg, s = self.controller, self.controller.config, self.settings
        inp = self.inputs
        # Re-armed: what the watchdog saw before this activation says nothing about now. The
        # newest sample stays (a lock-step sim publishes one state and waits for its command).
        inp.watchdog.reset()
        if inp.sample is not None:
            inp.watchdog.feed(inp.received_s, inp.sample.stamp_s)
        inp.take()
        give_up = time.monotonic() + wait_s
        while (inp.sample is None or (s.sim_time and math.isnan(inp.sim_clock_s))
               or inp.clock_s() - inp.received_s > s.startup_age_s):
            remaining = give_up - time.monotonic()
            if remaining <= 0.0:
                break
            if inp.wait(min(remaining, CLOCK_POLL_S) if s.sim_time else remaining) or s.sim_time:
                inp.take()
        now = inp.clock_s()
        limits = RobotLimits.for_robot(cfg.robot)
        sample = inp.sample
        report = run_startup_checks(
            now_s=now, joint_state_stamp_s=inp.received_s if sample is not None else None,
            joint_positions=sample.q if sample is not None else None, q_min=limits.q_min, q_max=limits.q_max,
            robot_mode=None, robot_mode_required=False,
            decoder_id=c.decoder_id, head_id=c.head_id, head_requested=self._head_path != NO_HEAD,
            requested_providers=cfg.providers, active_providers=c.providers,
            allow_provider_fallback=cfg.allow_provider_fallback,
            max_joint_state_age_s=s.startup_age_s, joint_margin_rad=cfg.joint_margin_rad)
        # Robot mode comes from a supervisor's readiness here, never from franka_msgs.
        report.results = [r for r in report.results if r.name != 'robot mode']
        fresh = report.results[0]
        if not fresh.ok:
            report.results[0] = CheckResult(fresh.name, False, f'{fresh.detail} (on {inp.joint_topic})')
        if inp.error:
            report.results[0] = CheckResult('joint_states fresh', False, inp.error)
        elif report.results[0].ok and (frozen := inp.watchdog.check(now)):
            report.results[0] = CheckResult('joint_states fresh', False, frozen)
        if inp.pose_error:
            report.results.append(CheckResult('poses finite', False, inp.pose_error))
        if self._readiness is not None:
            report.results.append(self._readiness.startup_check())
        others = self._wire.start()
        report.results.append(CheckResult('no other publishers', not others, others or 'none'))
        return report

    def missing_for_startup(self) -> str:
        """What activation would be refused for now ('' when nothing), without waiting."""
        report = self.startup_report(wait_s=0.0)
        return '' if report.ok else report.summary()

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_loop()
        self._stop_arm('deactivated')
        self.state = 'inactive'
        if self._error_reason:
            # The control thread gave up: ErrorProcessing, then on_error releases everything.
            return TransitionCallbackReturn.ERROR
        self.get_logger().info('inactive: control loop stopped, arm holds')
        self.publish_status()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.state = 'unconfigured'
        self.publish_status()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._thread is not None:
            self._stop_loop()
            self._stop_arm('shutdown')
        self._release()
        self.state = 'finalized'
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_loop()
        try:
            self._stop_arm('error')
        except Exception as exc:  # noqa: BLE001 - the release below must still happen
            self.get_logger().error(f'error: brake failed: {type(exc).__name__}: {exc}')
        self._release()
        self.state = 'unconfigured'
        reason = self._error_reason or 'a transition failed'
        self.get_logger().error(f'error state: {reason}; the node is unconfigured (configure to start again)')
        self.report_refusal(f'error: {reason}')
        return TransitionCallbackReturn.SUCCESS

    def _enter_error_state(self) -> None:
        """Executor thread: the control thread could not go on; deactivate -> ERROR -> on_error."""
        if self.state == 'active' and self._error_reason:
            self.trigger_deactivate()

    def _release(self) -> None:
        if self.inputs is not None:
            self.inputs.destroy()
        self.inputs = None
        if self._wire_timer is not None:
            self.destroy_timer(self._wire_timer)
            self._wire_timer = None
        if self._readiness is not None:
            self._readiness.destroy()
            self._readiness = None
        for out in (self._commands, self._telemetry):
            if out is not None:
                out.destroy()
        self._commands = self._telemetry = None
        if self.controller is not None:
            self.controller.cleanup()
        self.controller = None
        with self._pending_lock:
            self._pending_head = None
            self._pending_seed = None
            self._pending_resume = False

    def _stop_loop(self) -> None:
        self.stop.set()
        if self.inputs is not None:
            self.inputs.wake()
        if self._loops is not None:
            self._loops.wake()
        if self._thread is not None:
            self._thread.join(5.0)
            if self._thread.is_alive():
                self.get_logger().error('control thread did not stop within 5 s')
        self._thread = None

    # ================================================================ resume
    def _on_resume(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Release latched holds; refused while a cause is present. Answers after the first
        cycle that followed (or RESUME_WAIT_S): a fault the core finds again latches again."""
        if self.state != 'active':
            response.success, response.message = False, (
                f'the node is {self.state}: nothing to resume (activation starts afresh from the '
                'measured pose)')
        elif not self.faults.holding and not self.controller.latched:
            # Not holding: a resume would restart the command from the measured pose mid-motion.
            response.success, response.message = True, 'not holding: nothing to resume'
        else:
            refusal = self.faults.resume()
            if refusal:
                response.success, response.message = False, f'resume refused: {refusal}'
            else:
                outcome: list[str] = []
                done = threading.Event()
                # Only a steady-time loop cycles without the executor: under sim time /clock
                # comes through this very thread, and lock-step cycles wait for the sim.
                waits = self.settings.trigger == 'timer' and not self.settings.sim_time
                with self._pending_lock:
                    self._pending_resume = True
                    if waits:
                        self._resume_waiters.append((outcome, done))
                if not waits:
                    response.success, response.message = True, (
                        'resume queued: the next command starts from the measured pose')
                elif not done.wait(RESUME_WAIT_S):
                    response.success, response.message = True, (
                        f'resume queued: no control cycle ran within {RESUME_WAIT_S} s (no joint '
                        'states?); the next command starts from the measured pose')
                elif outcome[0]:
                    response.success, response.message = False, f'resume refused: {outcome[0]}'
                else:
                    response.success, response.message = True, (
                        'resumed: the next command starts from the measured pose')
        # One call site per severity: rclpy refuses a call site whose severity changes.
        if response.success:
            self.get_logger().info(f'~/resume: {response.message}')
        else:
            self.get_logger().warning(f'~/resume: {response.message}')
        return response

    def _report_resume(self, result: CycleResult) -> None:
        """Control thread, first cycle after a resume: tell the waiting service how it went."""
        if not self._resume_cycle:
            return
        self._resume_cycle = False
        reason = f'the core latched again: {result.safety_reason}' if result.latched else ''
        with self._pending_lock:
            waiters, self._resume_waiters = self._resume_waiters, []
        for outcome, done in waiters:
            outcome.append(reason)
            done.set()

    # ================================================================ the control thread
    def _control_thread(self) -> None:
        try:
            self._loops.run()
        except Exception as exc:  # noqa: BLE001 - the loop must never die silently
            self._give_up(f'control loop crashed: {type(exc).__name__}: {exc}')

    def _give_up(self, reason: str) -> None:
        """The control thread cannot go on: brake where possible, then the error transition."""
        self.get_logger().fatal(reason)
        self._error_reason = reason
        self._fatal_gc.trigger()

    def take_inputs(self) -> bool:
        try:
            return self.inputs.take()
        except Exception as exc:  # noqa: BLE001 - a message that breaks the decoder holds
            self.inputs.error = f'{self.inputs.joint_topic}: cannot be read: {type(exc).__name__}: {exc}'
            return False

    def cycle(self, late_s: float) -> None:
        """One control cycle: faults, the controller's step, command, telemetry. Never raises."""
        started = time.perf_counter()
        if late_s > self.settings.period_s:
            self.missed += 1
        self.cycles += 1
        try:
            result, reason, sent = self._step()
            self._brake_failures = 0
            self.faults.report('cycle', '')
        except Exception as exc:  # noqa: BLE001 - a fault in a cycle must end in a hold
            reason = f'cycle error: {type(exc).__name__}: {exc}'
            self.faults.report('cycle', reason)
            result, sent = None, None
            try:
                result, sent = self._brake(reason)
                self._brake_failures = 0
            except Exception as brake_exc:  # noqa: BLE001
                self._brake_failures += 1
                if self._brake_failures >= FATAL_AFTER:
                    self.stop.set()
                    self._give_up(f'{reason}; braking failed too ({type(brake_exc).__name__}: '
                                  f'{brake_exc}) {FATAL_AFTER} cycles in a row')
                    return
        self._log_faults(reason if result is None or result.held else '')
        try:
            inp = self.inputs
            self._publish_telemetry(result, reason, sent, inp.stamp_msg if inp.sample is not None else None,
                                    started)
        except Exception as exc:  # noqa: BLE001 - telemetry must not stop the commands
            self._log_throttled(f'telemetry not published: {type(exc).__name__}: {exc}')

    def _apply_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending_head = self._pending_head, None
            seed, self._pending_seed = self._pending_seed, None
            resume, self._pending_resume = self._pending_resume, False
        c = self.controller
        if pending is not None:
            self._install(*pending)
        if seed is not None:
            c.reseed(seed)
        if resume:
            c.resume()
            self._applied_faults = self.faults.generation
            self._resume_cycle = True

    def _step(self) -> tuple[CycleResult, str, Any]:
        self._apply_pending()
        c, inp, faults = self.controller, self.inputs, self.faults
        now = self._last_clock_s = self.now_s()
        sample = inp.sample
        if self.settings.sim_time and sample is not None and math.isfinite(inp.received_s):
            now = max(now, inp.received_s)  # see inputs: receipt times under sim time
        self._last_cycle_now = now
        # Every refusal since the last cycle holds in this one, even when a good message followed.
        faults.report('input', inp.fault())
        faults.report('restart', inp.restart_fault())
        if inp.restarts != self._restarts_seen:
            # The restarted simulation's arm is not where the commands left the old one.
            self._restarts_seen = inp.restarts
            c.forget_commands()
        faults.report('watchdog', inp.watchdog.check(now), stale=True)
        if self._readiness is not None:
            reason, stale = self._readiness.fault()
            faults.report('readiness', reason, stale=stale)
        if sample is not None:
            try:
                self._feed(sample, inp)
            except Exception as exc:  # noqa: BLE001 - a refused observation must end in a hold
                faults.report('input', f'observation refused: {exc}')
        # One snapshot per cycle: the executor thread may report a fault meanwhile (next cycle).
        generation = faults.generation
        hold_reason = faults.reason()
        if generation != self._applied_faults:
            # The latched set changed: latch the core's hold, or release the one this node put
            # there (auto-resumed staleness); a fault the core latched itself stays.
            self._applied_faults = generation
            if hold_reason:
                if not c.latched:
                    self._node_hold = hold_reason
                c.hold(hold_reason)
            elif c.latched and c.holding == self._node_hold and not c.own_fault:
                c.resume()
        # A good joint state this node has not answered yet: a lock-step sim waits for exactly
        # this answer, however long ago (wall time) it was sent.
        unanswered = sample is not None and inp.arrival_ns != self._answered_ns
        self._answered_ns = inp.arrival_ns
        if self._unheard_hold and unanswered:
            # A good joint state after holds went unsent (malformed ones say nothing of where
            # the arm is, so they do not count).
            self._unheard_hold = False
            c.rejoin(sample.q)
        heard = unanswered or (not self._unheard_hold and self._hears_robot())
        was_at_rest = c.safety.at_rest
        if sample is not None:
            result = c.step(now, sample.q, sample.stamp_s)
        else:
            result = c.step(now, np.full(ARM_DOF, math.nan))
        reason = hold_reason if hold_reason and result.held else result.safety_reason
        self._report_resume(result)
        if result.held and not heard and was_at_rest:
            # At rest (the brake's last command went out) and nothing heard from the robot: a
            # hold sent now would meet a robot that may come back elsewhere (a restarted driver or
            # simulation) and pull its arm to where the old one stopped. The driver holds its last
            # target by itself meanwhile.
            self._unheard_hold = True
            return result, reason, None
        return result, reason, self._publish_commands(result)

    def _hears_robot(self) -> bool:
        """A joint state came within the watchdog time-out, good or malformed (steady time: the
        robot's own silence, whatever the clock does; see inputs.heard_ns)."""
        return time.monotonic_ns() - self.inputs.heard_ns <= self.settings.watchdog_timeout_s * 1e9

    def _feed(self, sample: Any, inp: ObservationInputs) -> None:
        c, stamp = self.controller, inp.received_s
        c.observe('arm_joint_positions', sample.q, stamp)
        if self._uses_velocity and sample.velocity is not None:
            c.observe('arm_joint_velocities', sample.velocity, stamp)
        if self._uses_gripper and sample.gripper_width is not None:
            c.observe('gripper_width', sample.gripper_width, stamp)
        for source, (xyz, received) in inp.poses.items():
            c.observe(source, xyz, received)

    def _brake(self, reason: str) -> tuple[CycleResult, Any]:
        """A brake command after a cycle error: the core's hold from the last good measurement."""
        c, inp = self.controller, self.inputs
        c.hold(reason)
        self._applied_faults = self.faults.generation
        sample = inp.sample
        if sample is not None:
            result = c.step(self.now_s(), sample.q, sample.stamp_s)
        else:
            result = c.step(self.now_s(), np.full(ARM_DOF, math.nan))
        return result, self._publish_commands(result)

    def _publish_commands(self, result: CycleResult) -> Any:
        """Gripper and arm command of a cycle; returns when the arm command went out, or None."""
        out, sim = self._commands, self.settings.sim_time
        grip = math.isfinite(result.gripper)
        # A lock-step sim (sim time) advances on the arm command, so the gripper goes first
        # there: after it, it would act one period later, depending on machine load. On the
        # robot the arm command is the one a control cycle waits for, so no other publish
        # goes before it.
        if grip and sim:
            out.send_gripper(result.gripper)
        sent = None
        if result.sendable:
            sent = out.send(result.command, self.controller.safety.velocity)
        if grip and not sim:
            out.send_gripper(result.gripper)
        return sent

    def _publish_telemetry(self, result: CycleResult | None, reason: str, sent: Any, obs_stamp: Any,
                           started: float) -> None:
        t = self._telemetry.publish(self.controller, self.cycles, result, reason, sent, obs_stamp, started)
        if t.safety_state != self._last_safety or t.safety_reason != self._last_reason or self._status_dirty:
            changed = t.safety_state != self._last_safety or self._status_dirty
            self._last_safety, self._last_reason = t.safety_state, t.safety_reason
            self._status_dirty = False
            if changed:
                self.publish_status()

    def _log_faults(self, reason: str) -> None:
        """Log a hold when it starts or its reason changes kind; throttled for fast bad streams."""
        if reason != self._logged_reason:
            if reason:
                self._log_throttled(f'holding: {reason}')
            elif self._logged_reason:
                self.get_logger().info(f'released the hold ({self._logged_reason})')
            self._logged_reason = reason

    def _log_throttled(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            suppressed = f' ({self._suppressed} similar messages suppressed)' if self._suppressed else ''
            self.get_logger().warning(text + suppressed)
            self._suppressed = 0
        else:
            self._suppressed += 1

    # ---------------------------------------------------------------- called by the loops
    def clock_stalled(self, reason: str) -> None:
        self.faults.report('clock', reason, stale=True)

    def sim_time_idle(self) -> bool:
        """Sim time has not moved on by more than a period since the last cycle: a lock-step sim
        still works on our command, or has advanced the period it answers, whose joint state it
        publishes after /clock (on a loaded machine the clock may be taken first; a cycle on the
        old state then would send one command too many)."""
        now = self.now_s()
        return self._last_clock_s <= now <= self._last_cycle_now + self.settings.period_s + 1e-6

    def note_idle_sim(self, for_s: float) -> None:
        if for_s > self.settings.watchdog_timeout_s and not self._last_reason.startswith('sim clock'):
            self._last_reason = (f'sim clock stalled: no joint state and /clock unchanged for '
                                 f'{for_s:.3f} s (lock-step: no command is due)')
            self.publish_status()

    # ================================================================ executor-side checks
    def _check_wire(self) -> None:
        if self.state != 'active' or self._wire is None:
            return
        reason = self._wire.check()
        if reason or self.faults.present('publisher'):
            self.faults.report('publisher', reason)

    # ================================================================ braking outside cycles
    def _stop_arm(self, reason: str) -> None:
        """Hold after the loop stopped: decelerate to rest (jerk-limited) or one hold at the measured pose.

        Runs in the calling (executor) thread with the loop already stopped, so the controller is
        touched by one thread only. Commands only, no telemetry: these periods are not control
        cycles of an episode.
        """
        c = self.controller
        if c is None or self._commands is None or self.inputs is None:
            return
        c.hold(reason)
        started = time.monotonic()
        deadline, sent = started, 0
        while True:
            self.take_inputs()  # the control thread has stopped: this thread takes them now
            sample = self.inputs.sample
            if not c.safety.jerk_limited:
                # Without jerk limiting there is no deceleration to stream: one command at the
                # measured pose, where the arm stands.
                if sample is not None:
                    self._commands.send(sample.q, np.zeros(ARM_DOF))
                    self.get_logger().info(f'{reason}: one hold command at the measured pose')
                else:
                    self.get_logger().warning(f'{reason}: no joint state to hold at; no command sent')
                return
            if sample is not None:
                result = c.step(self.now_s(), sample.q, sample.stamp_s)
            else:
                result = c.step(self.now_s(), np.full(ARM_DOF, math.nan))
            if not result.sendable:
                self.get_logger().warning(f'{reason}: no command was ever sent and no finite joint '
                                          'state to hold at; no command sent')
                return
            self._commands.send(result.command, c.safety.velocity)
            sent += 1
            if c.safety.at_rest:
                self.get_logger().info(f'{reason}: at rest after {sent} hold commands '
                                       f'({1e3 * (time.monotonic() - started):.0f} ms)')
                return
            if time.monotonic() - started > BRAKE_TIMEOUT_S:
                self.get_logger().error(f'{reason}: not at rest after {BRAKE_TIMEOUT_S} s '
                                        f'({sent} hold commands); the controller holds the last one')
                return
            deadline += self.settings.period_s
            time.sleep(max(0.0, deadline - time.monotonic()))

    # ================================================================ status
    def _reset_counters(self) -> None:
        self.cycles = 0
        self.missed = 0
        self._last_safety = -1
        self._last_reason = ''
        self._status_dirty = False
        self._logged_reason = ''
        self._last_log = -math.inf
        self._suppressed = 0
        self._brake_failures = 0
        self._applied_faults = self.faults.generation
        if hasattr(self, '_status'):
            self._status.reset_rate()

    @property
    def safety_reason(self) -> str:
        """Why the node last held or refused to activate ('' when it did not)."""
        return self._last_reason

    def report_refusal(self, reason: str) -> None:
        """Put a refusal (activation, autostart) into ~/status."""
        self._last_safety, self._last_reason = SAFETY_HOLD, reason
        self.publish_status()

    def publish_status(self) -> None:
        s = self.settings
        self._status.publish(
            state=self.state, c=self.controller, head_path='' if self._head_path == NO_HEAD else self._head_path,
            period_s=s.period_s if s is not None else 0.01, cycles=self.cycles, missed=self.missed,
            last_swap_error=self._last_swap_error, safety_state=self._last_safety,
            safety_reason=self._last_reason)

    def now_s(self) -> float:
        return seconds_of_ns(self.get_clock().now().nanoseconds)


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
                     help='configure, then activate once joint states (and readiness) arrive, '
                          'retrying until startup_timeout_s (for launches without a lifecycle manager)')
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

    spinner = threading.Thread(target=spin, name='executor', daemon=True)
    spinner.start()
    if opts.autostart:
        autostart(node, executor, stop)
    while not stop.wait(0.5):
        pass
    # Executor first, so no transition races the shutdown one; then the arm holds; then DDS.
    spinner.join(2.0)
    executor.shutdown(timeout_sec=1.0)
    if node.state != 'finalized':
        node.trigger_shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main()
