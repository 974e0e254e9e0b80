"""The workspace box is never left: the jerk-limited filter brakes before the wall.

Property tests on the filter's OUTPUT: for adversarial command streams and tight boxes, no
output's TCP is outside the box, and neither is any point of the braking path the filter would
follow from that output (computed here independently, by running `hold` on a copy of the filter
until it rests). Every step stays within the velocity, acceleration and jerk limits.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from lps_steering.core.kinematics import tcp_position, tcp_positions
from lps_steering.core.safety import SAFETY_LIMITED, SAFETY_OK, RobotLimits, SafetyFilter

READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
TOL = 1e-6


def make(box_min, box_max=(0.85, 0.6, 0.9), rate=100.0, **kw) -> SafetyFilter:
    args = dict(velocity_scale=0.5, acceleration_scale=0.5, max_step=0.02, jerk_scale=0.5)
    args.update(kw)
    return SafetyFilter(RobotLimits.for_robot("fr3"), rate, workspace_min=box_min, workspace_max=box_max, **args)


def braking_path(f: SafetyFilter) -> np.ndarray:
    """Where the arm would go if every later cycle held: repeated holds on a copy, to rest."""
    g = copy.deepcopy(f)
    points = [g.last_command]
    for _ in range(2000):
        points.append(g.hold("probe").q)
        if g.at_rest:
            return np.array(points)
    raise AssertionError("the brake never came to rest")


def outside_by(f: SafetyFilter, q: np.ndarray) -> float:
    tcp = tcp_positions(np.atleast_2d(q))
    return float(np.max(np.maximum(np.maximum(f.ws_min - tcp, tcp - f.ws_max), 0.0)))


def assert_derivatives_within_limits(f: SafetyFilter, q: np.ndarray) -> None:
    v = np.diff(q, axis=0) / f.dt
    a = np.diff(v, axis=0) / f.dt
    j = np.diff(a, axis=0) / f.dt
    assert np.all(np.abs(v) <= f.v_max * (1 + TOL))
    assert np.all(np.abs(a) <= f.a_max * (1 + TOL))
    assert np.all(np.abs(j) <= f.j_max * (1 + TOL))
    assert np.all(q >= f.q_lo - 1e-12) and np.all(q <= f.q_hi + 1e-12)


def run_stream(f: SafetyFilter, targets, start=READY) -> tuple[np.ndarray, list]:
    out, results = [np.array(start, float)], []
    for target in targets:
        res = f.filter(target, None, out[-1])
        results.append(res)
        out.append(res.q)
        assert outside_by(f, res.q) == 0.0, f"output TCP {tcp_position(res.q)} outside the box"
        assert outside_by(f, braking_path(f)) == 0.0, "the braking path from this output leaves the box"
    return np.array(out), results


@pytest.mark.parametrize("seed", range(6))
def test_random_adversarial_targets_in_tight_boxes(seed):
    rng = np.random.default_rng(seed)
    floor = tcp_position(READY)[2] - rng.uniform(0.02, 0.15)  # the floor just under the start
    f = make((0.2, -0.6, floor))
    targets = []
    for k in range(300):
        # Dives to the floor, far jumps and noise: whatever a broken policy could send.
        kind = k // 50 % 3
        if kind == 2:
            targets.append(READY + rng.normal(0.0, 1.0, 7))
        elif kind == 0:
            dive = READY.copy()
            dive[1] += 0.9  # leans forward: the TCP heads ~0.35 m down
            targets.append(dive + rng.normal(0.0, 0.05, 7))
        else:
            targets.append(READY + rng.normal(0.0, 0.3, 7))
    q, results = run_stream(f, targets)
    assert_derivatives_within_limits(f, q)
    braked = [r for r in results if "braking before the boundary" in r.reason]
    assert braked and all(r.state == SAFETY_LIMITED for r in braked)


def test_dive_to_the_floor_stops_above_it_and_is_not_stuck():
    f = make((0.2, -0.6, 0.3))
    low = READY.copy()
    low[1] += 0.8  # leans forward: the TCP would end well under z = 0.3
    assert tcp_position(low)[2] < 0.25
    q, results = run_stream(f, [low] * 200)
    assert_derivatives_within_limits(f, q)
    assert f.at_rest and "on z" in results[-1].reason and "braking before the boundary" in results[-1].reason
    # It stopped close to the wall, not far above it (the brake starts when it must).
    assert tcp_position(q[-1])[2] < 0.3 + 0.03
    # Commands back inside are followed: the arm is not stuck at the wall.
    q2, results2 = run_stream(f, [READY] * 300, start=q[-1])
    assert results2[-1].state == SAFETY_OK
    np.testing.assert_allclose(q2[-1], READY, atol=1e-9)


def test_start_outside_accepts_commands_not_further_out_only():
    f = make((0.2, -0.6, 0.3))
    low = READY.copy()
    low[1] += 0.6
    start_out = outside_by(f, low)
    assert start_out > 0.0
    # Further out: refused (the output stays at the measured start, braking from rest).
    lower = low.copy()
    lower[1] += 0.1
    res = f.filter(lower, None, low)
    np.testing.assert_array_equal(res.q, low)
    assert "braking before the boundary" in res.reason
    # Back in: followed, and every output is no further out than the start.
    out = [low]
    for _ in range(300):
        res = f.filter(READY, None, out[-1])
        out.append(res.q)
        assert outside_by(f, res.q) <= start_out + 1e-12
    assert_derivatives_within_limits(f, np.array(out))
    assert outside_by(f, out[-1]) == 0.0 and res.state == SAFETY_OK


def test_braking_model_is_what_hold_does():
    f = make((0.2, -0.6, 0.02))
    rng = np.random.default_rng(3)
    for _ in range(60):
        f.filter(READY + rng.normal(0.0, 0.5, 7), None, READY)
        expected = braking_path(f)
        got = f._brake_path(f.last_command, f._v.copy(), f._a.copy())[0]
        np.testing.assert_array_equal(got[:len(expected)], expected[:len(got)])
        assert np.all(got[-1] == expected[-1])


@pytest.mark.parametrize("rate", [100.0, 1000.0])
def test_joint_limits_hold_under_adversarial_streams_with_the_box_near(rate):
    f = make((0.2, -0.6, 0.15), rate=rate)
    rng = np.random.default_rng(7)
    targets = [READY + rng.choice([-3.0, 3.0], 7) for _ in range(int(rate * 0.8))]
    q, _ = run_stream(f, targets[: int(rate * 0.3)])
    assert_derivatives_within_limits(f, q)


@pytest.mark.parametrize("rate", [30.0, 100.0, 1000.0])
def test_the_cheap_reach_bound_covers_every_braking_path(rate):
    """Far from the walls the filter skips the exact path on a per-joint travel bound: it must hold."""
    f = make((0.2, -0.6, 0.02), rate=rate)
    rng = np.random.default_rng(int(rate))
    for _ in range(200):
        v = rng.uniform(-1.0, 1.0, 7) * f.v_max
        a = rng.uniform(-1.0, 1.0, 7) * f.a_max
        travel = np.abs(f._brake_path(READY, v, a)[0] - READY).max(axis=0)
        assert np.all(travel <= f._stop_distance(v, a) + f._stop_distance(-v, -a) + 1e-12)


def tcp_jacobian(q: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    p = tcp_position(q)
    return np.stack([(tcp_position(q + eps * np.eye(7)[i]) - p) / eps for i in range(7)], axis=1)


@pytest.mark.parametrize("seed", range(8))
def test_a_command_straight_inside_leaves_the_wall_from_rest(seed):
    """At rest at the wall, a target whose joint line moves the TCP inward is followed at once.

    The joints' magnitudes differ by up to 100x: tracking each joint at its own limit bends the
    joint-space direction, and the bent path can go out even though the line to the target does
    not; such a command must still be followed, not braked on forever.
    """
    rng = np.random.default_rng(100 + seed)
    f = make((0.2, -0.6, 0.3))
    dive = READY.copy()
    dive[1] += 0.8
    q, _ = run_stream(f, [dive + rng.normal(0.0, 0.1, 7) for _ in range(150)])
    q, _ = run_stream(f, [q[-1]] * 60, start=q[-1])  # come to rest where it stopped
    assert f.at_rest
    rest = q[-1]
    z0 = tcp_position(rest)[2]
    assert z0 - 0.3 < 0.01  # it is at the wall
    jac = tcp_jacobian(rest)
    for _ in range(5):
        while True:  # a joint step that moves the TCP mostly up (inward from the floor), magnitudes spread
            d = rng.normal(0.0, 1.0, 7) * rng.choice([0.01, 1.0], 7)
            d *= rng.uniform(0.05, 0.3) / np.abs(d).max()
            if jac[2] @ d > 0.3 * np.linalg.norm(jac @ d):
                break
        target = rest + d
        rise = tcp_position(target)[2] - z0
        g = copy.deepcopy(f)
        q2, results = run_stream(g, [target] * 50, start=rest)
        assert_derivatives_within_limits(g, np.concatenate([q[-3:], q2[1:]]))
        z = tcp_positions(q2)[:, 2]
        # Moves inward within a few periods and keeps going: a third of the way up in half a second.
        assert np.any(z[1:4] > z0), [r.reason for r in results[:3]]
        assert z[-1] - z0 > 0.3 * rise, (z[-1] - z0, rise, results[-1].reason)
