"""The whole steering cycle without ROS: measurement check -> observation -> policy -> chunk
execution -> safety filter.

The policy node is a thin shell around `SteeringController`: it feeds observations in with
`observe`, calls `step` once per command period and publishes what `CycleResult` says. Anything
that goes wrong inside a cycle turns into a HOLD with a reason; `step` never raises.

Holds come in two kinds. A *fault* (an implausible or malformed measurement, a non-finite
observation or command, an error inside the cycle, an observation gone stale unless
`resume_after_stale`, or an explicit `hold`) is latched: the arm brakes to rest and stays there
until `resume()` (or `reset()` on activation), because nothing that happened during the fault
says the arm may move again. A *wait* (an observation not received yet) releases by itself. After
every hold of either kind, once its brake is at rest, the next command starts from the measured
joints, not from the command history the arm may no longer stand at.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from .chunking import ChunkExecutor
from .manifest import ACTION_MODES, ManifestError
from .measurement import MeasurementConfig, MeasurementMonitor, PlausibilityFault
from .observation import MissingObservation, ObservationAssembler, ObservationError, StaleObservation
from .policy import (
    DEFAULT_GUARD,
    NO_HEAD,
    LoadedModel,
    PolicyOutput,
    SteeredPolicy,
    check_head_matches,
    check_head_outputs,
    load_model,
)
from .robot import ARM_DOF, RobotLimits
from .safety import SAFETY_HOLD, SAFETY_LIMITED, SafetyFilter, SafetyResult

__all__ = ["ARM_DOF", "BRAKING_FIRST", "NO_HEAD", "ControllerConfig", "CycleResult", "SteeringController"]

BRAKING_FIRST = "braking to rest before restarting from the measured joints"


@dataclass
class ControllerConfig:
    """Every runtime knob of the steering cycle; validated on construction.

    Attributes:
        decoder_path: path of the decoder `.onnx` (its manifest `.json` lies beside it).
        head_path: path of the steering head `.onnx`; empty for the frozen base policy (w = eps).
        robot: "fr3" or "panda"; must equal the manifests' robot and selects the limit table.
        providers: ONNX Runtime execution providers in priority order.
        allow_provider_fallback: accept a session whose active providers differ from the request
            (e.g. CPU when CUDA was asked for); otherwise configure() refuses.
        intra_op_threads: ONNX Runtime intra-op threads per session (1 keeps the tail short).
        command_rate_hz: rate at which step() is called and commands are sent.
        execute_steps: actions of a chunk executed before the next chunk is inferred (k <= T_a).
        temporal_ensembling: blend overlapping chunks with exponential weights (ACT).
        ensemble_decay: weight decay m of temporal ensembling, w_i = exp(-m * i), i = 0 oldest.
        max_observation_age_s: an observation older than this makes the cycle hold.
        resume_after_stale: a hold caused by an observation going stale releases by itself once
            observations are fresh again. Off by default: a sensor or link that dropped out may
            come back wrong, so a person decides (resume()).
        guard: run-time trust-region guard for lpds heads: if guard > 0 and ||Delta||^2 exceeds
            guard * trust_region_delta, Delta is scaled back onto that bound (reported as
            CycleResult.guard_scale < 1). 0 disables it. Default DEFAULT_GUARD (6): see
            `policy.DEFAULT_GUARD` for why it leaves the shipped head untouched.
        measurement_limit_tolerance_rad, measurement_speed_factor, tracking_bound_rad: bounds of
            the run-time plausibility checks of the measured joints (`measurement.MeasurementConfig`;
            tracking_bound_rad <= 0 disables the tracking check).
        seed: seed of the base noise generator (reproducible eps draws).
        joint_margin_rad: distance kept from the joint position limits.
        max_step_rad: largest change of any joint command between two command periods.
        velocity_scale: fraction of the robot's joint velocity limits the filter allows.
        acceleration_scale: fraction of the robot's joint acceleration limits the filter allows.
        jerk_scale: fraction of the robot's joint jerk limits the filter allows; None or 0 turns
            jerk limiting off. With it on, streamed targets have bounded jerk (a Franka stops
            with a discontinuity reflex otherwise) and every hold decelerates to rest instead of
            stopping dead.
        workspace_min: lower corner (x, y, z) of the TCP workspace box in the base frame (m).
        workspace_max: upper corner (x, y, z) of the TCP workspace box in the base frame (m).
        warmup_runs: inferences run at configure() so the first control cycle is not slow.
    """

    decoder_path: str
    head_path: str = ""
    robot: str = "fr3"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    allow_provider_fallback: bool = False
    intra_op_threads: int = 1
    command_rate_hz: float = 100.0
    execute_steps: int = 4
    temporal_ensembling: bool = False
    ensemble_decay: float = 0.01
    max_observation_age_s: float = 0.2
    resume_after_stale: bool = False
    guard: float = DEFAULT_GUARD
    seed: int = 0
    joint_margin_rad: float = 0.05
    max_step_rad: float = 0.02
    velocity_scale: float = 0.5
    acceleration_scale: float = 0.5
    jerk_scale: float | None = 0.5
    workspace_min: tuple[float, float, float] = (0.2, -0.6, 0.02)
    workspace_max: tuple[float, float, float] = (0.85, 0.6, 0.9)
    warmup_runs: int = 10
    measurement_limit_tolerance_rad: float = 0.01
    measurement_speed_factor: float = 1.5
    tracking_bound_rad: float = 0.25

    def __post_init__(self) -> None:
        def bad(name: str, expected: str, got: object) -> ValueError:
            return ValueError(f"`{name}` must be {expected}, got {got!r}")

        if not isinstance(self.decoder_path, str) or not self.decoder_path:
            raise bad("decoder_path", "a non-empty path to a decoder .onnx", self.decoder_path)
        if self.head_path is None:
            self.head_path = ""
        if not isinstance(self.head_path, str):
            raise bad("head_path", "a path string (empty for no head)", self.head_path)
        if self.robot not in RobotLimits.ROBOTS:
            raise bad("robot", f"one of {sorted(RobotLimits.ROBOTS)}", self.robot)
        self.providers = tuple(self.providers)
        if not self.providers or not all(isinstance(p, str) and p for p in self.providers):
            raise bad("providers", "a non-empty list of execution provider names", self.providers)
        if not isinstance(self.intra_op_threads, int) or self.intra_op_threads < 1:
            raise bad("intra_op_threads", "an integer >= 1", self.intra_op_threads)
        if not _finite(self.command_rate_hz) or not 1.0 <= self.command_rate_hz <= 1000.0:
            raise bad("command_rate_hz", "in [1, 1000] Hz", self.command_rate_hz)
        if not isinstance(self.execute_steps, int) or self.execute_steps < 1:
            raise bad("execute_steps", "an integer >= 1", self.execute_steps)
        if not _finite(self.ensemble_decay) or self.ensemble_decay < 0.0:
            raise bad("ensemble_decay", ">= 0", self.ensemble_decay)
        if not _finite(self.max_observation_age_s) or self.max_observation_age_s <= 0.0:
            raise bad("max_observation_age_s", "> 0 s", self.max_observation_age_s)
        if not isinstance(self.resume_after_stale, bool):
            raise bad("resume_after_stale", "a bool", self.resume_after_stale)
        if not _finite(self.guard) or self.guard < 0.0:
            raise bad("guard", ">= 0 (0 disables the run-time trust-region guard)", self.guard)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "an integer >= 0", self.seed)
        if not _finite(self.joint_margin_rad) or not 0.0 <= self.joint_margin_rad <= 0.3:
            raise bad("joint_margin_rad", "in [0, 0.3] rad", self.joint_margin_rad)
        if not _finite(self.max_step_rad) or not 0.0 < self.max_step_rad <= 0.2:
            raise bad("max_step_rad", "in (0, 0.2] rad", self.max_step_rad)
        for name in ("velocity_scale", "acceleration_scale"):
            value = getattr(self, name)
            if not _finite(value) or not 0.0 < value <= 1.0:
                raise bad(name, "in (0, 1]", value)
        if self.jerk_scale is not None and not isinstance(self.jerk_scale, bool) and self.jerk_scale == 0:
            self.jerk_scale = None
        if self.jerk_scale is not None and (not _finite(self.jerk_scale) or not 0.0 < self.jerk_scale <= 1.0):
            raise bad("jerk_scale", "in (0, 1], or None / 0 to turn jerk limiting off", self.jerk_scale)
        for name in ("workspace_min", "workspace_max"):
            value = tuple(getattr(self, name))
            if len(value) != 3 or not all(_finite(v) for v in value):
                raise bad(name, "3 finite numbers (x, y, z) in metres", getattr(self, name))
            setattr(self, name, tuple(float(v) for v in value))
        if not all(lo < hi for lo, hi in zip(self.workspace_min, self.workspace_max, strict=True)):
            raise bad("workspace_min", f"below `workspace_max` {self.workspace_max} on every axis",
                      self.workspace_min)
        if not isinstance(self.warmup_runs, int) or self.warmup_runs < 0:
            raise bad("warmup_runs", "an integer >= 0", self.warmup_runs)
        if not _finite(self.measurement_limit_tolerance_rad) or not 0.0 <= self.measurement_limit_tolerance_rad <= 0.1:
            raise bad("measurement_limit_tolerance_rad", "in [0, 0.1] rad", self.measurement_limit_tolerance_rad)
        if not _finite(self.measurement_speed_factor) or not 1.0 <= self.measurement_speed_factor <= 10.0:
            raise bad("measurement_speed_factor", "in [1, 10]", self.measurement_speed_factor)
        if not _finite(self.tracking_bound_rad) or self.tracking_bound_rad > 1.0:
            raise bad("tracking_bound_rad", "<= 1 rad (<= 0 disables the tracking check)",
                      self.tracking_bound_rad)

    def safety_filter(self) -> SafetyFilter:
        """A fresh safety filter with this configuration's robot limits, rate and margins."""
        return SafetyFilter(RobotLimits.for_robot(self.robot), self.command_rate_hz,
                            joint_margin=self.joint_margin_rad, max_step=self.max_step_rad,
                            velocity_scale=self.velocity_scale, acceleration_scale=self.acceleration_scale,
                            jerk_scale=self.jerk_scale, workspace_min=self.workspace_min,
                            workspace_max=self.workspace_max)

    def measurement_monitor(self) -> MeasurementMonitor:
        """A fresh plausibility monitor for this configuration's robot and bounds."""
        return MeasurementMonitor(RobotLimits.for_robot(self.robot), MeasurementConfig(
            limit_tolerance_rad=self.measurement_limit_tolerance_rad,
            speed_factor=self.measurement_speed_factor, tracking_bound_rad=self.tracking_bound_rad))


