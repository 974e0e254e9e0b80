"""Task features for action critics: where a pick_place chunk puts the TCP, relative to the cube.

The decoders act in joint space (deltas relative to the observed arm joints) while pick_place
succeeds or fails in Cartesian terms: whether the fingers close around the cube. A critic fed
only joint deltas has to learn the arm's forward kinematics from its TD targets before it can
tell a centred grasp from one 2 cm beside the cube (the base's commonest failure,
training/checks/base_failures.py). `ChunkTcpFeatures` hands it that geometry: the TCP position of
each executed joint target, minus the cube's position (and, with `references`, minus the place
zone's: what the carry and the release are judged by), by the same Denavit-Hartenberg chain the
runtime uses (`lps_steering.core.kinematics`), in batched torch.

Only the critic's input changes; the actor, the decoder and the exported head do not see it.
"""

from __future__ import annotations

import math

import torch
from lps_steering.core.kinematics import DH_MODIFIED, FLANGE_D, HAND_TCP_D, HAND_TCP_YAW
from torch import nn

from lps_train.normalization import Normalization
from lps_train.pick_place.layout import ACTION_DIM, entry_slice

# Offsets in units of 5 cm: order one near the grasp, where the critic must resolve millimetres; the
# place zone's offsets reach 6-8 units across the table, which layer norm takes in its stride.
FEATURE_SCALE_M = 0.05


def _links(a: float, d: float, alpha: float, theta: torch.Tensor) -> torch.Tensor:
    """Batched modified DH transforms [..., 4, 4] (RotX(alpha) TransX(a) RotZ(theta) TransZ(d))."""
    ct, st = torch.cos(theta), torch.sin(theta)
    ca, sa = math.cos(alpha), math.sin(alpha)
    zero, one = torch.zeros_like(theta), torch.ones_like(theta)
    rows = [
        [ct, -st, zero, zero + a],
        [st * ca, ct * ca, zero - sa, zero - sa * d],
        [st * sa, ct * sa, zero + ca, zero + ca * d],
        [zero, zero, zero, one],
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def tcp_positions(q: torch.Tensor) -> torch.Tensor:
    """TCP positions [..., 3] (m, robot base frame) of arm joint positions q [..., 7]."""
    if q.shape[-1] != 7:
        raise ValueError(f"`q` must end in 7 joint positions, got shape {tuple(q.shape)}")
    T = None
    for j, (a, d, alpha) in enumerate(DH_MODIFIED.tolist()):
        L = _links(a, d, alpha, q[..., j])
        T = L if T is None else T @ L
    zero = torch.zeros_like(q[..., 0])
    T = T @ _links(0.0, FLANGE_D, 0.0, zero) @ _links(0.0, HAND_TCP_D, 0.0, zero + HAND_TCP_YAW)
    return T[..., :3, 3]


REFERENCES = ("object", "target")


class ChunkTcpFeatures(nn.Module):
    """(observation, chunk) in normalised units -> [B, steps * 3 * len(references)]: the TCP of each
    arm target minus each reference point of the observation ("object": the cube; "target": the
    place zone, which is what the carry and the release are judged by)."""

    def __init__(self, norm: Normalization, steps: int, references: tuple[str, ...] = ("object",)) -> None:
        super().__init__()
        if norm.act_mean.shape[-1] != ACTION_DIM:
            raise ValueError(f"normalisation must be pick_place's ({ACTION_DIM} action dims), "
                             f"got {norm.act_mean.shape[-1]}")
        f32 = dict(dtype=torch.float32)
        self.register_buffer("obs_mean", torch.as_tensor(norm.obs_mean, **f32))
        self.register_buffer("obs_std", torch.as_tensor(norm.obs_std, **f32))
        self.register_buffer("act_mean", torch.as_tensor(norm.act_mean, **f32))
        self.register_buffer("act_std", torch.as_tensor(norm.act_std, **f32))
        unknown = [r for r in references if r not in REFERENCES]
        if not references or unknown:
            raise ValueError(f"`references` must be a non-empty subset of {REFERENCES}, got {references}")
        self.steps = steps
        self.out_dim = steps * 3 * len(references)
        self._arm = entry_slice("arm_q")
        self._refs = [entry_slice(r) for r in references]

    def forward(self, obs: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        raw_obs = obs * self.obs_std + self.obs_mean
        raw = chunk[:, :self.steps] * self.act_std + self.act_mean
        # Chunk actions are joint deltas relative to the arm joints of the observation (the runtime's
        # `joint_position_delta` convention), so each target is q_obs + delta.
        tcp = tcp_positions(raw_obs[:, None, self._arm] + raw[..., :7])
        rel = torch.cat([tcp - raw_obs[:, None, ref] for ref in self._refs], dim=-1)
        return (rel / FEATURE_SCALE_M).flatten(1)
