"""Run-time plausibility of measured joints: shape, limits, speed between readings, tracking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lps_steering.core.measurement import MeasurementConfig, MeasurementMonitor, PlausibilityFault
from lps_steering.core.robot import RobotLimits
from lps_steering.core.safety import SafetyFilter

READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
LIM = RobotLimits.for_robot("fr3")
DT = 0.01


def monitor(**kw) -> MeasurementMonitor:
    return MeasurementMonitor(LIM, MeasurementConfig(**kw))


def fault_of(m: MeasurementMonitor, q, stamp, command=None) -> PlausibilityFault:
    with pytest.raises(PlausibilityFault) as info:
        m.check(q, stamp, command)
    return info.value


@pytest.mark.parametrize("q, check, fragment", [
    ([], "shape", "must be 7 values, got 0"),
    (READY[:6], "shape", "must be 7 values, got 6"),
    (np.r_[READY, 0.0, 0.0], "shape", "got 9"),
    ("abc", "shape", "not numbers"),
    (np.r_[READY[:2], math.nan, READY[3:]], "finite", "joint 3 position is not finite"),
    (np.r_[math.inf, READY[1:]], "finite", "joint 1 position is not finite"),
])
def test_malformed_readings_name_the_check(q, check, fragment):
    fault = fault_of(monitor(), q, 1.0)
    assert fault.check == check and fragment in fault.reason


def test_joint_beyond_its_limit_trips_with_a_small_tolerance_only():
    m = monitor()
    q = READY.copy()
    q[0] = LIM.q_max[0] + 0.4  # the probe that drove the arm 1 rad
    fault = fault_of(m, q, 1.0)
    assert fault.check == "limits" and "joint 1 at 3.1437 rad" in fault.reason
    q[0] = LIM.q_max[0] + 0.009  # encoder noise at the limit is tolerated
    m.check(q, 1.0)
    q[0] = LIM.q_min[0] - 0.011
    assert fault_of(monitor(), q, 1.0).check == "limits"


def test_jump_faster_than_the_robot_trips_and_judges_by_the_readings_stamps():
    m = monitor()
    m.check(READY, 1.0)
    jumped = READY.copy()
    jumped[0] += 0.5
    fault = fault_of(m, jumped, 1.0 + DT)
    assert fault.check == "speed" and "joint 1 moved 0.5000 rad in 10.0 ms" in fault.reason
    # The same motion over a long gap is plausible (the arm had time), by the stamps.
    m.check(jumped, 1.0 + 1.0)
    # Motion at the robot's own speed limit passes; 1.6x (beyond the 1.5 factor) does not.
    q = jumped.copy()
    q[4] += LIM.dq_max[4] * DT
    m.check(q, 2.0 + DT)
    q2 = q.copy()
    q2[4] += 1.6 * LIM.dq_max[4] * DT + 0.006
    assert "joint 5" in fault_of(m, q2, 2.0 + 2 * DT).reason


def test_duplicates_same_stamp_conflicts_and_out_of_order_readings():
    m = monitor()
    m.check(READY, 5.0)
    m.check(READY.copy(), 5.0)  # the same reading again: no news, passes
    other = READY + 0.001
    fault = fault_of(m, other, 5.0)
    assert fault.check == "stamp" and "same stamp" in fault.reason and "second publisher" in fault.reason
    fault = fault_of(m, READY, 4.99)
    assert fault.check == "stamp" and "before the previous one" in fault.reason
    assert fault_of(m, READY, math.nan).check == "stamp"
    # A fault does not replace the last good reading: the next one is judged against it.
    np.testing.assert_array_equal(m.last_reading, READY)
    m.check(READY + 0.001, 5.01)
    m.forget()  # e.g. on resume after a simulator restart: its clock starts again
    m.check(READY, 0.0)


def test_tracking_error_beyond_the_bound_trips_at_once_and_can_be_disabled():
    m = monitor()
    m.check(READY, 1.0, READY)
    offset = READY.copy()
    offset[0] += 0.5
    # Jumped and off the command: the speed check sees it first.
    assert fault_of(m, offset, 1.0 + DT, READY).check == "speed"
    # Reported after a long silence (no speed fault possible): tracking names the gap.
    fault = fault_of(m, offset, 3.0, READY)
    assert fault.check == "tracking" and "joint 1" in fault.reason and "gap 0.5000 > bound 0.25" in fault.reason
    off = monitor(tracking_bound_rad=0.0)
    off.check(offset, 1.0, READY)


def test_a_repeated_reading_is_not_judged_for_tracking():
    """Inputs gone silent: the cycle sees the last reading again while the brake moves the command."""
    m = monitor()
    m.check(READY, 1.0, READY)
    moved = READY.copy()
    moved[0] += 0.4  # the command braked 0.4 rad away from the last reading
    m.check(READY, 1.0, moved)  # same stamp, same values: nothing new about tracking
    # A new reading there is a tracking error.
    assert fault_of(m, READY, 1.5, moved).check == "tracking"


def test_normal_closed_loop_never_trips():
    """A jerk-limited stream followed by a lagging arm (the gap the sim and fake robot show)."""
    f = SafetyFilter(LIM, 1.0 / DT, jerk_scale=0.5, workspace_min=(-2, -2, -2), workspace_max=(2, 2, 2))
    m = monitor()
    rng = np.random.default_rng(0)
    arm, command, worst_gap = READY.copy(), None, 0.0
    for k in range(3000):
        target = READY + (0.6 * np.sin(k / 80.0 + np.arange(7)) if k % 500 < 400 else rng.normal(0, 0.4, 7))
        measured = arm + rng.normal(0.0, 2e-4, 7)  # encoder noise
        m.check(measured, k * DT, command)
        if command is not None:
            worst_gap = max(worst_gap, float(np.abs(command - measured).max()))
        command = f.filter(target, None, measured).q
        arm = arm + 0.25 * (command - arm)  # a position controller that lags its command
    assert worst_gap > 0.03  # as far behind as the sim bridge over ROS at its worst (0.040 rad)


def test_future_stamp_is_refused_without_poisoning_the_history():
    m = monitor()
    m.check(READY, 10.0, now_s=10.0)
    with pytest.raises(PlausibilityFault) as info:
        m.check(READY, 60.0, now_s=10.01)
    assert info.value.check == "future" and not info.value.latching and "49.990 s in the future" in info.value.reason
    m.check(READY, 10.02, now_s=10.02)  # sane stamps again: judged against the last sane reading
    assert fault_of(m, READY + 0.5, 10.03, None).check == "speed"
