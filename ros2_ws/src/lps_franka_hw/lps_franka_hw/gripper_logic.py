"""Open/close decisions for franka_gripper from a stream of commanded widths (no ROS).

The policy streams a gripper width (m) at the command rate; franka_gripper takes discrete,
slow actions (`move` to open, `grasp` to close, each taking hundreds of milliseconds). This
state machine turns the stream into as few goals as possible:

- hysteresis: close below `close_below_m`, open above `open_above_m`, keep the current
  decision in between, so a width hovering at one threshold does not chatter;
- one goal per direction: while a goal runs, or after it finished, the same direction never
  sends again; only a change of direction does, and it preempts a running goal;
- a direction change sooner than `min_switch_interval_s` after the previous goal is deferred
  (delivered by `tick` once the interval is over, if still wanted), so a policy that flips
  open/close every cycle yields at most one goal per interval;
- a non-finite width is ignored with a reason: on doubt the gripper keeps what it does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    OPEN = "open"
    CLOSE = "close"


@dataclass(frozen=True)
class GripperConfig:
    """Thresholds and goal parameters of the gripper bridge.

    Attributes:
        close_below_m: a commanded width below this closes the gripper (grasp).
        open_above_m: a commanded width above this opens it (move); must exceed close_below_m.
        open_width_m: width the `move` goal opens to.
        max_width_m: the hand's largest opening (Franka Hand: 0.08 m).
        move_speed_mps: speed of `move` goals.
        grasp_width_m: expected object width sent with `grasp`.
        grasp_epsilon_inner_m, grasp_epsilon_outer_m: tolerated deviation of the final width
            from `grasp_width_m` for the grasp to count as successful.
        grasp_speed_mps: closing speed of `grasp` goals.
        grasp_force_n: grasping force (the Franka Hand holds up to 70 N continuously).
        min_switch_interval_s: least time between two goals of opposite direction.
    """

    close_below_m: float = 0.03
    open_above_m: float = 0.05
    open_width_m: float = 0.08
    max_width_m: float = 0.08
    move_speed_mps: float = 0.1
    grasp_width_m: float = 0.0
    grasp_epsilon_inner_m: float = 0.005
    grasp_epsilon_outer_m: float = 0.08
    grasp_speed_mps: float = 0.1
    grasp_force_n: float = 40.0
    min_switch_interval_s: float = 0.5

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(f"`{name}` must be {expected}, got {getattr(self, name)!r}")

        for name in ("close_below_m", "open_above_m", "open_width_m", "max_width_m",
                     "move_speed_mps", "grasp_width_m", "grasp_epsilon_inner_m",
                     "grasp_epsilon_outer_m", "grasp_speed_mps", "grasp_force_n",
                     "min_switch_interval_s"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool)
                 and math.isfinite(value) and value >= 0.0, name, "a finite number >= 0")
        need(0.0 < self.max_width_m <= 0.1, "max_width_m", "in (0, 0.1] m")
        need(self.close_below_m < self.open_above_m, "close_below_m",
             f"below `open_above_m` ({self.open_above_m})")
        need(self.open_above_m <= self.max_width_m, "open_above_m",
             f"<= `max_width_m` ({self.max_width_m})")
        need(self.open_width_m <= self.max_width_m, "open_width_m",
             f"<= `max_width_m` ({self.max_width_m})")
        need(self.grasp_width_m <= self.max_width_m, "grasp_width_m",
             f"<= `max_width_m` ({self.max_width_m})")
        need(self.move_speed_mps > 0.0, "move_speed_mps", "> 0")
        need(self.grasp_speed_mps > 0.0, "grasp_speed_mps", "> 0")


@dataclass(frozen=True)
class GripperGoal:
    """A goal to send: `move` (open) or `grasp` (close); `preempt` says a goal is still running."""

    direction: Direction
    width: float
    speed: float
    force: float = 0.0
    epsilon_inner: float = 0.0
    epsilon_outer: float = 0.0
    preempt: bool = False

    @property
    def action(self) -> str:
        return "move" if self.direction is Direction.OPEN else "grasp"


class GripperStateMachine:
    """Commanded widths in, franka_gripper goals out. Times are seconds on any monotonic clock.

    Calls: `command(width, now)` for every received width, `tick(now)` periodically (delivers a
    deferred direction change), `goal_finished(success, now)` when the running goal ends.
    Each returns the goal to send now, or None.
    """

    def __init__(self, config: GripperConfig | None = None) -> None:
        self.config = config or GripperConfig()
        self.wanted: Direction | None = None  # decision of the hysteresis
        self.sent: Direction | None = None  # direction of the last goal sent
        self.running = False
        self.last_sent_s = -math.inf
        self.last_result: bool | None = None
        self.goals_sent = 0
        self.ignored = 0
        self.last_reason = ""

    def command(self, width: float, now_s: float) -> GripperGoal | None:
        try:
            w = float(width)
        except (TypeError, ValueError):
            w = math.nan
        if not math.isfinite(w):
            self.ignored += 1
            self.last_reason = f"gripper command must be a finite width in m, got {width!r}: ignored"
            return None
        cfg = self.config
        if w < cfg.close_below_m:
            self.wanted = Direction.CLOSE
        elif w > cfg.open_above_m:
            self.wanted = Direction.OPEN
        # else: inside the hysteresis band, the decision stands.
        return self._maybe_send(now_s)

    def tick(self, now_s: float) -> GripperGoal | None:
        return self._maybe_send(now_s)

    def goal_finished(self, success: bool, now_s: float) -> GripperGoal | None:
        """The running goal ended. A failed grasp (nothing between the fingers) is not retried:
        the next goal comes with the next change of direction."""
        self.running = False
        self.last_result = bool(success)
        return self._maybe_send(now_s)

    @property
    def pending(self) -> bool:
        """A direction change is wanted but deferred by `min_switch_interval_s`."""
        return self.wanted is not None and self.wanted != self.sent

    def _maybe_send(self, now_s: float) -> GripperGoal | None:
        if self.wanted is None or self.wanted == self.sent:
            return None
        if self.sent is not None and now_s - self.last_sent_s < self.config.min_switch_interval_s:
            self.last_reason = (f"{self.wanted.value} deferred: last goal {now_s - self.last_sent_s:.3f} s "
                                f"ago, min_switch_interval_s={self.config.min_switch_interval_s}")
            return None
        goal = self._goal(self.wanted, preempt=self.running)
        self.sent = self.wanted
        self.running = True
        self.last_sent_s = now_s
        self.last_result = None
        self.goals_sent += 1
        self.last_reason = ""
        return goal

    def _goal(self, direction: Direction, preempt: bool) -> GripperGoal:
        cfg = self.config
        if direction is Direction.OPEN:
            return GripperGoal(Direction.OPEN, cfg.open_width_m, cfg.move_speed_mps, preempt=preempt)
        return GripperGoal(Direction.CLOSE, cfg.grasp_width_m, cfg.grasp_speed_mps,
                           force=cfg.grasp_force_n, epsilon_inner=cfg.grasp_epsilon_inner_m,
                           epsilon_outer=cfg.grasp_epsilon_outer_m, preempt=preempt)
