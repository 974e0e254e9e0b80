"""The fault suite's own judge (tests/fault_suite.py) on made-up command streams: it must catch
every kind of unsafe command it claims to, and pass a stream that brakes and resumes cleanly.
Its forward kinematics is written independently of the core's; the two are compared here once."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fault_suite import DT, READY, STEP, WS_MIN, Window, is_braking, judge, tcp
from lps_steering.core.kinematics import tcp_position


def _stream(t0: float, q0: np.ndarray, velocities: list[np.ndarray]) -> list[tuple[float, np.ndarray]]:
    """Commands one period apart, integrating the given per-period velocities from q0."""
    out, q, t = [], q0.copy(), t0
    for v in velocities:
        q = q + v * DT
        out.append((t, q.copy()))
        t += DT
    return out


def _ramp(n: int, speed: float, joint: int = 0) -> list[np.ndarray]:
    out = []
    for k in range(n):
        v = np.zeros(7)
        v[joint] = speed * min(1.0, (k + 1) / 20)
        out.append(v)
    return out


def _brake(speed: float, n: int, joint: int = 0) -> list[np.ndarray]:
    out = []
    for k in range(n):
        v = np.zeros(7)
        v[joint] = max(0.0, speed * (1 - (k + 1) / 10))
        out.append(v)
    return out


def _states(commands, lag: int = 0):
    """Joint states every period, measuring the command `lag` commands before the newest one."""
    times = [t for t, _ in commands]
    out, t = [], times[0] - DT / 2
    while t < times[-1] + DT:
        i = int(np.searchsorted(times, t)) - 1
        out.append((t, commands[max(0, i - lag)][1]))
        t += DT
    return out


def test_independent_tcp_matches_the_core() -> None:
    rng = np.random.default_rng(0)
    for q in [READY, np.zeros(7), *rng.uniform(-2.5, 2.5, size=(50, 7))]:
        np.testing.assert_allclose(tcp(q), tcp_position(q), atol=1e-9)


def test_a_clean_brake_and_resume_from_measured_passes() -> None:
    moving = _stream(0.0, READY, _ramp(50, 0.6))
    braking = _stream(moving[-1][0] + DT, moving[-1][1], [np.full(7, 0.0) + v for v in _brake(0.6, 40)])
    rest_q = braking[-1][1]
    resume_t = braking[-1][0] + 0.3
    resumed = _stream(resume_t + DT, rest_q, _ramp(20, 0.3))
    commands = moving + braking + resumed
    states = _states(commands)
    onset = braking[0][0] - 1e-3
    v = judge(commands, states, [0.0, resume_t], [Window(onset, resume_t, 2, 'fault', onset + 0.2)],
              resume_at=resume_t)
    assert v.unsafe == [] and v.problems == []
    assert v.latency == 0 and v.self_resumed is False and v.resumed is True
    assert max(v.jumps) < 1e-3  # the first step of the ramp from the measured pose


def test_self_resume_late_brake_and_abandoned_arm_are_caught() -> None:
    moving = _stream(0.0, READY, _ramp(50, 0.6))
    onset = moving[30][0] - 1e-3         # 20 more accelerating-or-cruising commands after the fault
    clear = moving[40][0] - 1e-3
    v = judge(moving, _states(moving), [0.0], [Window(onset, moving[-1][0] + 0.5, 2, 'fault', clear)])
    assert any(u.startswith('nonhold:') for u in v.unsafe)
    assert v.self_resumed                 # accelerating after the fault cleared
    assert any('brake abandoned' in p for p in v.problems)
    held = _stream(0.0, READY, [np.zeros(7)] * 30)
    v = judge(held, _states(held), [0.0], [], resume_at=0.1)
    assert v.resumed is False             # asked to resume, never moved again


def test_a_resume_far_from_the_measured_pose_is_a_jump() -> None:
    held = _stream(0.0, READY, [np.zeros(7)] * 20)
    resume_t = held[-1][0] + 0.2
    # The arm was moved (restarted elsewhere): measured 0.9 rad away, the node continues from its
    # old reference.
    elsewhere = READY + np.array([0.9, 0, 0, 0, 0, 0, 0])
    after = _stream(resume_t + DT, READY, _ramp(5, 0.3))
    states = [(t, elsewhere) for t in np.arange(-DT / 2, after[-1][0], DT)]
    v = judge(held + after, states, [0.0, resume_t], [])
    assert any(u.startswith('jump:') for u in v.unsafe)
    assert max(v.jumps) == pytest.approx(0.9, abs=0.01)


def test_steps_limits_and_the_box_are_checked_on_every_command() -> None:
    q = READY.copy()
    commands = [(0.0, q.copy())]
    big = q.copy()
    big[0] += 2 * STEP[0]
    commands.append((DT, big))
    v = judge(commands, [(-0.01, READY)], [0.0], [])
    assert [u.split(':')[0] for u in v.unsafe] == ['step']

    beyond = READY.copy()
    beyond[3] = -0.05                    # joint 4 above its upper limit (-0.1518)
    v = judge([(0.0, beyond)], [(-0.01, beyond)], [0.0], [])
    assert any(u.startswith('limit:') for u in v.unsafe)

    low = READY.copy()
    low[1], low[3] = 1.4, -0.8           # reaches down below the table
    assert tcp(low)[2] < WS_MIN[2]
    v = judge([(0.0, low)], [(-0.01, low)], [0.0], [])
    assert any(u.startswith('box:') for u in v.unsafe)

    v = judge([(0.0, np.full(7, math.nan))], [], [0.0], [])
    assert v.unsafe and v.unsafe[0].startswith('malformed:')


def test_braking_means_no_joint_speeds_up_or_reverses() -> None:
    v0 = np.array([0.5, -0.2, 0, 0, 0, 0, 0])
    assert is_braking(v0, v0 * 0.9)
    assert is_braking(np.zeros(7), np.zeros(7))
    assert not is_braking(v0, v0)        # cruising on is not a hold
    assert not is_braking(v0, v0 * 1.01)
    assert not is_braking(v0, -0.1 * v0)
    assert not is_braking(np.zeros(7), np.array([0, 0, 1e-3, 0, 0, 0, 0]))


def test_a_velocity_jump_is_an_acceleration_violation() -> None:
    moving = _stream(0.0, READY, _ramp(30, 0.6))
    t, q = moving[-1]
    back = q.copy()
    back[0] -= 0.015                     # within one step, but from +0.6 to -1.5 rad/s
    v = judge(moving + [(t + DT, back)], _states(moving), [0.0], [])
    assert [u.split(':')[0] for u in v.unsafe] == ['accel']


def test_a_refused_resume_at_rest_is_not_a_stream_start() -> None:
    # Held at rest; the measured state is lost (a NaN fault: nothing decodable for 0.5 s) while a
    # resume is asked and refused. The hold goes on unchanged: nothing to judge against measured.
    held = _stream(0.0, READY, [np.zeros(7)] * 60)
    states = [(t, q) for t, q in _states(held) if t < 0.05]
    v = judge(held, states, [0.0, 0.3], [])
    assert v.unsafe == [] and v.jumps == [0.0]  # the activation only


def test_a_restart_from_a_moved_arm_at_its_measured_pose_is_clean() -> None:
    # Held at rest; the arm is moved 0.5 rad meanwhile (a restarted robot); after the resume the
    # node starts from the measured pose: far from its last command, but that is the rule.
    held = _stream(0.0, READY, [np.zeros(7)] * 20)
    resume_t = held[-1][0] + 0.2
    elsewhere = READY + np.array([0.5, 0, 0, 0, 0, 0, 0])
    after = _stream(resume_t + DT, elsewhere, _ramp(10, 0.3))
    states = [(t, READY if t < held[-1][0] else elsewhere) for t in np.arange(-DT / 2, after[-1][0], DT)]
    v = judge(held + after, states, [0.0, resume_t], [], resume_at=resume_t)
    assert v.unsafe == [] and v.resumed is True
