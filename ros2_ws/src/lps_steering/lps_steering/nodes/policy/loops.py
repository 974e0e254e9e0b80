"""The control thread's loops: when a cycle runs. What a cycle does is `PolicyNode.cycle`.

trigger=timer: the thread waits for joint states until absolute deadlines on the steady clock,
or on the ROS clock when use_sim_time is set; deadlines already lost are skipped (and counted as
missed), never caught up in a burst. trigger=observation: one cycle per received joint state, run
as soon as it is taken. A missed cycle is one that starts more than one command period after its
deadline.

Every wait is bounded in steady time and ends on a stop request, so stopping never waits for a
sim clock. Under sim time, a /clock that stops advancing for `watchdog_timeout_ms` makes the
timer loop hold (brake commands at the command rate, on steady time) with the reason
"sim clock stalled"; the lock-step observation loop reports it in ~/status instead (there, a
stopped sim waits for nothing from the node and no command is due).
"""

from __future__ import annotations

import time
from typing import Any

from lps_steering.nodes.policy.timing import RosClockWaiter

SPIN_BEFORE_DEADLINE_S = 0.0003  # timer trigger: busy-wait this much before each deadline


class ControlLoops:
    """Runs one of the loops for `runner` (the node) until `runner.stop` is set."""

    def __init__(self, runner: Any) -> None:
        self.r = runner
        self.waiter: RosClockWaiter | None = None

    def run(self) -> None:
        r = self.r
        if r.settings.trigger == 'observation':
            self.observation()
        elif r.settings.sim_time:
            self.ros_clock()
        else:
            self.steady()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            waiter.wake()

    def steady(self) -> None:
        r = self.r
        period = r.settings.period_s
        source = r.inputs
        deadline = time.monotonic() + period
        while not r.stop.is_set():
            wait = deadline - time.monotonic() - SPIN_BEFORE_DEADLINE_S
            if wait > 0.0:
                # Joint states are taken as they arrive, so their receipt times are true ones.
                if source.wait(wait):
                    r.take_inputs()
                continue
            # A timed wait wakes 0.05-1 ms late depending on load; the last stretch is spun.
            while time.monotonic() < deadline:
                pass
            r.take_inputs()
            r.cycle(time.monotonic() - deadline)
            deadline += period
            behind = time.monotonic() - deadline
            if behind > period:
                # Skip the deadlines already lost instead of bursting to catch up; each counts.
                lost = int(behind // period)
                r.missed += lost
                deadline += lost * period

    def ros_clock(self) -> None:
        r = self.r
        period = r.settings.period_s
        period_ns = int(round(period * 1e9))
        stall_s = r.settings.watchdog_timeout_s
        waiter = self.waiter = RosClockWaiter(r.get_clock())
        try:
            deadline = waiter.now_ns() + period_ns
            stalled = False
            while not r.stop.is_set():
                # Bounded by one period of steady time: a stopped clock still gives the loop a
                # turn every period, to notice the stall and keep braking.
                out = waiter.wait_until(deadline, period)
                if r.stop.is_set():
                    return
                if out == waiter.JUMPED:
                    deadline = waiter.now_ns() + period_ns  # time went back or changed source
                    continue
                if out == waiter.REACHED:
                    if stalled:
                        stalled = False
                        r.clock_stalled('')
                        deadline = waiter.now_ns() + period_ns
                        continue
                    r.take_inputs()
                    r.cycle((waiter.now_ns() - deadline) * 1e-9)
                    deadline += period_ns
                    behind = waiter.now_ns() - deadline
                    if behind > period_ns:
                        # As on steady time: a burst of catch-up commands would reach a
                        # real-time sim within one of its periods, a jump for its arm. A lag
                        # beyond the stall timeout is the clock catching up (the first /clock
                        # after start), not cycles this loop missed.
                        lost = behind // period_ns
                        if behind <= stall_s * 1e9:
                            r.missed += lost
                        deadline += lost * period_ns
                    continue
                silent = waiter.stalled_for()
                if silent > stall_s:
                    stalled = True
                    r.clock_stalled(f'sim clock stalled: /clock has not advanced for {silent:.3f} s '
                                    f'(timeout {stall_s} s)')
                    r.take_inputs()
                    r.cycle(0.0)
        finally:
            self.waiter = None
            waiter.close()

    def observation(self) -> None:
        r = self.r
        source = r.inputs
        max_age = r.settings.max_age_s
        quiet_since = idle_since = time.monotonic()
        # The state that passed the start-up checks has not been answered yet; a lock-step sim
        # publishes it once and waits for the command.
        r.take_inputs()
        if r.inputs.sample is not None:
            r.cycle((time.monotonic_ns() - r.inputs.arrival_ns) * 1e-9)
        while not r.stop.is_set():
            ready = source.wait(max(0.0, quiet_since + max_age - time.monotonic()))
            if r.stop.is_set():
                return
            if ready and r.take_inputs():
                quiet_since = idle_since = time.monotonic()
                r.cycle((time.monotonic_ns() - r.inputs.arrival_ns) * 1e-9)
            elif time.monotonic() - quiet_since >= max_age:
                quiet_since = time.monotonic()
                if r.settings.sim_time and r.sim_time_idle():
                    # Sim time has not moved on by more than a period since the last cycle: a
                    # lock-step sim is still working on our command (a loaded machine), or its
                    # next joint state is on its way, so no cycle is due. Another command would
                    # advance it one extra period and make the episode depend on machine load. A
                    # clock that went back (a restarted sim) counts as moved.
                    r.note_idle_sim(quiet_since - idle_since)
                    continue
                idle_since = quiet_since
                # Nothing arrived for max_age: run a cycle anyway so the controller holds (stale).
                r.cycle(0.0)
