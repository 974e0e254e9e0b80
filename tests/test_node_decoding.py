"""The policy node's pure parts without a running node: decoding, the fault board, stamp checks.

Messages are the real sensor_msgs / geometry_msgs types, built the way they arrive malformed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from lps_steering.core.startup import StateWatchdog
from lps_steering.nodes.policy.decoding import InputError, JointStateDecoder, decode_position
from lps_steering.nodes.policy.faults import FaultBoard
from sensor_msgs.msg import JointState

ARM = [f'fr3_joint{i}' for i in range(1, 8)]
Q = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]


def _js(name, position, velocity=()):
    msg = JointState(name=list(name), position=list(position), velocity=list(velocity))
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 500_000_000
    return msg


def test_a_well_formed_state_in_any_order_decodes_to_the_arm():
    d = JointStateDecoder('fr3', '/joint_states')
    names = ['fr3_finger_joint2'] + ARM[::-1] + ['fr3_finger_joint1']
    pos = [0.03] + Q[::-1] + [0.04]
    s = d.decode(_js(names, pos, [0.0] * 9))
    np.testing.assert_array_equal(s.q, Q)
    assert s.gripper_width == pytest.approx(0.07) and s.stamp_s == pytest.approx(12.5)
    np.testing.assert_array_equal(s.velocity, np.zeros(7))
    assert d.decode(_js(ARM, Q)).velocity is None  # positions only


@pytest.mark.parametrize('msg, fragment', [
    (_js(ARM, []), '`position`: empty (7 names)'),
    (_js(ARM + ['fr3_finger_joint1', 'fr3_finger_joint2'], Q), '`position`: 7 entries for 9 names'),
    (_js(ARM[:6], Q[:6]), 'fr3_joint7 missing'),
    (_js([n.replace('fr3', 'panda') for n in ARM], Q), "the message is for panda, this node is robot_type 'fr3'"),
    (_js(ARM + ['fr3_joint2'], Q + [0.0]), "'fr3_joint2' appears more than once"),
    (_js(ARM, Q[:3] + [math.nan] + Q[4:]), '`position[3]`: fr3_joint4 is nan'),
    (_js(ARM, Q, [0.0] * 6), '`velocity`: 6 entries for 7 names'),
    (_js(ARM, Q, [0.0] * 6 + [math.inf]), '`velocity[6]`: fr3_joint7 is inf'),
])
def test_each_malformation_names_topic_and_field(msg, fragment):
    with pytest.raises(InputError) as err:
        JointStateDecoder('fr3', '/robot/joint_states').decode(msg)
    assert fragment in str(err.value) and str(err.value).startswith('/robot/joint_states (sensor_msgs/JointState)')


def test_a_cached_name_list_still_checks_the_values():
    d = JointStateDecoder('fr3', '/joint_states')
    d.decode(_js(ARM, Q))
    with pytest.raises(InputError, match='empty'):
        d.decode(_js(ARM, []))
    with pytest.raises(InputError, match='not finite'):
        d.decode(_js(ARM, [math.nan] + Q[1:]))


def test_a_pose_with_a_non_finite_coordinate_is_refused():
    p = PoseStamped()
    p.pose.position.x, p.pose.position.y, p.pose.position.z = 0.5, math.inf, 0.1
    with pytest.raises(InputError, match=r'object_pose \(geometry_msgs/PoseStamped\) `pose.position.y`'):
        decode_position('object_pose', p)
    p.pose.position.y = 0.0
    np.testing.assert_array_equal(decode_position('object_pose', p), [0.5, 0.0, 0.1])


def test_faults_latch_until_resume_which_waits_for_the_cause_to_go():
    b = FaultBoard()
    b.report('input', 'bad field')
    assert b.holding and b.reason() == 'bad field'
    assert 'still present: bad field' in b.resume()
    b.report('input', '')
    assert b.holding and 'waiting for ~/resume: bad field' in b.reason()
    gen = b.generation
    assert b.resume() == '' and not b.holding and b.generation > gen


def test_only_staleness_resumes_by_itself_and_only_when_allowed():
    strict, lenient = FaultBoard(), FaultBoard(auto_resume_stale=True)
    for b in (strict, lenient):
        b.report('watchdog', 'silent', stale=True)
        b.report('publisher', 'another publisher')
        b.report('watchdog', '')
        b.report('publisher', '')
    assert 'silent' in strict.reason() and 'another publisher' in strict.reason()
    assert 'silent' not in lenient.reason() and 'another publisher' in lenient.reason()


def test_watchdog_refuses_future_and_out_of_order_stamps_and_rebases_after_silence():
    w = StateWatchdog(0.1, future_tolerance_s=0.05)
    for k in range(5):
        assert w.feed(k * 0.01, k * 0.01) == ''
    assert w.check(0.05) == ''
    # 2 s ahead: refused, a hold reason while it lasts, and it does not poison the history.
    assert 'in the future' in w.feed(0.05, 2.05)
    assert 'in the future' in w.check(0.05)
    assert w.feed(0.06, 0.06) == '' and w.check(0.06) == ''
    # Older than the newest: dropped, and not a sign of life either.
    assert 'out of order' in w.feed(0.07, 0.0)
    assert 'no joint_states for' in w.check(0.2)
    # After silence, a publisher restarted with its clock from zero is taken afresh.
    assert w.feed(0.3, 0.001) == '' and w.check(0.3) == ''


def test_the_nodes_clock_and_a_stamp_of_the_same_instant_are_the_same_float():
    """Under sim time a cycle runs at max(node clock, the joint state's receipt on /clock): if the
    two conversions rounded one instant differently, which of them won (the load decides) would
    move the command by ~1e-12 rad, and lock-step episodes would drift apart from there."""
    from builtin_interfaces.msg import Time
    from lps_steering.nodes.policy.timing import seconds, seconds_of_ns

    instants = range(0, 120 * 10**9, 10**6)  # every millisecond of two minutes
    differ = [ns for ns in instants if seconds_of_ns(ns) != seconds(Time(sec=ns // 10**9, nanosec=ns % 10**9))]
    assert differ == []
    # The plain product is the other float for many of them (so the check above can fail).
    assert sum(ns * 1e-9 != seconds_of_ns(ns) for ns in instants) > 1000
    # And the node's clock is read through it.
    from types import SimpleNamespace

    from lps_steering.nodes.policy_node import PolicyNode

    for ns in (2_510_000_000, 16_450_000_000):
        node = SimpleNamespace(get_clock=lambda ns=ns: SimpleNamespace(now=lambda: SimpleNamespace(nanoseconds=ns)))
        assert PolicyNode.now_s(node) == seconds(Time(sec=ns // 10**9, nanosec=ns % 10**9))
