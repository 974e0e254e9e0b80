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
    """Position (x, y, z) in metres of the Franka Hand's TCP for arm joint positions q."""
    return forward_kinematics(q, tcp=True)[:3, 3].copy()
