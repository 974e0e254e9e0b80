"""Whether a Franka arm may be commanded, judged from its newest robot mode (no ROS here).

franka_msgs/FrankaRobotState.robot_mode follows libfranka's RobotMode. Only IDLE (brakes open, no
motion running) and MOVE (a motion generator / controller running) let a policy command the
arm; every other mode either belongs to someone else (GUIDING: a person moves the arm) or needs
an operator (REFLEX, USER_STOPPED, OTHER) or is passing (AUTOMATIC_ERROR_RECOVERY).
"""

from __future__ import annotations

from dataclasses import dataclass

OTHER, IDLE, MOVE, GUIDING, REFLEX, USER_STOPPED, AUTOMATIC_ERROR_RECOVERY = range(7)
MODE_NAMES = {OTHER: "OTHER", IDLE: "IDLE", MOVE: "MOVE", GUIDING: "GUIDING", REFLEX: "REFLEX",
              USER_STOPPED: "USER_STOPPED", AUTOMATIC_ERROR_RECOVERY: "AUTOMATIC_ERROR_RECOVERY"}
READY_MODES = frozenset({IDLE, MOVE})
NO_MODE = -1  # RobotReadiness.robot_mode when the source has none

_WHAT_TO_DO = {
    REFLEX: "a reflex stopped the arm: check the cause, then call the supervisor's ~/recover",
    USER_STOPPED: "the user stop is pressed: release it, then call ~/recover if the mode stays",
    GUIDING: "the arm is being guided by hand: release the guiding button",
    OTHER: "the robot is in a mode the FCI cannot command (brakes locked? FCI off?): check Desk",
    AUTOMATIC_ERROR_RECOVERY: "automatic error recovery is running",
}


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    robot_mode: int


def mode_name(mode: int) -> str:
    return MODE_NAMES.get(mode, f"unknown ({mode})")


def judge(mode: int | None, age_s: float | None, max_age_s: float) -> Readiness:
    """Ready iff a robot state arrived within `max_age_s` and its mode is IDLE or MOVE."""
    if mode is None or age_s is None:
        return Readiness(False, "no franka_msgs/FrankaRobotState received yet", NO_MODE)
    if age_s > max_age_s:
        return Readiness(False, f"robot state is stale: newest is {age_s * 1e3:.0f} ms old "
                                f"(limit {max_age_s * 1e3:.0f} ms)", mode)
    if mode in READY_MODES:
        return Readiness(True, "", mode)
    hint = _WHAT_TO_DO.get(mode, "")
    return Readiness(False, f"robot mode {mode_name(mode)}" + (f": {hint}" if hint else ""), mode)
