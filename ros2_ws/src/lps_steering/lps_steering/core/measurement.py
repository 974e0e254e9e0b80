"""Is the measured arm state believable? Run-time plausibility checks on every joint reading.

The safety filter keeps commands inside the limits, but it steers from what the robot reports,
and a reading can be wrong without being NaN: a driver that publishes a stale or foreign state,
a second publisher on the topic, an encoder offset, a simulator restarted under the node. libfranka
checks each 1 kHz packet against the robot's own physics and aborts on a violation; this module
does the same for the readings the policy node receives:

- shape: exactly ARM_DOF finite positions;
- limits: every joint inside its mechanical range, with a small tolerance for encoder noise (not
  the safety filter's margin, which keeps *commands* away from the limits);
- speed: between two readings a joint cannot have moved faster than the robot can, judged by the
  readings' own stamps (not receipt times, which jitter with the network and the scheduler);
- tracking: the arm stands close to what it was last commanded (a joint-position controller
  tracks a jerk-limited command within a few hundredths of a radian).

A failed check is a fault: the caller holds, latched, with `PlausibilityFault.reason` naming the
check, the joint and the values. One exception: a reading stamped in the future (beyond a small
clock tolerance) is a clock problem, not an arm problem. It is refused without being remembered
(else every sane reading after it would look out of order) and its hold is not latching
(`PlausibilityFault.latching` False): the hold ends when stamps are sane again. Timestamps that do not move forward are judged explicitly: a
duplicate (same stamp, same positions) carries no news and passes; the same stamp with other
positions, or a stamp older than the previous reading, means two sources or a clock that jumped,
and is a fault.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .robot import ARM_DOF, RobotLimits

# Positions closer than this count as the same reading (float round trips through messages).
_SAME_READING_RAD = 1e-9


@dataclass(frozen=True)
class MeasurementConfig:
    """Bounds of the plausibility checks.

    Attributes:
        limit_tolerance_rad: a reading may lie this far outside a joint's mechanical limit before
            it counts as implausible (encoder noise, the sim's soft joint ranges). The default,
            0.01 rad, is far below anything a real excursion produces.
        speed_factor: a joint may move at most speed_factor * dq_max between two readings. 1.5
            leaves room for stamp jitter and noise on a real 1 kHz stream and is still far below
            a jump (0.5 rad in one 10 ms period is ~20 x dq_max).
        speed_slack_rad: absolute allowance added to the speed bound, so two readings 1 ms apart
            with ~1e-3 rad of quantisation noise do not trip it.
        tracking_bound_rad: largest allowed |last command - reading| on any joint; <= 0 disables
            the check. The closed loop at 100 Hz stays far below it (the policy node against a
            following fake arm: 0.017 rad median, 0.040 rad max), every probe of the fault suite
            that does not fault a joint runs without a tracking hold, and a 0.5 rad offset trips
            on the first reading (`scripts/with-env python scripts/fault_probes.py`).
        future_tolerance_s: a reading may be stamped this far ahead of the checker's clock
            (clocks of two machines agree to milliseconds under NTP/PTP); further is refused.
    """

    limit_tolerance_rad: float = 0.01
    speed_factor: float = 1.5
    speed_slack_rad: float = 0.005
    tracking_bound_rad: float = 0.25
    future_tolerance_s: float = 0.1

    def __post_init__(self) -> None:
        for name, lo in (("limit_tolerance_rad", 0.0), ("speed_factor", 1.0), ("speed_slack_rad", 0.0),
                         ("future_tolerance_s", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= lo):
                raise ValueError(f"`{name}` must be a finite number >= {lo}, got {value!r}")
        t = self.tracking_bound_rad
        if not (isinstance(t, (int, float)) and math.isfinite(t)):
            raise ValueError(f"`tracking_bound_rad` must be finite (<= 0 disables), got {t!r}")


class PlausibilityFault(ValueError):
    """A reading failed a plausibility check; `check` names which one ("shape", "limits", ...)."""

    def __init__(self, check: str, reason: str, latching: bool = True) -> None:
        super().__init__(reason)
        self.check = check
        self.reason = reason
        self.latching = latching


class MeasurementMonitor:
    """Checks each joint reading against the robot's limits, its previous reading and the command.

    Feed every reading the cycle uses through `check`; it returns the positions as a float array
    or raises `PlausibilityFault`. `forget()` drops the reading history (on resume or activation,
    when the arm may legitimately have been moved, or a simulator restarted its clock).
    """

    def __init__(self, limits: RobotLimits, config: MeasurementConfig | None = None) -> None:
        self.limits = limits
        self.config = config or MeasurementConfig()
        self._lo = limits.q_min - self.config.limit_tolerance_rad
        self._hi = limits.q_max + self.config.limit_tolerance_rad
        self._speed = self.config.speed_factor * limits.dq_max
        self._q: np.ndarray | None = None
        self._stamp = math.nan

    def forget(self) -> None:
        self._q = None
        self._stamp = math.nan

    @property
    def last_reading(self) -> np.ndarray | None:
        """The newest reading that passed every check (a copy), or None."""
        return None if self._q is None else self._q.copy()

    def check(self, q: object, stamp_s: float, last_command: np.ndarray | None = None,
              now_s: float | None = None) -> np.ndarray:
        """Validate one reading stamped `stamp_s` (seconds, the reading's own clock).

        `last_command` is the command sent in the previous cycle (None when none was sent since
        the last `forget`, and then tracking is not checked). `now_s`, on the same clock as the
        stamps, lets a reading stamped in the future be refused (None: not checked).

        Raises:
            PlausibilityFault: naming the check, the joint (1-based) and the values.
        """
        try:
            arr = np.asarray(q, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise PlausibilityFault("shape", f"measured joint positions are not numbers: {exc}") from None
        if arr.shape != (ARM_DOF,):
            raise PlausibilityFault("shape", f"measured joint positions must be {ARM_DOF} values, got "
                                             f"{arr.shape[0]}")
        finite = np.isfinite(arr)
        if not finite.all():
            j = int(np.flatnonzero(~finite)[0])
            raise PlausibilityFault("finite", f"measured joint {j + 1} position is not finite ({arr[j]})")
        out = (arr < self._lo) | (arr > self._hi)
        if out.any():
            j = int(np.flatnonzero(out)[0])
            raise PlausibilityFault(
                "limits", f"measured joint {j + 1} at {arr[j]:.4f} rad is outside its limits "
                          f"[{self.limits.q_min[j]:.4f}, {self.limits.q_max[j]:.4f}] "
                          f"(+-{self.config.limit_tolerance_rad} rad tolerance)")
        stamp = float(stamp_s)
        if not math.isfinite(stamp):
            raise PlausibilityFault("stamp", f"measured joint positions carry a non-finite stamp ({stamp_s})")
        if now_s is not None and stamp > now_s + self.config.future_tolerance_s:
            raise PlausibilityFault(
                "future", f"measured joint positions stamped {stamp - now_s:.3f} s in the future "
                          f"(tolerance {self.config.future_tolerance_s} s): clocks differ", latching=False)
        repeated = self._q is not None and self._check_speed(arr, stamp)
        bound = self.config.tracking_bound_rad
        # A repeated reading (inputs gone silent) says nothing about how the arm follows the
        # commands: the brake moving away from it is no tracking error (silence is the watchdog's).
        if bound > 0.0 and last_command is not None and not repeated:
            gap = np.abs(arr - last_command)
            j = int(np.argmax(gap))
            if gap[j] > bound:
                raise PlausibilityFault(
                    "tracking", f"tracking error at joint {j + 1}: measured {arr[j]:.4f} rad, last command "
                                f"{float(last_command[j]):.4f} rad, gap {gap[j]:.4f} > bound {bound} rad")
        self._q, self._stamp = arr, stamp
        return arr

    def _check_speed(self, arr: np.ndarray, stamp: float) -> bool:
        """Raises on an implausible change since the last reading; True for the same reading again."""
        dq = np.abs(arr - self._q)
        dt = stamp - self._stamp
        if dt == 0.0:
            if float(dq.max()) <= _SAME_READING_RAD:
                return True  # the same reading again: nothing new to judge
            j = int(np.argmax(dq))
            raise PlausibilityFault(
                "stamp", f"two readings with the same stamp {stamp:.6f} s differ at joint {j + 1} by "
                         f"{dq[j]:.4f} rad (a second publisher on the joint states?)")
        if dt < 0.0:
            raise PlausibilityFault(
                "stamp", f"reading stamped {-dt:.6f} s before the previous one ({stamp:.6f} < "
                         f"{self._stamp:.6f} s): a clock that jumped back or a second publisher")
        allowed = self._speed * dt + self.config.speed_slack_rad
        over = dq > allowed
        if over.any():
            j = int(np.argmax(dq / allowed))
            raise PlausibilityFault(
                "speed", f"measured joint {j + 1} moved {dq[j]:.4f} rad in {dt * 1e3:.1f} ms "
                         f"({dq[j] / dt:.2f} rad/s), faster than the robot can "
                         f"({self.config.speed_factor} x dq_max {self.limits.dq_max[j]:.2f} rad/s)")
        return False