@dataclass
class CycleResult:
    """What one control cycle did: everything the node publishes as telemetry and command.

    `command` and `gripper` are safe to send whenever they are finite: on HOLD they are the next
    point of the brake from the last command (or the measured position when no command was sent
    yet). `command` is NaN only when no finite reference exists at all (no command was ever sent
    and no plausible measurement ever arrived): then nothing must be sent. `latched` says the hold
    stays until resume(); `fault` is the fault found in *this* cycle ("" when the cycle only kept
    an earlier latched hold), so a caller can refuse a resume while the cause persists.
    `velocity` is the command's velocity under the filter (rad/s), for the trajectory point sent
    with it.
    """

    command: np.ndarray
    gripper: float
    safety_state: int
    safety_reason: str
    replanned: bool = False
    chunk_index: int = 0
    chunk_count: int = 0
    inference_ms: float = math.nan
    observation_age_ms: float = math.nan
    observation_stamp_s: float = math.nan
    delta_sq_norm: float = math.nan
    guard_scale: float = math.nan
    latent_norm: float = math.nan
    latched: bool = False
    velocity: np.ndarray | None = None
    fault: str = ""

    @property
    def held(self) -> bool:
        """The cycle refused to steer (SAFETY_HOLD): the command brakes or stands still."""
        return self.safety_state == SAFETY_HOLD

    @property
    def limited(self) -> bool:
        """The command was changed to respect a limit (SAFETY_LIMITED)."""
        return self.safety_state == SAFETY_LIMITED

    @property
    def sendable(self) -> bool:
        """The command holds finite joint positions (else nothing is to be sent this cycle)."""
        return bool(np.all(np.isfinite(self.command)))


