"""Franka forward kinematics against configurations derived by hand from the DH table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lps_steering.core.kinematics import forward_kinematics, tcp_position


def test_zero_configuration_by_hand():
    # Straight up: z = 0.333 + 0.316 + 0.384, the wrist folds down by 0.107 (flange) + 0.1034 (TCP);
    # x = 0.0825 - 0.0825 + 0.088.
    np.testing.assert_allclose(tcp_position(np.zeros(7)), [0.088, 0.0, 1.033 - 0.2104], atol=1e-9)
    np.testing.assert_allclose(forward_kinematics(np.zeros(7), tcp=False)[:3, 3], [0.088, 0.0, 0.926],
                               atol=1e-9)


def test_forearm_forward_by_hand():
    # q4 = -pi/2 turns the forearm (-0.0825, +0.384 in x, z) forward to (+0.384, +0.0825) about the
    # elbow at (0.0825, 0.649); q6 = +pi/2 turns the hand back so the wrist offsets are as at zero:
    # x = 0.0825 + 0.384 + 0.088, z = 0.649 + 0.0825 - 0.2104.
    q = np.array([0.0, 0.0, 0.0, -math.pi / 2, 0.0, math.pi / 2, 0.0])
    np.testing.assert_allclose(tcp_position(q), [0.5545, 0.0, 0.5211], atol=1e-9)


def test_ready_pose_matches_franka_published_pose():
    # libfranka's ready pose: O_T_EE translation (0.3069, 0, 0.4869), hand pointing down.
    T = forward_kinematics(np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4]))
    np.testing.assert_allclose(T[:3, 3], [0.3069, 0.0, 0.4869], atol=2e-4)
    np.testing.assert_allclose(T[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-3)


def test_joint1_rotates_about_z_and_joint7_leaves_tcp_in_place():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(-1.5, 1.5, 7)
        theta = rng.uniform(-1.0, 1.0)
        q_rot = q.copy()
        q_rot[0] += theta
        c, s = math.cos(theta), math.sin(theta)
        expected = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ tcp_position(q)
        np.testing.assert_allclose(tcp_position(q_rot), expected, atol=1e-12)
        q7 = q.copy()
        q7[6] += 1.3
        np.testing.assert_allclose(tcp_position(q7), tcp_position(q), atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="`q` must have 7 joint positions, got 6"):
        tcp_position(np.zeros(6))
