"""Franka forward kinematics (Panda and FR3 share the kinematic chain) down to the hand's TCP.

Parameters are Franka's published modified (Craig) Denavit-Hartenberg table from the Franka
robot and interface specification; the flange sits 0.107 m along joint 7's axis and the
Franka Hand's TCP a further 0.1034 m, rotated -45 degrees about z.
"""

from __future__ import annotations

import math

import numpy as np

# Rows: (a_{i-1} [m], d_i [m], alpha_{i-1} [rad]) for joints 1..7, then the flange (fixed).
DH_MODIFIED = np.array([
    [0.0, 0.333, 0.0],
    [0.0, 0.0, -math.pi / 2],
    [0.0, 0.316, math.pi / 2],
    [0.0825, 0.0, math.pi / 2],
    [-0.0825, 0.384, -math.pi / 2],
    [0.0, 0.0, math.pi / 2],
    [0.088, 0.0, math.pi / 2],
])
FLANGE_D = 0.107
HAND_TCP_D = 0.1034
HAND_TCP_YAW = -math.pi / 4


def _link(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    """Modified DH transform: RotX(alpha) TransX(a) RotZ(theta) TransZ(d)."""
    ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
    return np.array([
        [ct, -st, 0.0, a],
        [st * ca, ct * ca, -sa, -sa * d],
        [st * sa, ct * sa, ca, ca * d],
        [0.0, 0.0, 0.0, 1.0],
    ])


def forward_kinematics(q: np.ndarray, tcp: bool = True) -> np.ndarray:
    """4x4 pose of the hand TCP (or the flange with tcp=False) in the robot base frame."""
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (7,):
        raise ValueError(f"`q` must have 7 joint positions, got {q.shape[0]}")
    T = np.eye(4)
    for (a, d, alpha), theta in zip(DH_MODIFIED, q, strict=True):
        T = T @ _link(a, d, alpha, float(theta))
    T = T @ _link(0.0, FLANGE_D, 0.0, 0.0)
    if tcp:
        T = T @ _link(0.0, HAND_TCP_D, 0.0, HAND_TCP_YAW)
    return T


def tcp_position(q: np.ndarray) -> np.ndarray:
    """Position (x, y, z) in metres of the Franka Hand's TCP for arm joint positions q.

    Runs every control cycle (observation and workspace check): the chain is folded from the
    tool back to the base on plain floats, ~10x cheaper than 4x4 products for one pose.
    """
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (7,):
        raise ValueError(f"`q` must have 7 joint positions, got {q.shape[0]}")
    x, y, z = 0.0, 0.0, FLANGE_D + HAND_TCP_D
    for (a, d, ca, sa), theta in zip(_DH_FOLD[::-1], q.tolist()[::-1], strict=True):
        ct, st = math.cos(theta), math.sin(theta)
        x, y, z = ct * x - st * y, st * x + ct * y, z + d
        x, y, z = x + a, ca * y - sa * z, sa * y + ca * z
    return np.array((x, y, z))


# (a, d, cos alpha, sin alpha) per joint, for the folded chain above.
_DH_FOLD = [(float(a), float(d), math.cos(alpha), math.sin(alpha)) for a, d, alpha in DH_MODIFIED]


# Distance bound (m) from each joint's axis to the TCP, for any configuration: the sum of the
# link offsets beyond the joint (triangle inequality); joint 7's axis passes through the TCP.
# A change dq moves the TCP by at most sum_j TCP_LEVER_M[j] * |dq_j|: the safety filter uses it
# to skip the exact stopping-path check when the TCP is far from every workspace wall.
TCP_LEVER_M = np.array([
    sum(abs(a) + abs(d) for a, d, _ in DH_MODIFIED[j + 1:]) + FLANGE_D + HAND_TCP_D if j < 6 else 0.0
    for j in range(7)
])


def tcp_positions(q: np.ndarray) -> np.ndarray:
    """TCP positions [N, 3] for N joint configurations [N, 7] in one vectorised pass.

    The safety filter checks whole stopping paths per cycle; one batched product per joint costs
    about what a single `tcp_position` does.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 7:
        raise ValueError(f"`q` must have shape (N, 7), got {q.shape}")
    # Track only the TCP point: p = R_1 (t_1 + R_2 (t_2 + ...)), folded from the tool back to the
    # base, so each joint costs a few vector operations on N points.
    x = np.zeros(q.shape[0])
    y = np.zeros(q.shape[0])
    z = np.full(q.shape[0], FLANGE_D + HAND_TCP_D)
    for (a, d, ca, sa), theta in zip(_DH_FOLD[::-1], q.T[::-1], strict=True):
        ct, st = np.cos(theta), np.sin(theta)
        x, y, z = ct * x - st * y, st * x + ct * y, z + d
        x, y, z = x + a, ca * y - sa * z, sa * y + ca * z
    return np.stack((x, y, z), axis=1)
