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

The workspace box is a property of the whole motion, not of one command: a braking arm keeps
moving. In jerk-limited mode a command is accepted only if the TCP stays inside the box along
the path the filter itself would brake along from it (`hold` from that state); otherwise the
filter starts braking now, one period earlier than the last moment it still could. Since every
accepted state has an inside braking path, braking is always possible and a hold never carries
the TCP out. A state that is outside already (the arm was started or moved there) accepts the
commands that do not take the TCP further out, so the arm can always be brought back.

Braking is not the only answer to a refused command: each joint tracks its target at its own
limits, which bends the joint-space direction, so near a wall the tracked path can go out even
when the straight joint line to the target goes in. The filter then tries the brake plus a push
along that line (checked the same way) before braking, so an arm stopped at the wall leaves it
as soon as it is sent somewhere straight inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .kinematics import TCP_LEVER_M, tcp_position, tcp_positions
from .robot import ARM_DOF, GRIPPER_MAX_WIDTH_M, RobotLimits

SAFETY_OK = 0
SAFETY_LIMITED = 1
SAFETY_HOLD = 2
# Braking periods simulated exactly per check. A brake from full speed takes ~25 periods at
# 100 Hz, so there the whole path is exact; at higher rates the rest of the path is covered by
# the conservative reach bound from where the simulation stopped, which keeps the cost of a check
# near a wall at about 32 periods' worth (~0.8 ms) at any rate, at the price of braking earlier.
_EXACT_BRAKE_PERIODS = 32
_MAX_BRAKE_PERIODS = 100_000
# The move along the joint line to the target (tried when a command is refused near a wall) is
# only taken while its braking path is this short: it is meant for leaving a wall from (near)
# rest, and the limit keeps a refused cycle's two checks within ~40 simulated periods.
_SHORT_BRAKE_PERIODS = 8

__all__ = ["GRIPPER_MAX_WIDTH_M", "SAFETY_HOLD", "SAFETY_LIMITED", "SAFETY_OK", "RobotLimits",
           "SafetyFilter", "SafetyResult"]


@dataclass
class SafetyResult:
    """One filtered command. `fault`: the hold was caused by bad input (a non-finite command or
    measurement), which the controller latches; workspace and limit actions are not faults."""

    q: np.ndarray
    gripper: float
    state: int
    reason: str
    fault: bool = False


