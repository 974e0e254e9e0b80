"""Safety filter: each limit, NaN -> HOLD, workspace box, hold semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lps_steering.core.kinematics import tcp_position
from lps_steering.core.safety import (
    SAFETY_HOLD,
    SAFETY_LIMITED,
    SAFETY_OK,
    RobotLimits,
    SafetyFilter,
)

READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
RATE = 100.0


def make(robot="fr3", **kw) -> SafetyFilter:
    return SafetyFilter(RobotLimits.for_robot(robot), RATE, **kw)


def test_limit_tables_differ_per_robot_and_unknown_robot_is_refused():
    fr3, panda = RobotLimits.for_robot("fr3"), RobotLimits.for_robot("panda")
    assert fr3.q_min[5] == pytest.approx(0.5445) and panda.q_min[5] == pytest.approx(-0.0175)
    assert np.all(fr3.q_min < fr3.q_max) and np.all(panda.q_min < panda.q_max)
    with pytest.raises(ValueError, match="`robot` must be one of \\['fr3', 'panda'\\], got 'ur5'"):
        RobotLimits.for_robot("ur5")


def test_small_command_passes_unchanged():
    f = make()
    target = READY + 1e-4
    res = f.filter(target, 0.04, READY)
    assert res.state == SAFETY_OK and res.reason == ""
    np.testing.assert_allclose(res.q, target)
    assert res.gripper == 0.04


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_command_holds_at_measured_then_last_safe(bad):
    f = make()
    cmd = READY.copy()
    cmd[3] = bad
    res = f.filter(cmd, 0.04, READY)
    assert res.state == SAFETY_HOLD and "non-finite command at joint 4" in res.reason
    np.testing.assert_array_equal(res.q, READY)  # no command yet: hold the measured position
    ok = f.filter(READY + 1e-4, 0.04, READY)
    res = f.filter(cmd, 0.04, READY + 0.01)
    assert res.state == SAFETY_HOLD
    np.testing.assert_array_equal(res.q, ok.q)  # last safe command, not the (moved) measurement
    assert f.filter(READY, math.nan, READY).state == SAFETY_HOLD


def test_step_is_bounded_by_velocity_and_acceleration():
    f = make(max_step=0.02, velocity_scale=0.5, acceleration_scale=0.5)
    lim = RobotLimits.for_robot("fr3")
    dt = 1 / RATE
    accel_step = 0.5 * lim.ddq_max * dt * dt
    target = READY.copy()
    target[0] += 0.5  # far away: must be approached under the limits
    q_prev, step_prev = READY.copy(), np.zeros(7)
    steps = []
    for _ in range(200):
        res = f.filter(target, None, READY)
        step = res.q - q_prev
        assert np.all(np.abs(step) <= np.minimum(0.02, 0.5 * lim.dq_max * dt) + 1e-12)
        assert np.all(np.abs(step - step_prev) <= accel_step + 1e-12)
        steps.append(step[0])
        q_prev, step_prev = res.q, step
    assert steps[0] == pytest.approx(accel_step[0])  # starts from rest
    assert max(steps) == pytest.approx(min(0.02, 0.5 * lim.dq_max[0] * dt))  # cruises at the bound
    assert "velocity/acceleration step limit (joint 1)" in f.filter(target + 0.5, None, READY).reason


def test_joint_limits_with_margin():
    # The box is opened wide: this test is about joint limits only.
    f = make(joint_margin=0.05, max_step=0.2, velocity_scale=1.0, acceleration_scale=1.0,
             workspace_min=(-2.0, -2.0, -2.0), workspace_max=(2.0, 2.0, 2.0))
    lim = RobotLimits.for_robot("fr3")
    q = lim.q_max.copy() - 0.06
    f.filter(q, None, q)  # prime the history at the edge
    over = q.copy()
    over[5] = lim.q_max[5] + 0.3
    res = None
    for _ in range(100):
        res = f.filter(over, None, q)
    assert res.state == SAFETY_LIMITED and "joint position limit (joint 6)" in res.reason
    assert res.q[5] == pytest.approx(lim.q_max[5] - 0.05)


def test_workspace_box_refuses_leaving_and_accepts_coming_back():
    """Without jerk limiting a hold stops dead at the last command, so the command is the path."""
    box = dict(workspace_min=(0.2, -0.6, 0.3), workspace_max=(0.85, 0.6, 0.9), max_step=0.2,
               velocity_scale=1.0, acceleration_scale=1.0)
    f = make(**box)
    assert f.filter(READY, 0.04, READY).state == SAFETY_OK
    low = READY.copy()
    low[1] += 0.6  # lean forward: TCP drops below z = 0.3
    assert tcp_position(low)[2] < 0.3
    q = READY
    for _ in range(40):
        res = f.filter(low, 0.04, q)
        assert tcp_position(res.q)[2] >= 0.3
        q = res.q
    assert res.state == SAFETY_HOLD and "outside workspace box on z" in res.reason and not res.fault
    back = f.filter(READY, 0.04, q)
    assert back.state != SAFETY_HOLD and np.abs(back.q - q).max() > 0.0
    # Started outside (the arm was put there): commands not further out are accepted.
    g = make(**box)
    lower = low.copy()
    lower[1] += 0.05
    assert g.filter(lower, 0.04, low).state == SAFETY_HOLD
    res = g.filter(READY, 0.04, low)
    assert res.state == SAFETY_LIMITED and "not further out" in res.reason
    assert tcp_position(res.q)[2] > tcp_position(low)[2]


def test_gripper_width_clipped():
    f = make()
    res = f.filter(READY, 0.2, READY)
    assert res.state == SAFETY_LIMITED and res.gripper == 0.08 and "gripper width" in res.reason
    assert make().filter(READY, -0.01, READY).gripper == 0.0


def test_hold_without_any_reference_gives_nan_that_must_not_be_sent():
    res = make().hold("no data", None)
    assert res.state == SAFETY_HOLD and np.all(np.isnan(res.q))


def test_bad_margin_refused():
    with pytest.raises(ValueError, match="joint_margin"):
        make(joint_margin=2.0)
