"""The last stage before the robot: joint, velocity, acceleration and workspace limits; hold on doubt.

`SafetyFilter.filter` returns the command actually to be sent, and a state: OK (unchanged),
LIMITED (clipped, reason says which limit) or HOLD (the command was refused; the last safe
command, or the measured position if there was none, is returned instead). The numbering is
lps_msgs/SteeringTelemetry's SAFETY_*.

With `jerk_scale` set, the filter also bounds the jerk of the streamed targets (a Franka aborts
with a discontinuity reflex when the commanded motion jumps in acceleration) and `hold` no longer
stops dead: it decelerates to rest under the same limits (a dead stop from speed is itself a
discontinuity). In that mode every output satisfies, per joint and per command period,
|v| <= v_max, |a| <= a_max, |j| <= j_max for the finite differences of consecutive outputs,
as long as the joint position clip (the last resort) does not fire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .kinematics import tcp_position

SAFETY_OK = 0
SAFETY_LIMITED = 1
SAFETY_HOLD = 2
GRIPPER_MAX_WIDTH_M = 0.08

# Joint limits per robot, from Franka's "Robot and interface specifications" (FCI documentation)
# for the Franka Emika Panda and the Franka Research 3. Units: rad, rad/s, rad/s^2, rad/s^3.
_LIMITS = {
    "panda": {
        "q_min": [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973],
        "q_max": [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973],
        "dq_max": [2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100],
        "ddq_max": [15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0],
        "dddq_max": [7500.0, 3750.0, 5000.0, 6250.0, 7500.0, 10000.0, 10000.0],
    },
    "fr3": {
        "q_min": [-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159],
        "q_max": [2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159],
        "dq_max": [2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26],
        "ddq_max": [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0],
        "dddq_max": [5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0],
    },
}


@dataclass(frozen=True)
class RobotLimits:
    robot: str
    q_min: np.ndarray
    q_max: np.ndarray
    dq_max: np.ndarray
    ddq_max: np.ndarray
    dddq_max: np.ndarray

    ROBOTS = frozenset(_LIMITS)

    @classmethod
    def for_robot(cls, robot: str) -> RobotLimits:
        if robot not in _LIMITS:
            raise ValueError(f"`robot` must be one of {sorted(_LIMITS)}, got {robot!r}")
        t = _LIMITS[robot]
        return cls(robot=robot, **{k: np.array(v, dtype=np.float64) for k, v in t.items()})


@dataclass
class SafetyResult:
    q: np.ndarray
    gripper: float
    state: int
    reason: str


class SafetyFilter:
    """Per-cycle command filter at the command rate.

    Args:
        limits: the robot's joint limits.
        command_rate_hz: rate at which filter() is called (sets the per-step limits).
        joint_margin: distance kept from the joint position limits (rad).
        max_step: largest change of any joint between two commands (rad).
        velocity_scale, acceleration_scale: fractions of the robot's limits that are allowed.
        workspace_min, workspace_max: TCP box (m, base frame); a command outside it is refused.
    """

    def __init__(self, limits: RobotLimits, command_rate_hz: float, joint_margin: float = 0.05,
                 max_step: float = 0.02, velocity_scale: float = 0.5, acceleration_scale: float = 0.5,
                 workspace_min: tuple[float, float, float] = (0.2, -0.6, 0.02),
                 workspace_max: tuple[float, float, float] = (0.85, 0.6, 0.9),
                 jerk_scale: float | None = None) -> None:
        if not math.isfinite(command_rate_hz) or command_rate_hz <= 0:
            raise ValueError(f"`command_rate_hz` must be > 0, got {command_rate_hz!r}")
        if jerk_scale is not None and not (isinstance(jerk_scale, (int, float))
                                           and math.isfinite(jerk_scale) and 0.0 < jerk_scale <= 1.0):
            raise ValueError(f"`jerk_scale` must be in (0, 1] or None (no jerk limit), got {jerk_scale!r}")
        self.limits = limits
        self.dt = 1.0 / command_rate_hz
        self.q_lo = limits.q_min + joint_margin
        self.q_hi = limits.q_max - joint_margin
        if np.any(self.q_lo >= self.q_hi):
            raise ValueError(f"`joint_margin` ({joint_margin}) leaves no room inside the joint limits")
        self.step_max = np.minimum(max_step, velocity_scale * limits.dq_max * self.dt)
        # Largest change of the per-step displacement: a * dt^2.
        self.accel_step = acceleration_scale * limits.ddq_max * self.dt * self.dt
        self.ws_min = np.asarray(workspace_min, dtype=np.float64)
        self.ws_max = np.asarray(workspace_max, dtype=np.float64)
        self._last_q: np.ndarray | None = None
        self._last_step = np.zeros(7)
        self._last_gripper = math.nan
        # Jerk-limited mode works on velocity and acceleration of the output (finite differences).
        self.jerk_limited = jerk_scale is not None
        self.v_max = self.step_max / self.dt
        self.a_max = acceleration_scale * limits.ddq_max
        self.j_max = (jerk_scale or 1.0) * limits.dddq_max
        self._v = np.zeros(7)
        self._a = np.zeros(7)

    @property
    def last_command(self) -> np.ndarray | None:
        return None if self._last_q is None else self._last_q.copy()

    def reset(self) -> None:
        """Forget the command history (e.g. on activation): the next command starts at rest."""
        self._last_q = None
        self._last_step[:] = 0.0
        self._last_gripper = math.nan
        self._v[:] = 0.0
        self._a[:] = 0.0

    @property
    def velocity(self) -> np.ndarray:
        """Velocity of the last output (rad/s); zero until a command was sent."""
        return self._last_step / self.dt if not self.jerk_limited else self._v.copy()

    @property
    def acceleration(self) -> np.ndarray:
        """Acceleration of the last output (rad/s^2); jerk-limited mode only, else zeros."""
        return self._a.copy()

    @property
    def at_rest(self) -> bool:
        """True when the last output stands still (a graceful stop has finished)."""
        return bool(np.all(self.velocity == 0.0) and np.all(self._a == 0.0))

    def hold(self, reason: str, measured_q: np.ndarray | None = None) -> SafetyResult:
        """Refuse this cycle: return the last safe command, else the measured position.

        If neither exists, q is NaN and the caller must not send anything. In jerk-limited mode
        the returned q decelerates from the last command to rest over the next calls instead.
        """
        if self.jerk_limited and self._last_q is not None:
            return self._brake(reason)
        self._last_step[:] = 0.0
        if self._last_q is not None:
            q = self._last_q.copy()
        elif measured_q is not None and np.shape(measured_q) == (7,) and np.all(np.isfinite(measured_q)):
            q = np.array(measured_q, dtype=np.float64)
        else:
            q = np.full(7, math.nan)
        return SafetyResult(q=q, gripper=self._last_gripper, state=SAFETY_HOLD, reason=reason)

    def filter(self, command_q: np.ndarray, gripper: float | None,
               measured_q: np.ndarray) -> SafetyResult:
        """Make a commanded joint position (and gripper width) safe to send, or hold."""
        q = np.array(command_q, dtype=np.float64).reshape(-1)
        if q.shape != (7,):
            return self.hold(f"command must have 7 joints, got {q.shape[0]}", measured_q)
        if not np.all(np.isfinite(q)):
            bad = int(np.flatnonzero(~np.isfinite(q))[0]) + 1
            return self.hold(f"non-finite command at joint {bad}", measured_q)
        if gripper is not None and not math.isfinite(gripper):
            return self.hold("non-finite gripper command", measured_q)
        measured = np.asarray(measured_q, dtype=np.float64)
        if measured.shape != (7,) or not np.all(np.isfinite(measured)):
            return self.hold("measured joint positions missing or not finite", measured_q)

        if self.jerk_limited:
            return self._filter_jerk_limited(q, gripper, measured)
        reasons = []
        ref = self._last_q if self._last_q is not None else measured
        # Step limit: velocity bound, and the change of step bounded by the acceleration limit.
        step = q - ref
        lo = np.maximum(-self.step_max, self._last_step - self.accel_step)
        hi = np.minimum(self.step_max, self._last_step + self.accel_step)
        lo = np.minimum(lo, hi)
        limited_step = np.clip(step, lo, hi)
        if np.any(limited_step != step):
            j = int(np.argmax(np.abs(limited_step - step))) + 1
            reasons.append(f"velocity/acceleration step limit (joint {j})")
            q = ref + limited_step
        clipped = np.clip(q, self.q_lo, self.q_hi)
        if np.any(clipped != q):
            j = int(np.argmax(np.abs(clipped - q))) + 1
            reasons.append(f"joint position limit (joint {j})")
            q = clipped

        outside = self._workspace_violation(q)
        if outside:
            return self.hold(outside, measured)

        g = self._gripper_width(gripper, reasons)
        self._last_step = q - ref
        self._last_q = q.copy()
        self._last_gripper = g
        state = SAFETY_LIMITED if reasons else SAFETY_OK
        return SafetyResult(q=q, gripper=g, state=state, reason="; ".join(reasons))

    # ------------------------------------------------------------------ gripper
    def _workspace_violation(self, q: np.ndarray) -> str:
        """Why the TCP of `q` is outside the workspace box, or "" when it is inside."""
        tcp = tcp_position(q)
        outside = (tcp < self.ws_min) | (tcp > self.ws_max)
        if not np.any(outside):
            return ""
        axis = "xyz"[int(np.flatnonzero(outside)[0])]
        return (f"TCP {np.round(tcp, 3).tolist()} outside workspace box on {axis} "
                f"[{self.ws_min.tolist()}, {self.ws_max.tolist()}]")

    def _gripper_width(self, gripper: float | None, reasons: list[str]) -> float:
        if gripper is None:
            return self._last_gripper if math.isfinite(self._last_gripper) else math.nan
        g = min(max(float(gripper), 0.0), GRIPPER_MAX_WIDTH_M)
        if g != gripper:
            reasons.append(f"gripper width {gripper:.4f} outside [0, {GRIPPER_MAX_WIDTH_M}]")
        return g

    # ------------------------------------------------------------------ jerk-limited mode
    def _accel_bounds(self, v: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Accelerations allowed for the next period, per joint.

        Besides |a'| <= a_max and |a' - a| <= j_max dt, the velocity must stay reachable: after
        this period, ramping the acceleration down to zero at the jerk limit adds a'^2 / (2 j_max)
        to the velocity at most, so v + a' dt + a'|a'| / (2 j_max) must stay inside +-v_max.
        Greedy clipping without this margin would reach v_max still accelerating, and from there
        no jerk-bounded step keeps the velocity in bounds. The interval is never empty when the
        previous output met the same condition (a' = a -+ j_max dt always qualifies).
        """
        dt, jm = self.dt, self.j_max
        lo = np.maximum(-self.a_max, a - jm * dt)
        hi = np.minimum(self.a_max, a + jm * dt)
        jdt = jm * dt
        hi_v = -jdt + np.sqrt(jdt * jdt + 2.0 * jm * np.maximum(self.v_max - v, 0.0))
        lo_v = jdt - np.sqrt(jdt * jdt + 2.0 * jm * np.maximum(self.v_max + v, 0.0))
        lo, hi = np.maximum(lo, lo_v), np.minimum(hi, hi_v)
        # Rounding only: fall back to the jerk bound nearest to the velocity-safe side.
        bad = lo > hi
        if np.any(bad):
            lo[bad] = hi[bad] = np.clip(0.0, a[bad] - jdt[bad], a[bad] + jdt[bad])
        return lo, hi

    def _stop_distance(self, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Upper bound of the distance travelled forward when braking from (v, a) at full jerk.

        Continuous-time S-curve (ramp a to zero, then a trapezoidal or triangular deceleration
        profile, whose mean velocity is half the start velocity) plus two periods of travel for
        the discretisation.
        """
        jm, am = self.j_max, self.a_max
        ap = np.maximum(a, 0.0)
        v1 = np.maximum(v + ap * ap / (2.0 * jm), 0.0)
        ramp = v1 * ap / jm
        trapezoid = v1 >= am * am / jm
        brake_time = np.where(trapezoid, v1 / am + am / jm, 2.0 * np.sqrt(v1 / jm))
        return ramp + 0.5 * v1 * brake_time + 2.0 * v1 * self.dt

    def _position_bounds(self, q: np.ndarray, v: np.ndarray, lo: np.ndarray,
                         hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shrink [lo, hi] so the output can still stop inside the joint limits after this period.

        Clipping positions at the limit would stop the joint dead (an acceleration and jerk
        spike); instead the acceleration is capped early enough to brake under the limits.
        The stop distance grows with a', so the bound is found by bisection (vectorised).
        """
        dt = self.dt

        def fits_up(acc: np.ndarray) -> np.ndarray:
            v1 = v + acc * dt
            return q + v1 * dt + self._stop_distance(v1, acc) <= self.q_hi

        def fits_down(acc: np.ndarray) -> np.ndarray:
            v1 = v + acc * dt
            return q + v1 * dt - self._stop_distance(-v1, -acc) >= self.q_lo

        new_hi, new_lo = hi.copy(), lo.copy()
        up_bad, down_bad = ~fits_up(hi), ~fits_down(lo)
        if np.any(up_bad):
            ok, bad = lo.copy(), hi.copy()  # if even lo does not fit, lo is the best there is
            for _ in range(20):  # (hi - lo) / 2^20 < 1e-4 rad/s^2
                mid = 0.5 * (ok + bad)
                f = fits_up(mid)
                ok, bad = np.where(f, mid, ok), np.where(f, bad, mid)
            new_hi = np.where(up_bad, ok, hi)
        if np.any(down_bad):
            ok, bad = hi.copy(), lo.copy()
            for _ in range(20):  # (hi - lo) / 2^20 < 1e-4 rad/s^2
                mid = 0.5 * (ok + bad)
                f = fits_down(mid)
                ok, bad = np.where(f, mid, ok), np.where(f, bad, mid)
            new_lo = np.where(down_bad, ok, lo)
        new_lo = np.minimum(new_lo, new_hi)
        return new_lo, new_hi

    def _track(self, error: np.ndarray, v: np.ndarray, a: np.ndarray, lo: np.ndarray,
               hi: np.ndarray) -> np.ndarray:
        """Acceleration that brings the output to `error` away and stops it there, within [lo, hi].

        Cascade: a braking velocity profile v_des(distance) under a_max (linear in the last
        period, so the output lands instead of chattering), then an acceleration that reaches
        v_des with the acceleration itself at zero under the jerk limit.
        """
        dt = self.dt
        remaining = error - v * dt
        # Braking at half the acceleration limit leaves room for the jerk-limited ramps; the
        # discrete-time profile (velocity changes once per period) does not overshoot at low rates.
        ab = 0.5 * self.a_max
        half = 0.5 * ab * dt
        v_brake = -half + np.sqrt(half * half + 2.0 * ab * np.abs(remaining))
        v_des = np.sign(remaining) * np.minimum(v_brake, np.abs(remaining) / dt)
        v_des = np.clip(v_des, -self.v_max, self.v_max)
        dv = v_des - v
        a_des = np.sign(dv) * np.minimum(np.sqrt(2.0 * self.j_max * np.abs(dv)), np.abs(dv) / dt)
        return np.clip(a_des, lo, hi)

    def _commit(self, q: np.ndarray, v: np.ndarray, a: np.ndarray) -> None:
        self._last_step = v * self.dt
        self._v, self._a = v, a
        self._last_q = q.copy()

    def _filter_jerk_limited(self, target: np.ndarray, gripper: float | None,
                             measured: np.ndarray) -> SafetyResult:
        reasons: list[str] = []
        ref = self._last_q if self._last_q is not None else measured
        v, a, dt = self._v, self._a, self.dt
        clipped = np.clip(target, self.q_lo, self.q_hi)
        if np.any(clipped != target):
            j = int(np.argmax(np.abs(clipped - target))) + 1
            reasons.append(f"joint position limit (joint {j})")
            target = clipped
        lo, hi = self._accel_bounds(v, a)
        lo, hi = self._position_bounds(ref, v, lo, hi)
        a_raw = ((target - ref) / dt - v) / dt
        if np.all((a_raw >= lo) & (a_raw <= hi)):
            a_new, q = a_raw, target
            v_new = (target - ref) / dt
        else:
            a_new = self._track(target - ref, v, a, lo, hi)
            v_new = v + a_new * dt
            q = ref + v_new * dt
            j = int(np.argmax(np.abs(a_new - a_raw))) + 1
            reasons.append(f"velocity/acceleration/jerk limit (joint {j})")
        guarded = np.clip(q, self.q_lo, self.q_hi)
        if np.any(guarded != q):
            # Last resort: position safety wins over smoothness.
            j = int(np.argmax(np.abs(guarded - q))) + 1
            if f"joint position limit (joint {j})" not in reasons:
                reasons.append(f"joint position limit (joint {j})")
            v_new = (guarded - ref) / dt
            a_new = (v_new - v) / dt
            q = guarded

        outside = self._workspace_violation(q)
        if outside:
            return self.hold(outside, measured)

        g = self._gripper_width(gripper, reasons)
        self._commit(q, v_new, a_new)
        self._last_gripper = g
        state = SAFETY_LIMITED if reasons else SAFETY_OK
        return SafetyResult(q=q.copy(), gripper=g, state=state, reason="; ".join(reasons))

    def _brake(self, reason: str) -> SafetyResult:
        """One period of a graceful stop: decelerate the last command to rest within the limits."""
        v, a, dt = self._v, self._a, self.dt
        lo, hi = self._accel_bounds(v, a)
        a_stop = -v / dt
        if np.all((a_stop >= lo) & (a_stop <= hi)) and np.all(np.abs(a_stop) <= self.j_max * dt):
            # Lands at rest this period, and a -> 0 next period is within the jerk limit.
            q = self._last_q.copy()
            self._commit(q, np.zeros(7), a_stop)
            return SafetyResult(q=q, gripper=self._last_gripper, state=SAFETY_HOLD, reason=reason)
        else:
            dv = -v
            a_des = np.sign(dv) * np.minimum(np.sqrt(2.0 * self.j_max * np.abs(dv)), np.abs(dv) / dt)
            a_new = np.clip(a_des, lo, hi)
        v_new = v + a_new * dt
        if np.all(v == 0.0) and np.all(np.abs(a) <= self.j_max * dt):
            a_new, v_new = np.zeros(7), np.zeros(7)  # at rest: stay exactly where we are
        q = self._last_q + v_new * dt
        self._commit(q, v_new, a_new)
        return SafetyResult(q=q.copy(), gripper=self._last_gripper, state=SAFETY_HOLD, reason=reason)