@dataclass
class _Layout:
    """Index ranges resolved once at configure time, so the cycle does no name lookups."""

    arm_action: slice
    gripper_action: int | None
    arm_observation: slice | None
    gripper_observation: int | None = None
    extra: dict[str, slice] = field(default_factory=dict)


class SteeringController:
    """Runs the steering cycle for one decoder and an optional (hot-swappable) head.

    Lifecycle: `configure()` -> repeated `observe()` / `step()` -> `cleanup()`. Faults and
    `hold(reason)` latch a hold until `resume()`; `reset()` starts afresh (activation, a new
    episode). Head swapping: `load_head(path)` validates off the control loop (raises with a
    reason); `install_head(model)` swaps it in between two cycles.
    """

    def __init__(self, config: ControllerConfig) -> None:
        self.config = config
        self.decoder: LoadedModel | None = None
        self.head: LoadedModel | None = None
        self.policy: SteeredPolicy | None = None
        self.assembler: ObservationAssembler | None = None
        self.executor: ChunkExecutor | None = None
        self.safety: SafetyFilter | None = None
        self.measurement: MeasurementMonitor | None = None
        self.chunk_count = 0
        self.head_swaps = 0
        self.guard_scaled_chunks = 0
        self._latched_hold: str = ""
        self._own_fault = ""  # a fault the core found itself while latched (not a caller's hold())
        self._layout: _Layout | None = None
        self._last_output: PolicyOutput | None = None
        self._last_sent: np.ndarray | None = None
        self._restart_from_measured = False

    # ------------------------------------------------------------------ set-up and tear-down
    def configure(self) -> None:
        """Load and validate the decoder (and head), build every stage and warm the sessions up.

        Raises:
            ManifestError: a manifest is invalid or the head does not belong to the decoder.
            HeadRefused: the head's outputs at load time are not finite or far off its trust region.
            ProviderError: the requested execution providers are not what the session runs on.
            ValueError: the models do not fit this controller (robot, action layout, chunk).
        """
        cfg = self.config
        decoder = load_model(cfg.decoder_path, "decoder", cfg.providers, cfg.allow_provider_fallback,
                             cfg.intra_op_threads, cfg.warmup_runs)
        m = decoder.manifest
        if m.robot != cfg.robot:
            raise ManifestError(f"`robot` of {cfg.decoder_path} must equal the controller's "
                                f"({cfg.robot!r}), got {m.robot!r}")
        if cfg.execute_steps > m.chunk_length:
            raise ValueError(f"`execute_steps` ({cfg.execute_steps}) must be <= the decoder's "
                             f"`chunk_length` ({m.chunk_length})")
        layout = _resolve_layout(decoder)
        head = self.load_head(cfg.head_path, decoder) if cfg.head_path else None

        self.decoder, self.head, self._layout = decoder, head, layout
        self.policy = SteeredPolicy(decoder, head, guard=cfg.guard, seed=cfg.seed)
        self.assembler = ObservationAssembler(m, cfg.max_observation_age_s)
        self.executor = ChunkExecutor(m.chunk_length, cfg.execute_steps, m.policy_rate_hz,
                                      cfg.command_rate_hz,
                                      ensemble_decay=cfg.ensemble_decay if cfg.temporal_ensembling
                                      else None)
        self.safety = cfg.safety_filter()
        self.measurement = cfg.measurement_monitor()
        # Warm the whole policy path (normalisation, head, decoder) on a plausible observation.
        probe = np.asarray(self.assembler.mean_raw_observation(), dtype=np.float64)
        for _ in range(cfg.warmup_runs):
            self.policy.infer(probe, self._zero_images())
        self.policy.reseed(cfg.seed)
        self.chunk_count = 0
        self.guard_scaled_chunks = 0
        self._unlatch()
        self._last_output = None
        self._last_sent = None
        self._restart_from_measured = False

    def _zero_images(self) -> dict[str, np.ndarray]:
        return {im.name: np.zeros((im.channels, *im.output_hw), dtype=np.float32)
                for im in self.decoder.manifest.observation.images}

    def cleanup(self) -> None:
        """Release sessions and state; configure() may be called again afterwards."""
        self.policy = self.decoder = self.head = None
        self.assembler = self.executor = self.safety = self.measurement = None
        self._layout = None
        self._last_output = None
        self._last_sent = None

    @property
    def configured(self) -> bool:
        return self.policy is not None

    # ------------------------------------------------------------------ inputs
    def observe(self, source: str, value: np.ndarray | float, stamp_s: float) -> None:
        """Store the newest value of one observation source (e.g. "arm_joint_positions")."""
        if self.assembler is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        self.assembler.update(source, value, stamp_s)

    def observe_image(self, name: str, frame: np.ndarray, stamp_s: float) -> None:
        """Preprocess and store a camera frame for the image input `name` (call from the callback)."""
        if self.assembler is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        self.assembler.update_image(name, frame, stamp_s)

    @property
    def required_sources(self) -> tuple[str, ...]:
        """Sources the decoder's observation layout needs (what the node must subscribe to)."""
        if self.assembler is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        return self.assembler.required_sources

    def observation(self, now_s: float) -> np.ndarray:
        """The raw observation (manifest order) a replan at `now_s` would infer from (a copy).

        Raises:
            ObservationError: a source is missing, stale or not finite (naming it).
        """
        if self.assembler is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        return np.array(self.assembler.assemble(now_s))

    def needs_replan(self, now_s: float) -> bool:
        """True when the cycle at `now_s` will infer a new chunk (none running, or it is due)."""
        if self.executor is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        return self.executor.needs_replan(now_s)

    # ------------------------------------------------------------------ the cycle
    def step(self, now_s: float, measured_q: np.ndarray, measured_stamp_s: float | None = None) -> CycleResult:
        """Run one control cycle at time `now_s` with the arm's measured joint positions.

        `measured_stamp_s` is the reading's own stamp (the JointState header, same clock as
        `now_s`); the speed check judges motion between readings by it. None: `now_s` (callers
        that step once per fresh reading, like the sim loops). Pass the same stamp again when no
        new reading came: a repeated reading is recognised as such. A stamp more than
        `MeasurementConfig.future_tolerance_s` ahead of `now_s` holds without latching.

        Never raises: stale, missing or non-finite observations, implausible measurements,
        inference errors and safety violations all come back as a HOLD result carrying the
        reason; an unconfigured controller answers a HOLD with a NaN command.
        """
        if self.safety is None or self.measurement is None:
            return CycleResult(command=np.full(ARM_DOF, math.nan), gripper=math.nan,
                               safety_state=SAFETY_HOLD, latched=True,
                               safety_reason="controller not configured: call configure() first")
        try:
            if not (isinstance(now_s, numbers.Real) and math.isfinite(now_s)):
                return self._fault(f"clock: cycle time must be a finite number of seconds, got {now_s!r}")
            stamp = now_s if measured_stamp_s is None else measured_stamp_s
            try:
                measured = self.measurement.check(measured_q, stamp, self._last_sent, now_s)
            except PlausibilityFault as fault:
                if not fault.latching:
                    return self._hold_result(fault.reason, None)
                return self._fault(fault.reason)
            if self._latched_hold:
                return self._hold_result(self._latched_hold, measured)
            return self._cycle(now_s, measured)
        except Exception as exc:  # noqa: BLE001 - any fault in a cycle must end in a hold
            return self._fault(f"cycle error: {type(exc).__name__}: {exc}")

    def _cycle(self, now_s: float, measured: np.ndarray) -> CycleResult:
        try:
            raw = self.assembler.assemble(now_s)
        except MissingObservation as exc:
            return self._hold_result(str(exc), measured)  # waiting, not a fault
        except StaleObservation as exc:
            if self.config.resume_after_stale:
                return self._hold_result(str(exc), measured)
            return self._fault(str(exc), measured)
        except ObservationError as exc:
            return self._fault(str(exc), measured)
        if self._restart_from_measured:
            if not self.safety.at_rest:
                # The measurement trails a moving command by the tracking lag: re-anchoring there
                # while the brake still has speed would reverse the stream in one period (a
                # discontinuity reflex on a Franka). The brake finishes first.
                return self._hold_result(BRAKING_FIRST, measured)
            self.safety.restart_from(measured)
            self.executor.reset()
            self._restart_from_measured = False
        lay = self._layout
        replanned = False
        out = self._last_output
        if self.executor.needs_replan(now_s):
            out = self.policy.infer(raw, self.assembler.images)
            self._last_output = out
            if out.guard_scale < 1.0:
                self.guard_scaled_chunks += 1
            anchor = raw[lay.arm_observation] if lay.arm_observation is not None else measured
            targets = self._absolute_targets(out.actions, anchor, measured)
            self.executor.add_chunk(targets, now_s, start=self._start_vector(measured))
            self.chunk_count += 1
            replanned = True
        cmd = self.executor.command(now_s)
        gripper = float(cmd[lay.gripper_action]) if lay.gripper_action is not None else None
        res: SafetyResult = self.safety.filter(cmd[lay.arm_action], gripper, measured)
        if res.state == SAFETY_HOLD:
            self.executor.reset()
            self._restart_from_measured = True
            if res.fault:
                self._latch(res.reason, own=True)
        self._note_sent(res.q)
        age = now_s - self.assembler.newest_stamp
        return CycleResult(
            command=res.q, gripper=res.gripper, safety_state=res.state, safety_reason=res.reason,
            replanned=replanned, chunk_index=self.executor.chunk_index, chunk_count=self.chunk_count,
            inference_ms=out.inference_ms if out is not None else math.nan,
            observation_age_ms=age * 1e3, observation_stamp_s=self.assembler.newest_stamp,
            delta_sq_norm=out.delta_sq_norm if out is not None else math.nan,
            guard_scale=out.guard_scale if out is not None else math.nan,
            latent_norm=out.latent_norm if out is not None else math.nan,
            latched=bool(self._latched_hold), velocity=self.safety.velocity,
            fault=res.reason if res.fault else "",
        )

    def _absolute_targets(self, actions: np.ndarray, anchor: np.ndarray,
                          measured: np.ndarray) -> np.ndarray:
        """Chunk of joint_position_delta actions -> absolute joint targets (gripper unchanged)."""
        targets = np.array(actions, dtype=np.float64)
        targets[:, self._layout.arm_action] += anchor
        return targets

    def _start_vector(self, measured: np.ndarray) -> np.ndarray:
        """Where interpolation starts when no command was sent yet: the measured state."""
        lay = self._layout
        start = np.empty(self.decoder.manifest.action_dim, dtype=np.float64)
        start[lay.arm_action] = measured
        if lay.gripper_action is not None:
            width = self.assembler.latest_value("gripper_width")
            start[lay.gripper_action] = float(width[0]) if width is not None else 0.0
        return start

    def _note_sent(self, q: np.ndarray) -> None:
        """Remember the command the node is about to send: the tracking check compares with it."""
        if np.all(np.isfinite(q)):
            self._last_sent = np.array(q, dtype=np.float64)

    def _unlatch(self) -> None:
        self._latched_hold = ""
        self._own_fault = ""

    def _latch(self, reason: str, own: bool = False) -> None:
        if not self._latched_hold:
            self._latched_hold = reason or "fault"
        if own and not self._own_fault:
            self._own_fault = reason or "fault"

    def _fault(self, reason: str, measured: np.ndarray | None = None) -> CycleResult:
        """Latch a fault and brake (never raises; falls back to the last plausible reading)."""
        self._latch(reason, own=True)
        try:
            if self.executor is not None:
                self.executor.reset()
        except Exception:  # noqa: BLE001, S110 - braking matters more than the chunk state
            pass
        return self._hold_result(reason, measured, fault=reason)

    def _hold_result(self, reason: str, measured: np.ndarray | None, fault: str = "") -> CycleResult:
        """Brake this cycle. Without a command history the arm is held where it is measured (the
        current reading if plausible, else the last plausible one); NaN only if neither exists."""
        if measured is None and self.measurement is not None:
            measured = self.measurement.last_reading
        res = self.safety.hold(reason, measured)
        self._restart_from_measured = True
        if self.executor is not None:
            self.executor.reset()
        self._note_sent(res.q)
        return CycleResult(command=res.q, gripper=res.gripper, safety_state=res.state,
                           safety_reason=res.reason, chunk_count=self.chunk_count,
                           latched=bool(self._latched_hold), velocity=self.safety.velocity, fault=fault)

    # ------------------------------------------------------------------ holding
    def hold(self, reason: str) -> None:
        """Latch a hold: every step() brakes to rest and stays there until resume()."""
        self._latch(reason or "hold requested")
        if self.executor is not None:
            self.executor.reset()

    def resume(self) -> None:
        """Release a latched hold. The next command starts from the measured joints (within one
        period's allowed step of them), and the measurement history starts afresh, so a
        simulator restarted during the hold, or an arm moved by hand, is not judged against
        readings from before. A fault that is still there latches again on the next cycle."""
        self._unlatch()
        self._restart_from_measured = True
        self._last_sent = None
        if self.executor is not None:
            self.executor.reset()
        if self.measurement is not None:
            self.measurement.forget()

    def reset(self) -> None:
        """Start afresh from the measured position: no latched hold, no chunk, no command history.

        For (re)activation, when the arm may have been moved since the last command (a new
        episode, a person guiding it): the safety filter must not continue from a command the
        arm no longer stands at.
        """
        self._unlatch()
        self.forget_commands()

    def rejoin(self, measured_q: np.ndarray) -> None:
        """The robot talks again after holds went unsent. An arm more than one allowed step from
        the last command was restarted or moved meanwhile: the commands are forgotten, so the hold
        stands where it is measured (sent as it was, it would pull the arm back). Closer, it is
        the arm the hold holds."""
        held = self.safety.last_command if self.safety is not None else None
        if held is not None and np.any(np.abs(np.asarray(measured_q, dtype=float) - held) > self.safety.step_max):
            self.forget_commands()

    def forget_commands(self) -> None:
        """The arm no longer stands where the commands left it (its simulation restarted): drop
        the command and measurement history, keep any latched hold.

        A brake continued from the old commands would be a jump for the arm; without history a
        hold stands at the measured joints, at rest, and steering later starts from there.
        """
        self._restart_from_measured = False
        self._last_sent = None
        if self.executor is not None:
            self.executor.reset()
        if self.safety is not None:
            self.safety.reset()
        if self.measurement is not None:
            self.measurement.forget()

    def restart(self, seed: int | None = None) -> None:
        """reset(), then (if given) restart the base noise at `seed`: one call per new episode."""
        self.reset()
        if seed is not None:
            self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the base noise generator at `seed`; the next chunk draws its noise from it."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"`seed` must be an integer >= 0, got {seed!r}")
        if self.policy is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        self.policy.reseed(seed)

    @property
    def holding(self) -> str:
        """Reason of the latched hold, empty when not holding."""
        return self._latched_hold

    @property
    def own_fault(self) -> str:
        """A fault the core found itself since the last resume()/reset() ('' if none): it stays
        latched whatever becomes of a caller's own hold(), which may have been latched first."""
        return self._own_fault

    @property
    def at_rest(self) -> bool:
        """The last command stands still (a brake has finished); True before any command."""
        return self.safety is None or self.safety.at_rest

    @property
    def latched(self) -> bool:
        """A hold is latched: steering resumes only after resume() or reset()."""
        return bool(self._latched_hold)

    # ------------------------------------------------------------------ chunk sources
    def use_policy(self, policy: object) -> object:
        """Let `policy` choose the chunks instead of the ONNX `SteeredPolicy`; returns the previous one.

        `policy` needs `infer(observation, images) -> PolicyOutput`, `reseed(seed)` and a
        `head_type` string. Training uses this to drive the runtime's chunk execution and safety
        filter with chunks an agent chose; everything after the chunk stays the controller's code.
        """
        if self.policy is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        for name in ("infer", "reseed", "head_type"):
            if not hasattr(policy, name):
                raise TypeError(f"`policy` must have `{name}` (like SteeredPolicy), got {type(policy).__name__}")
        previous, self.policy = self.policy, policy
        self._last_output = None
        if self.executor is not None:
            self.executor.reset()
        return previous

    # ------------------------------------------------------------------ heads
    def load_head(self, path: str, decoder: LoadedModel | None = None) -> LoadedModel:
        """Load and fully validate a head against the decoder; call off the control loop.

        Raises:
            ManifestError / HeadRefused / ProviderError / OSError with the reason the head is refused.
        """
        decoder = decoder or self.decoder
        if decoder is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        cfg = self.config
        head = load_model(path, "head", cfg.providers, cfg.allow_provider_fallback,
                          cfg.intra_op_threads, cfg.warmup_runs)
        check_head_matches(decoder, head)
        check_head_outputs(head)
        return head

    def install_head(self, head: LoadedModel | None) -> None:
        """Swap a validated head in (None = frozen base policy); takes effect at the next replan."""
        if self.policy is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        self.policy.swap_head(head)
        self.head = head
        self.head_swaps += 1

    def swap_head(self, path: str) -> LoadedModel | None:
        """load_head + install_head in one call; an empty path (or NO_HEAD) removes the head."""
        head = self.load_head(path) if path and path != NO_HEAD else None
        self.install_head(head)
        return head

    # ------------------------------------------------------------------ identity for telemetry
    @property
    def decoder_id(self) -> str:
        return self.decoder.model_id if self.decoder is not None else ""

    @property
    def head_id(self) -> str:
        return self.head.model_id if self.head is not None else NO_HEAD

    @property
    def head_type(self) -> str:
        return self.policy.head_type if self.policy is not None else NO_HEAD

    @property
    def trust_region_delta(self) -> float:
        if self.head is None or self.head.manifest.trust_region_delta is None:
            return math.nan
        return float(self.head.manifest.trust_region_delta)

    @property
    def providers(self) -> list[str]:
        return list(self.decoder.session.get_providers()) if self.decoder is not None else []

    @property
    def policy_rate_hz(self) -> float:
        return float(self.decoder.manifest.policy_rate_hz) if self.decoder is not None else math.nan


