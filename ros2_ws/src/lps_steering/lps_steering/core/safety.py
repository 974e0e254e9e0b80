"""The last stage before the robot: joint, velocity, acceleration and workspace limits; hold on doubt.

`SafetyFilter.filter` returns the command actually to be sent, and a state: OK (unchanged),
LIMITED (clipped, reason says which limit) or HOLD (the command was refused; the last safe
command, or the measured position if there was none, is returned instead). The numbering is
lps_msgs/SteeringTelemetry's SAFETY_*.
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
                 workspace_max: tuple[float, float, float] = (0.85, 0.6, 0.9)) -> None:
        if not math.isfinite(command_rate_hz) or command_rate_hz <= 0:
            raise ValueError(f"`command_rate_hz` must be > 0, got {command_rate_hz!r}")
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

    @property
    def last_command(self) -> np.ndarray | None:
        return None if self._last_q is None else self._last_q.copy()

    def reset(self) -> None:
        """Forget the command history (e.g. on activation): the next command starts at rest."""
        self._last_q = None
        self._last_step[:] = 0.0
        self._last_gripper = math.nan

    def hold(self, reason: str, measured_q: np.ndarray | None = None) -> SafetyResult:
        """Refuse this cycle: return the last safe command, else the measured position.

        If neither exists, q is NaN and the caller must not send anything.
        """
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

        tcp = tcp_position(q)
        outside = (tcp < self.ws_min) | (tcp > self.ws_max)
        if np.any(outside):
            axis = "xyz"[int(np.flatnonzero(outside)[0])]
            return self.hold(f"TCP {np.round(tcp, 3).tolist()} outside workspace box on {axis} "
                             f"[{self.ws_min.tolist()}, {self.ws_max.tolist()}]", measured)

        g = math.nan
        if gripper is not None:
            g = min(max(float(gripper), 0.0), GRIPPER_MAX_WIDTH_M)
            if g != gripper:
                reasons.append(f"gripper width {gripper:.4f} outside [0, {GRIPPER_MAX_WIDTH_M}]")
        elif math.isfinite(self._last_gripper):
            g = self._last_gripper

        self._last_step = q - ref
        self._last_q = q.copy()
        self._last_gripper = g
        state = SAFETY_LIMITED if reasons else SAFETY_OK
        return SafetyResult(q=q, gripper=g, state=state, reason="; ".join(reasons))
