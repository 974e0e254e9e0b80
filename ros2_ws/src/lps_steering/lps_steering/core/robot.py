"""Facts about the supported Franka arms, in one place: joint counts, names and limits.

Everything that depends on which arm is connected reads it from here (the safety filter's
limits, the measurement checks, the node's joint-name lookup, the sim bridge's naming), so a
new robot is one entry in `_LIMITS` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARM_DOF = 7
# The Franka Hand's maximum opening (m); both the sim and the real gripper report it as the sum
# of the two finger joint positions.
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
# Supported robots; also the joint-name prefix franka_ros2 uses (`fr3_joint1`, `panda_joint1`).
ROBOTS: tuple[str, ...] = tuple(sorted(_LIMITS))


def _check_robot(robot: str) -> None:
    if robot not in _LIMITS:
        raise ValueError(f"`robot` must be one of {list(ROBOTS)}, got {robot!r}")


def arm_joint_names(robot: str) -> list[str]:
    """franka_ros2's arm joint names for `robot`, base to flange: `<robot>_joint1..7`."""
    _check_robot(robot)
    return [f"{robot}_joint{i}" for i in range(1, ARM_DOF + 1)]


def finger_joint_names(robot: str) -> list[str]:
    """The Franka Hand's two finger joints for `robot`; their positions sum to the width."""
    _check_robot(robot)
    return [f"{robot}_finger_joint1", f"{robot}_finger_joint2"]


@dataclass(frozen=True)
class RobotLimits:
    """Per-joint limits of one robot (numpy arrays of ARM_DOF values, base to flange)."""

    robot: str
    q_min: np.ndarray
    q_max: np.ndarray
    dq_max: np.ndarray
    ddq_max: np.ndarray
    dddq_max: np.ndarray

    ROBOTS = frozenset(_LIMITS)

    @classmethod
    def for_robot(cls, robot: str) -> RobotLimits:
        _check_robot(robot)
        t = _LIMITS[robot]
        return cls(robot=robot, **{k: np.array(v, dtype=np.float64) for k, v in t.items()})
