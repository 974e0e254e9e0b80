"""Time for the policy node: message-time conversions and a ROS-clock wait that cannot hang.

`RosClockWaiter` replaces `Clock.sleep_until` in the control thread under sim time.
`sleep_until` wakes only when /clock passes the deadline, the time source changes or the context
shuts down: a sim that dies leaves it asleep forever, the control thread with it, and a stop
request waits for it (a node that does not stop, then SIGABRT at exit). The waiter wakes on
every /clock advance (the same jump callback `sleep_until` uses), on `wake()` and at least every
`POLL_S` of steady time, so the caller sees stop requests at once and can tell for how long
/clock has not moved.
"""

from __future__ import annotations

import math
import threading
import time

from builtin_interfaces.msg import Duration, Time
from rclpy.clock import Clock, ClockChange, JumpThreshold, TimeJump
from rclpy.duration import Duration as RosDuration

POLL_S = 0.05


def duration_msg(seconds: float) -> Duration:
    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def seconds(stamp: Time) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def seconds_of_ns(ns: int) -> float:
    """`ns` in seconds, the float `seconds` gives for a stamp of that instant. `ns * 1e-9` is
    another float for about a third of the 10 ms instants (2.5100000000000002 for 2.51): a cycle
    taking the max of the node's clock and a message's stamp would then see one of two times,
    depending on which one the load let arrive first, and lock-step episodes would drift apart."""
    return ns // 1_000_000_000 + 1e-9 * (ns % 1_000_000_000)


def time_msg(secs: float) -> Time:
    if not math.isfinite(secs):
        return Time()
    ns = int(secs * 1e9)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class RosClockWaiter:
    """Waits on a ROS clock with a steady-time bound; see the module docstring."""

    REACHED, WOKEN, JUMPED = 'reached', 'woken', 'jumped'

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._last_advance = time.monotonic()
        self._jumped = False
        self._woken = False
        threshold = JumpThreshold(min_forward=RosDuration(nanoseconds=1),
                                  min_backward=RosDuration(nanoseconds=-1), on_clock_change=True)
        self._handle = clock.create_jump_callback(threshold, post_callback=self._on_jump)

    def _on_jump(self, jump: TimeJump) -> None:
        with self._cond:
            self._last_advance = time.monotonic()
            if jump.delta.nanoseconds < 0 or jump.clock_change in (
                    ClockChange.ROS_TIME_ACTIVATED, ClockChange.ROS_TIME_DEACTIVATED):
                self._jumped = True
            self._cond.notify_all()

    def now_ns(self) -> int:
        return self._clock.now().nanoseconds

    def stalled_for(self) -> float:
        """Steady seconds since the clock last moved (or since this waiter was made)."""
        return time.monotonic() - self._last_advance

    def wait_until(self, deadline_ns: int, max_wait_s: float) -> str:
        """REACHED once the clock is at `deadline_ns`; JUMPED if it went back or changed source;
        WOKEN after `wake()` or `max_wait_s` of steady time without reaching it."""
        give_up = time.monotonic() + max_wait_s
        with self._cond:
            while True:
                if self._woken:
                    self._woken = False
                    return self.WOKEN
                if self._jumped:
                    self._jumped = False
                    return self.JUMPED
                if self._clock.now().nanoseconds >= deadline_ns:
                    return self.REACHED
                left = give_up - time.monotonic()
                if left <= 0.0:
                    return self.WOKEN
                self._cond.wait(min(left, POLL_S))

    def wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def close(self) -> None:
        self._handle.unregister()