class SafetyFilter:
    """Per-cycle command filter at the command rate.

    Args:
        limits: the robot's joint limits.
        command_rate_hz: rate at which filter() is called (sets the per-step limits).
        joint_margin: distance kept from the joint position limits (rad).
        max_step: largest change of any joint between two commands (rad).
        velocity_scale, acceleration_scale: fractions of the robot's limits that are allowed.
        workspace_min, workspace_max: TCP box (m, base frame). Jerk-limited mode brakes before
            the boundary (see the module docstring); without jerk limiting the arm stops dead,
            so a command whose TCP is outside is refused (HOLD at the last command).
        jerk_scale: fraction of the robot's jerk limits, or None for no jerk limiting.
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
        self._last_step = np.zeros(ARM_DOF)
        self._last_gripper = math.nan
        # Jerk-limited mode works on velocity and acceleration of the output (finite differences).
        self.jerk_limited = jerk_scale is not None
        self.v_max = self.step_max / self.dt
        self.a_max = acceleration_scale * limits.ddq_max
        self.j_max = (jerk_scale or 1.0) * limits.dddq_max
        self._v = np.zeros(ARM_DOF)
        self._a = np.zeros(ARM_DOF)
        # Whether the braking path of the committed state is known to stay inside the box: True
        # after an accepted command passed the check, False when the state is outside (or was
        # re-anchored and not checked yet). Braking is the safe fallback only while it is True.
        self._path_inside = False

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
        self._path_inside = False

    def restart_from(self, measured_q: np.ndarray) -> None:
        """Continue from the measured joints instead of the last command (after any hold).

        A command history that the arm no longer follows (it was stopped by its own controller,
        pushed, or the reading was wrong while the hold lasted) must not be continued: the next
        output starts at the measurement, at most one period's allowed step from it. Velocity and
        acceleration are kept: the controller restarts only once a brake is at rest (re-anchoring
        at speed on a measurement that trails the command would reverse the stream).
        """
        q = np.asarray(measured_q, dtype=np.float64).reshape(-1)
        if q.shape != (ARM_DOF,) or not np.all(np.isfinite(q)):
            raise ValueError(f"`measured_q` must be {ARM_DOF} finite joint positions, got {q.tolist()}")
        if self._last_q is None:
            return  # nothing was sent: the next command starts from the measurement anyway
        self._last_q = q.copy()
        if not self.jerk_limited:
            self._last_step[:] = 0.0
        self._path_inside = False

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

    def hold(self, reason: str, measured_q: np.ndarray | None = None, fault: bool = False) -> SafetyResult:
        """Refuse this cycle: return the last safe command, else the measured position (which
        becomes the command held from then on).

        If neither exists, q is NaN and the caller must not send anything. In jerk-limited mode
        the returned q decelerates from the last command to rest over the next calls instead.
        Never raises: a malformed `measured_q` counts as none.
        """
        if self.jerk_limited and self._last_q is not None:
            return self._brake(reason, fault)
        self._last_step[:] = 0.0
        if self._last_q is not None:
            q = self._last_q.copy()
        else:
            q = _finite_joints(measured_q)
            if q is None:
                q = np.full(ARM_DOF, math.nan)
            else:
                # Without a history the hold anchors at this reading, at rest: holding at each new
                # reading would chase the arm (and its sensor noise) instead of holding it.
                self._commit(q, np.zeros(ARM_DOF), np.zeros(ARM_DOF))
                self._path_inside = False
        return SafetyResult(q=q, gripper=self._last_gripper, state=SAFETY_HOLD, reason=reason, fault=fault)

    def filter(self, command_q: np.ndarray, gripper: float | None,
               measured_q: np.ndarray) -> SafetyResult:
        """Make a commanded joint position (and gripper width) safe to send, or hold."""
        q = np.array(command_q, dtype=np.float64).reshape(-1)
        if q.shape != (ARM_DOF,):
            return self.hold(f"command must have {ARM_DOF} joints, got {q.shape[0]}", measured_q, fault=True)
        if not np.all(np.isfinite(q)):
            bad = int(np.flatnonzero(~np.isfinite(q))[0]) + 1
            return self.hold(f"non-finite command at joint {bad}", measured_q, fault=True)
        if gripper is not None and not math.isfinite(gripper):
            return self.hold("non-finite gripper command", measured_q, fault=True)
        measured = _finite_joints(measured_q)
        if measured is None:
            return self.hold("measured joint positions missing or not finite", measured_q, fault=True)

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

        # Without jerk limiting a hold stops dead at the last command: the command itself is the
        # whole stopping path. A state already outside accepts commands not further out.
        out_by, where = self._point_violation(q)
        if out_by > 0.0:
            ref_out = 0.0 if self._path_inside else self._point_violation(ref)[0]
            if out_by > ref_out:
                return self.hold(where, measured)
            reasons.append(where + " (not further out: accepted)")
        self._path_inside = out_by == 0.0

        g = self._gripper_width(gripper, reasons)
        self._last_step = q - ref
        self._last_q = q.copy()
        self._last_gripper = g
        state = SAFETY_LIMITED if reasons else SAFETY_OK
        return SafetyResult(q=q, gripper=g, state=state, reason="; ".join(reasons))

    # ------------------------------------------------------------------ workspace
    def _describe(self, tcp: np.ndarray, what: str) -> str:
        outside = (tcp < self.ws_min) | (tcp > self.ws_max)
        axis = "xyz"[int(np.flatnonzero(outside)[0])] if np.any(outside) else "?"
        what = f" {what}" if what else ""
        return (f"TCP {np.round(tcp, 3).tolist()}{what} outside workspace box on {axis} "
                f"[{self.ws_min.tolist()}, {self.ws_max.tolist()}]")

    def _violation(self, tcp: np.ndarray) -> np.ndarray:
        """How far (m) each TCP position [N, 3] lies outside the box; 0 inside."""
        return np.maximum(np.max(np.maximum(self.ws_min - tcp, tcp - self.ws_max), axis=-1), 0.0)

    def _point_violation(self, q: np.ndarray) -> tuple[float, str]:
        tcp = tcp_position(q)
        out_by = float(self._violation(tcp[None, :])[0])
        return out_by, (self._describe(tcp, "") if out_by > 0.0 else "")

    def _path_violation(self, q: np.ndarray, v: np.ndarray, a: np.ndarray) -> tuple[float, str]:
        """Largest distance outside the box of the TCP along the braking path from (q, v, a).

        First a cheap bound: every point of the path lies within the stopping distance of q per
        joint, and the TCP moves at most TCP_LEVER_M . |dq|; if the TCP at q is deeper inside
        than that, the path is inside. Otherwise the path is simulated exactly as `hold` would
        brake (the same per-period steps) and every point is checked; beyond _EXACT_BRAKE_PERIODS
        the rest is bounded from the last simulated state the same cheap way.
        """
        tcp = tcp_position(q)
        margin = self._reach_margin(v, a)
        if np.all(tcp - margin >= self.ws_min) and np.all(tcp + margin <= self.ws_max):
            return 0.0, ""
        path, v_end, a_end = self._brake_path(q, v, a, _EXACT_BRAKE_PERIODS)
        tcps = tcp_positions(path)
        out = self._violation(tcps)
        if v_end.any():  # not at rest yet: the tail stays within the reach of the last point
            tail = self._reach_margin(v_end, a_end)
            out[-1] = max(float(out[-1]), float(np.max(np.maximum(self.ws_min + tail - tcps[-1],
                                                                  tcps[-1] + tail - self.ws_max))))
        k = int(np.argmax(out))
        if out[k] <= 0.0:
            return 0.0, ""
        what = "would be" if k == 0 else f"would come {1e3 * out[k]:.1f} mm while braking,"
        return float(out[k]), self._describe(tcps[k], what)

    def _short_path_violation(self, q: np.ndarray, v: np.ndarray, a: np.ndarray) -> float:
        """`_path_violation` for a braking path that ends at rest within _SHORT_BRAKE_PERIODS;
        infinite for a longer one. Bounds the cost of the second check a cycle can need."""
        path, v_end, _ = self._brake_path(q, v, a, _SHORT_BRAKE_PERIODS)
        if v_end.any():
            return math.inf
        return float(np.max(self._violation(tcp_positions(path))))

    def _reach_margin(self, v: np.ndarray, a: np.ndarray) -> float:
        """Farthest the TCP can move while braking from (v, a): joint travel bound x lever arms."""
        reach = self._stop_distance(v, a) + self._stop_distance(-v, -a)
        return float(TCP_LEVER_M @ reach) + 1e-9

    def _brake_path(self, q: np.ndarray, v: np.ndarray, a: np.ndarray,
                    max_periods: int = _MAX_BRAKE_PERIODS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions [N, 7] of the brake from (q, v, a) to rest (or `max_periods` of it), q first
        (what `hold` outputs), and the velocity and acceleration at the last point.

        The same arithmetic as `_brake_step` / `_accel_bounds`, inlined: this loop runs once per
        braking period whenever the TCP is near a wall, and the function calls cost more than
        the arithmetic. `test_core_workspace` checks that it equals repeated `hold`s.
        """
        dt, jm, am, vm = self.dt, self.j_max, self.a_max, self.v_max
        jdt = jm * dt
        jdt2 = jdt * jdt
        points = [q]
        for _ in range(max_periods):
            abs_a_ok = np.abs(a) <= jdt
            if not v.any() and abs_a_ok.all():
                break  # `_brake_step` stays exactly here from now on
            lo = np.maximum(np.maximum(-am, a - jdt), jdt - np.sqrt(jdt2 + 2.0 * jm * np.maximum(vm + v, 0.0)))
            hi = np.minimum(np.minimum(am, a + jdt), -jdt + np.sqrt(jdt2 + 2.0 * jm * np.maximum(vm - v, 0.0)))
            bad = lo > hi
            if bad.any():
                lo[bad] = hi[bad] = np.clip(0.0, a[bad] - jdt[bad], a[bad] + jdt[bad])
            a_stop = -v / dt
            if ((a_stop >= lo) & (a_stop <= hi) & (np.abs(a_stop) <= jdt)).all():
                v, a = np.zeros(ARM_DOF), a_stop
                points.append(q)
                continue
            a_new = np.clip(np.sign(a_stop) * np.minimum(np.sqrt(2.0 * jm * np.abs(v)), np.abs(a_stop)), lo, hi)
            if not v.any() and abs_a_ok.all():
                v, a = np.zeros(ARM_DOF), np.zeros(ARM_DOF)
            else:
                v, a = v + a_new * dt, a_new
            q = q + v * dt
            points.append(q)
        return np.array(points), v, a

    # ------------------------------------------------------------------ gripper

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
        if self._last_q is None:
            # First command: start at rest from the measurement (the velocity and acceleration of
            # a forgotten history must not carry over).
            self._v, self._a = np.zeros(ARM_DOF), np.zeros(ARM_DOF)
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

        out_by, where = self._path_violation(q, v_new, a_new)
        if out_by > 0.0:
            # Brake this period instead: its path is the tail of the committed state's path.
            qb, vb, ab = self._brake_step(ref, v, a)
            brake_out = 0.0 if self._path_inside else self._path_violation(qb, vb, ab)[0]
            line = None if out_by <= brake_out else self._along_line(target - ref, ref, v, ab, a_new, lo, hi)
            line_out = self._short_path_violation(*line) if line is not None else math.inf
            if out_by <= brake_out:
                reasons.append(where + " (not further out than braking: accepted)")
            elif line_out <= brake_out:
                q, v_new, a_new = line
                reasons.append(where + ": moving on the straight joint line to the target instead")
                out_by = line_out
            else:
                q, v_new, a_new = qb, vb, ab
                reasons.append(where + ": braking before the boundary")
                out_by = brake_out
        self._path_inside = out_by == 0.0

        g = self._gripper_width(gripper, reasons)
        self._commit(q, v_new, a_new)
        self._last_gripper = g
        state = SAFETY_LIMITED if reasons else SAFETY_OK
        return SafetyResult(q=q.copy(), gripper=g, state=state, reason="; ".join(reasons))

    def _along_line(self, d: np.ndarray, ref: np.ndarray, v: np.ndarray, a_brake: np.ndarray,
                    a_want: np.ndarray, lo: np.ndarray,
                    hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The brake plus a push along the joint line to the target, or None if there is no room.

        Near a wall the tracking acceleration is no good guide: each joint ramps on its own, so
        the joint-space direction (and with it the TCP's) bends away from the line to the target,
        and the tracked path to a target straight inside can go out. From rest the brake is
        standing still and this push moves along the line itself, so whatever the line does to
        the TCP first (inward for a target inside) is what the output does. Half the room the
        limits leave keeps the brake from it short (from rest: it stops in the next period); the
        push is no stronger than the tracking wanted on its largest joint, so it does not overshoot.
        """
        span = float(np.max(np.abs(d)))
        if not span > 0.0:
            return None
        moving = d != 0.0
        room = np.where(d > 0.0, hi - a_brake, lo - a_brake)[moving] / d[moving]
        c = min(0.5 * float(np.min(room)), float(np.max(np.abs(a_want - a_brake))) / span)
        if not c > 0.0:
            return None
        a = a_brake + c * d
        v_new = v + a * self.dt
        q = ref + v_new * self.dt
        # The brake itself may lie outside the joint-position bounds of [lo, hi] (it only keeps
        # the velocity and jerk limits): then this is no candidate.
        if np.any(a < lo) or np.any(a > hi) or np.any(q < self.q_lo) or np.any(q > self.q_hi):
            return None
        return q, v_new, a

    def _brake(self, reason: str, fault: bool = False) -> SafetyResult:
        """One period of a graceful stop: decelerate the last command to rest within the limits."""
        q, v, a = self._brake_step(self._last_q, self._v, self._a)
        self._commit(q, v, a)
        return SafetyResult(q=q.copy(), gripper=self._last_gripper, state=SAFETY_HOLD, reason=reason,
                            fault=fault)

    def _brake_step(self, q: np.ndarray, v: np.ndarray,
                    a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The state one braking period after (q, v, a); a pure function, so the workspace check
        can replay exactly the path a hold would take."""
        dt = self.dt
        lo, hi = self._accel_bounds(v, a)
        a_stop = -v / dt
        if np.all((a_stop >= lo) & (a_stop <= hi)) and np.all(np.abs(a_stop) <= self.j_max * dt):
            # Lands at rest this period, and a -> 0 next period is within the jerk limit.
            return q.copy(), np.zeros(ARM_DOF), a_stop
        dv = -v
        a_des = np.sign(dv) * np.minimum(np.sqrt(2.0 * self.j_max * np.abs(dv)), np.abs(dv) / dt)
        a_new = np.clip(a_des, lo, hi)
        v_new = v + a_new * dt
        if np.all(v == 0.0) and np.all(np.abs(a) <= self.j_max * dt):
            a_new, v_new = np.zeros(ARM_DOF), np.zeros(ARM_DOF)  # at rest: stay exactly where we are
        return q + v_new * dt, v_new, a_new


def _finite_joints(q: object) -> np.ndarray | None:
    """`q` as ARM_DOF finite float64 joint positions, or None when it is anything else."""
    try:
        arr = np.asarray(q, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if arr.shape != (ARM_DOF,) or not np.all(np.isfinite(arr)):
        return None
    return arr.copy()