def _resolve_layout(decoder: LoadedModel) -> _Layout:
    """Find where the arm deltas and the gripper width sit in the action vector."""
    m = decoder.manifest
    arm, grip, offset = None, None, 0
    for entry in m.action.entries:
        if entry.mode not in ACTION_MODES:
            raise ManifestError(f"`action.entries[{entry.name}].mode` must be one of "
                                f"{sorted(ACTION_MODES)}, got {entry.mode!r}")
        if entry.mode == "joint_position_delta":
            if entry.size != ARM_DOF:
                raise ManifestError(f"`action.entries[{entry.name}].size` must be {ARM_DOF} for "
                                    f"joint_position_delta, got {entry.size}")
            arm = slice(offset, offset + entry.size)
        elif entry.mode == "gripper_width":
            grip = offset
        offset += entry.size
    if arm is None:
        raise ManifestError("`action.entries` must contain a joint_position_delta entry of size 7, "
                            f"got modes {[e.mode for e in m.action.entries]}")
    arm_obs, grip_obs, offset = None, None, 0
    for entry in m.observation.entries:
        if entry.source == "arm_joint_positions":
            arm_obs = slice(offset, offset + entry.size)
        elif entry.source == "gripper_width":
            grip_obs = offset
        offset += entry.size
    return _Layout(arm_action=arm, gripper_action=grip, arm_observation=arm_obs,
                   gripper_observation=grip_obs)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

