"""Start-up checks and the joint-state watchdog (runtime core: plain Python, no ROS, no torch).

The policy node runs `run_startup_checks` (plus `check_readiness` where a readiness topic is
configured) before it activates (every check must pass, or the node refuses to activate and
reports each failure), and feeds a `StateWatchdog` with every joint state it takes and asks it
every control cycle (a non-empty answer means: hold).

Robot modes are franka_msgs/msg/FrankaRobotState's ROBOT_MODE_* numbers, kept here so the
checks work where franka_msgs is not installed (sim, tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# franka_msgs/msg/FrankaRobotState ROBOT_MODE_*
ROBOT_MODES = {0: "OTHER", 1: "IDLE", 2: "MOVE", 3: "GUIDING", 4: "REFLEX", 5: "USER_STOPPED",
               6: "AUTOMATIC_ERROR_RECOVERY"}
# IDLE: brakes open, no controller yet; MOVE: a controller runs. Anything else must not be driven:
# GUIDING (a person moves the arm by hand), REFLEX (needs error recovery), USER_STOPPED (the
# external enabling device is pressed), OTHER / AUTOMATIC_ERROR_RECOVERY (not ready).
READY_MODES = frozenset({1, 2})
MODES_NEEDING_RECOVERY = frozenset({4})


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass
class StartupReport:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    def summary(self) -> str:
        if self.ok:
            return "start-up checks passed: " + ", ".join(r.name for r in self.results)
        return "start-up checks failed: " + "; ".join(f"{r.name}: {r.detail}" for r in self.failures)


def check_joint_state_fresh(now_s: float, stamp_s: float | None, max_age_s: float) -> CheckResult:
    """A joint state arrived, and recently (stamp on the same clock as now_s)."""
    name = "joint_states fresh"
    if stamp_s is None:
        return CheckResult(name, False, "no joint_states received yet")
    age = now_s - stamp_s
    if not math.isfinite(age) or age > max_age_s:
        return CheckResult(name, False, f"newest joint_states is {age:.3f} s old, expected <= {max_age_s} s")
    if age < -max_age_s:
        return CheckResult(name, False, f"joint_states stamp is {-age:.3f} s in the future: clocks differ "
                                        "(use_sim_time on one side only?)")
    return CheckResult(name, True, f"age {age * 1e3:.1f} ms")


def check_joint_positions(q: Sequence[float] | None, q_min: np.ndarray, q_max: np.ndarray,
                          margin_rad: float = 0.0) -> CheckResult:
    """Seven finite joint positions, each inside [q_min + margin, q_max - margin]."""
    name = "joint positions inside limits"
    if q is None:
        return CheckResult(name, False, "no joint positions")
    arr = np.asarray(q, dtype=np.float64).reshape(-1)
    if arr.shape != (7,):
        return CheckResult(name, False, f"expected 7 arm joint positions, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        j = int(np.flatnonzero(~np.isfinite(arr))[0]) + 1
        return CheckResult(name, False, f"joint {j} position is not finite ({arr[j - 1]})")
    lo, hi = q_min + margin_rad, q_max - margin_rad
    out = (arr < lo) | (arr > hi)
    if np.any(out):
        j = int(np.flatnonzero(out)[0])
        return CheckResult(name, False, f"joint {j + 1} at {arr[j]:.4f} rad, expected within "
                                        f"[{lo[j]:.4f}, {hi[j]:.4f}] (limits with {margin_rad} rad margin); "
                                        "move the arm away from its limit in guiding mode first")
    return CheckResult(name, True, f"min distance to a limit {np.min(np.minimum(arr - q_min, q_max - arr)):.3f} rad")


def check_robot_mode(mode: int | None, required: bool) -> CheckResult:
    """The robot is ready to move (IDLE or MOVE). `mode` None: no FrankaRobotState received."""
    name = "robot mode"
    if mode is None:
        if required:
            return CheckResult(name, False, "no franka_msgs/FrankaRobotState received (is "
                                            "franka_robot_state_broadcaster running?)")
        return CheckResult(name, True, "not available (sim or franka_msgs missing): skipped")
    label = ROBOT_MODES.get(int(mode), f"unknown ({mode})")
    if int(mode) in READY_MODES:
        return CheckResult(name, True, label)
    hint = {4: "call error recovery (the robot supervisor's ~/recover) after checking the cause",
            5: "release the external enabling device / user stop",
            3: "release the guiding button"}.get(int(mode), "wait until the robot reports IDLE or MOVE")
    return CheckResult(name, False, f"robot is in {label}: {hint}")


def check_providers(requested: Sequence[str], active: Sequence[str], allow_fallback: bool) -> CheckResult:
    """ONNX Runtime runs on the first provider asked for (a silent CPU fallback is refused)."""
    name = "execution provider"
    if not active:
        return CheckResult(name, False, "no session: models not loaded")
    if not requested:
        return CheckResult(name, False, "no providers requested")
    if active[0] != requested[0] and not allow_fallback:
        return CheckResult(name, False, f"requested {list(requested)}, session runs on {list(active)}")
    return CheckResult(name, True, f"{active[0]}")


def check_models(decoder_id: str, head_id: str, head_requested: bool) -> CheckResult:
    """Models were loaded and validated (manifest, hashes, head-decoder pairing) by the controller."""
    name = "models validated"
    if not decoder_id:
        return CheckResult(name, False, "no decoder loaded")
    if head_requested and head_id in ("", "none"):
        return CheckResult(name, False, "a head was requested but none is installed")
    return CheckResult(name, True, f"decoder {decoder_id}, head {head_id or 'none'}")


def check_readiness(topic: str, ready: bool | None, reason: str, age_s: float | None,
                    timeout_s: float) -> CheckResult:
    """A hardware supervisor said the robot may move (`ready`), recently enough.

    `ready` None: no readiness message received yet; `age_s`: time since the newest one.
    """
    name = "robot readiness"
    if ready is None or age_s is None:
        return CheckResult(name, False, f"no lps_msgs/RobotReadiness received on {topic} (is the "
                                        "robot supervisor running?)")
    if not math.isfinite(age_s) or age_s > timeout_s:
        return CheckResult(name, False, f"newest readiness on {topic} is {age_s:.3f} s old, "
                                        f"expected <= {timeout_s} s")
    if not ready:
        return CheckResult(name, False, f"{topic} says not ready: {reason or 'no reason given'}")
    return CheckResult(name, True, f"ready ({topic})")


def run_startup_checks(*, now_s: float, joint_state_stamp_s: float | None,
                       joint_positions: Sequence[float] | None, q_min: np.ndarray, q_max: np.ndarray,
                       robot_mode: int | None, robot_mode_required: bool,
                       decoder_id: str, head_id: str, head_requested: bool,
                       requested_providers: Sequence[str], active_providers: Sequence[str],
                       allow_provider_fallback: bool = False, max_joint_state_age_s: float = 0.5,
                       joint_margin_rad: float = 0.0) -> StartupReport:
    """Every start-up check; the report is ok only when all pass."""
    return StartupReport([
        check_joint_state_fresh(now_s, joint_state_stamp_s, max_joint_state_age_s),
        check_joint_positions(joint_positions, q_min, q_max, joint_margin_rad),
        check_robot_mode(robot_mode, robot_mode_required),
        check_models(decoder_id, head_id, head_requested),
        check_providers(requested_providers, active_providers, allow_provider_fallback),
    ])


class StateWatchdog:
    """Joint states must keep coming and their stamps keep advancing; `check` says why not.

    Two ways a state goes stale: no message for `timeout_s` (driver or network down), or messages
    that still arrive but with a stamp that stopped moving (a frozen publisher replaying its last
    state). `feed` takes the receipt time (node clock) and the message's header stamp, and
    says whether the message may be used as a measurement:

    - a stamp more than `future_tolerance_s` ahead of its receipt time is refused (clocks differ,
      or a publisher stamps nonsense); it is no sign of life, so it never latches the stamp
      history ahead of the real one;
    - a stamp older than the newest accepted one (out of order) is refused as a measurement: the
      arm was already seen later. When the accepted ones have gone stale (a publisher restarted
      with its clock from zero, a sim restarted), the next message starts the history afresh;
    - a stamp equal to the newest is accepted but does not count as the stamp advancing.
    """

    def __init__(self, timeout_s: float, future_tolerance_s: float | None = None) -> None:
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"`timeout_s` must be > 0, got {timeout_s!r}")
        if future_tolerance_s is not None and not (math.isfinite(future_tolerance_s) and future_tolerance_s >= 0):
            raise ValueError(f"`future_tolerance_s` must be >= 0 or None, got {future_tolerance_s!r}")
        self.timeout_s = float(timeout_s)
        self.future_tolerance_s = future_tolerance_s
        self.reset()

    def reset(self) -> None:
        self._received_s: float | None = None
        self._stamp_s: float | None = None
        self._stamp_advanced_s: float | None = None
        self._future = ""

    def feed(self, received_s: float, stamp_s: float) -> str:
        """Empty when the message may be used; else why not (it is then not a measurement)."""
        if not (math.isfinite(received_s) and math.isfinite(stamp_s)):
            return "joint_states `header.stamp` is not finite"  # no sign of life either
        tol = self.future_tolerance_s
        if tol is not None and stamp_s - received_s > tol:
            self._future = (f"joint_states `header.stamp` is {stamp_s - received_s:.3f} s in the future "
                            f"(tolerance {tol} s): clocks differ or the publisher stamps wrongly")
            return self._future
        self._future = ""
        if self._stamp_s is not None and stamp_s < self._stamp_s:
            if self._stale_at(received_s):
                self.reset()
            else:
                return (f"joint_states `header.stamp` went back {self._stamp_s - stamp_s:.3f} s "
                        "(out of order): message ignored")
        if self._stamp_s is None or stamp_s > self._stamp_s:
            self._stamp_s = stamp_s
            self._stamp_advanced_s = received_s
        self._received_s = received_s
        return ""

    def _stale_at(self, now_s: float) -> bool:
        return (self._received_s is None or now_s - self._received_s > self.timeout_s
                or now_s - self._stamp_advanced_s > self.timeout_s)

    def check(self, now_s: float) -> str:
        """Empty when fresh; else the reason to hold."""
        if self._future:
            return f"watchdog: {self._future}"
        if self._received_s is None:
            return "watchdog: no joint_states received"
        silent = now_s - self._received_s
        if silent > self.timeout_s:
            return f"watchdog: no joint_states for {silent:.3f} s (timeout {self.timeout_s} s)"
        frozen = now_s - self._stamp_advanced_s
        if frozen > self.timeout_s:
            return f"watchdog: joint_states stamp has not advanced for {frozen:.3f} s (timeout {self.timeout_s} s)"
        return ""
