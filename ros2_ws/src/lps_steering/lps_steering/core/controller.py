"""The whole steering cycle without ROS: observation -> policy -> chunk execution -> safety filter.

The policy node is a thin shell around `SteeringController`: it feeds observations in with
`observe`, calls `step` once per command period and publishes what `CycleResult` says. Anything
that goes wrong inside a cycle turns into a HOLD with a reason; `step` never raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .chunking import ChunkExecutor
from .manifest import ACTION_MODES, ManifestError
from .observation import ObservationAssembler, ObservationError
from .policy import LoadedModel, SteeredPolicy, check_head_matches, load_model
from .safety import SAFETY_HOLD, RobotLimits, SafetyFilter, SafetyResult

ARM_DOF = 7


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
        guard: run-time trust-region guard for lpds heads: if guard > 0 and ||Delta||^2 exceeds
            guard * trust_region_delta, Delta is scaled back onto that bound. 0 disables it.
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
    guard: float = 0.0
    seed: int = 0
    joint_margin_rad: float = 0.05
    max_step_rad: float = 0.02
    velocity_scale: float = 0.5
    acceleration_scale: float = 0.5
    jerk_scale: float | None = 0.5
    workspace_min: tuple[float, float, float] = (0.2, -0.6, 0.02)
    workspace_max: tuple[float, float, float] = (0.85, 0.6, 0.9)
    warmup_runs: int = 10

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

    def safety_filter(self) -> SafetyFilter:
        """A fresh safety filter with this configuration's robot limits, rate and margins."""
        return SafetyFilter(RobotLimits.for_robot(self.robot), self.command_rate_hz,
                            joint_margin=self.joint_margin_rad, max_step=self.max_step_rad,
                            velocity_scale=self.velocity_scale, acceleration_scale=self.acceleration_scale,
                            jerk_scale=self.jerk_scale, workspace_min=self.workspace_min,
                            workspace_max=self.workspace_max)


@dataclass
class CycleResult:
    """What one control cycle did: everything the node publishes as telemetry and command.

    `command` and `gripper` are always safe to send: on HOLD they are the last safe command (or
    the measured position when there was none).
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

    @property
    def held(self) -> bool:
        return self.safety_state == SAFETY_HOLD


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

    Lifecycle: `configure()` -> repeated `observe()` / `step()` -> `cleanup()`. `hold(reason)`
    latches a hold until `resume()`; observation faults hold only for the cycles they last.
    Head swapping: `load_head(path)` validates off the control loop (raises with a reason);
    `install_head(model)` swaps it in between two cycles.
    """

    def __init__(self, config: ControllerConfig) -> None:
        self.config = config
        self.decoder: LoadedModel | None = None
        self.head: LoadedModel | None = None
        self.policy: SteeredPolicy | None = None
        self.assembler: ObservationAssembler | None = None
        self.executor: ChunkExecutor | None = None
        self.safety: SafetyFilter | None = None
        self.chunk_count = 0
        self.head_swaps = 0
        self._latched_hold: str = ""
        self._layout: _Layout | None = None
        self._last_output = None

    # ------------------------------------------------------------------ set-up and tear-down
    def configure(self) -> None:
        """Load and validate the decoder (and head), build every stage and warm the sessions up.

        Raises:
            ManifestError: a manifest is invalid or the head does not belong to the decoder.
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
        # Warm the whole policy path (normalisation, head, decoder) on a plausible observation.
        probe = np.asarray(self.assembler.mean_raw_observation(), dtype=np.float64)
        for _ in range(cfg.warmup_runs):
            self.policy.infer(probe, self._zero_images())
        self.policy.reseed(cfg.seed)
        self.chunk_count = 0
        self._latched_hold = ""
        self._last_output = None

    def _zero_images(self) -> dict[str, np.ndarray]:
        return {im.name: np.zeros((im.channels, *im.output_hw), dtype=np.float32)
                for im in self.decoder.manifest.observation.images}

    def cleanup(self) -> None:
        """Release sessions and state; configure() may be called again afterwards."""
        self.policy = self.decoder = self.head = None
        self.assembler = self.executor = self.safety = None
        self._layout = None
        self._last_output = None

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

    # ------------------------------------------------------------------ the cycle
    def step(self, now_s: float, measured_q: np.ndarray) -> CycleResult:
        """Run one control cycle at time `now_s` with the arm's measured joint positions.

        Never raises: stale, missing or non-finite observations, inference errors and safety
        violations all come back as a HOLD result carrying the reason.
        """
        if self.safety is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        try:
            measured = np.asarray(measured_q, dtype=np.float64).reshape(-1)
            if measured.shape[0] != ARM_DOF:
                return self._hold_result(f"measured_q must have {ARM_DOF} joints, got "
                                         f"{measured.shape[0]}", measured[:ARM_DOF] if
                                         measured.shape[0] >= ARM_DOF else None)
            if not np.all(np.isfinite(measured)):
                return self._hold_result("measured_q is not finite", None)
            if self._latched_hold:
                return self._hold_result(self._latched_hold, measured)
            return self._cycle(now_s, measured)
        except Exception as exc:  # noqa: BLE001 - any fault in a cycle must end in a hold
            self.executor.reset()
            return self._hold_result(f"cycle error: {type(exc).__name__}: {exc}", None)

    def _cycle(self, now_s: float, measured: np.ndarray) -> CycleResult:
        try:
            raw = self.assembler.assemble(now_s)
        except ObservationError as exc:
            # Restart chunk execution from the measured position once observations return.
            self.executor.reset()
            return self._hold_result(str(exc), measured)
        lay = self._layout
        replanned = False
        out = self._last_output
        if self.executor.needs_replan(now_s):
            out = self.policy.infer(raw, self.assembler.images)
            self._last_output = out
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
        age = now_s - self.assembler.newest_stamp
        return CycleResult(
            command=res.q, gripper=res.gripper, safety_state=res.state, safety_reason=res.reason,
            replanned=replanned, chunk_index=self.executor.chunk_index, chunk_count=self.chunk_count,
            inference_ms=out.inference_ms if out is not None else math.nan,
            observation_age_ms=age * 1e3, observation_stamp_s=self.assembler.newest_stamp,
            delta_sq_norm=out.delta_sq_norm if out is not None else math.nan,
            guard_scale=out.guard_scale if out is not None else math.nan,
            latent_norm=out.latent_norm if out is not None else math.nan,
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

    def _hold_result(self, reason: str, measured: np.ndarray | None) -> CycleResult:
        res = self.safety.hold(reason, measured)
        return CycleResult(command=res.q, gripper=res.gripper, safety_state=res.state,
                           safety_reason=res.reason, chunk_count=self.chunk_count)

    # ------------------------------------------------------------------ holding
    def hold(self, reason: str) -> None:
        """Latch a hold: every step() returns the last safe command until resume()."""
        self._latched_hold = reason or "hold requested"
        if self.executor is not None:
            self.executor.reset()

    def resume(self) -> None:
        """Release a latched hold; the next chunk starts from the measured position."""
        self._latched_hold = ""
        if self.executor is not None:
            self.executor.reset()

    def reset(self) -> None:
        """Start afresh from the measured position: no latched hold, no chunk, no command history.

        For (re)activation, when the arm may have been moved since the last command (a new
        episode, a person guiding it): the safety filter must not continue from a command the
        arm no longer stands at.
        """
        self._latched_hold = ""
        if self.executor is not None:
            self.executor.reset()
        if self.safety is not None:
            self.safety.reset()

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

    # ------------------------------------------------------------------ heads
    def load_head(self, path: str, decoder: LoadedModel | None = None) -> LoadedModel:
        """Load and fully validate a head against the decoder; call off the control loop.

        Raises:
            ManifestError / ProviderError / OSError with the reason the head is refused.
        """
        decoder = decoder or self.decoder
        if decoder is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        cfg = self.config
        head = load_model(path, "head", cfg.providers, cfg.allow_provider_fallback,
                          cfg.intra_op_threads, cfg.warmup_runs)
        check_head_matches(decoder, head)
        return head

    def install_head(self, head: LoadedModel | None) -> None:
        """Swap a validated head in (None = frozen base policy); takes effect at the next replan."""
        if self.policy is None:
            raise RuntimeError("SteeringController is not configured: call configure() first")
        self.policy.swap_head(head)
        self.head = head
        self.head_swaps += 1

    def swap_head(self, path: str) -> LoadedModel | None:
        """load_head + install_head in one call; an empty path removes the head."""
        head = self.load_head(path) if path else None
        self.install_head(head)
        return head

    # ------------------------------------------------------------------ identity for telemetry
    @property
    def decoder_id(self) -> str:
        return self.decoder.model_id if self.decoder is not None else ""

    @property
    def head_id(self) -> str:
        return self.head.model_id if self.head is not None else "none"

    @property
    def head_type(self) -> str:
        return self.policy.head_type if self.policy is not None else "none"

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

