"""Tiny, randomly initialised decoders and heads with real manifests, for tests, demo and benchmarks.

They have the shapes of the real models (observation: arm joints 7 + gripper width 1 + object
position 3; action: 7 joint deltas + gripper width; chunk 8; latent 64) but no training: they
exercise export, loading, validation and the control cycle, not task skill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from lps_steering.core.manifest import (
    ActionEntry,
    ActionLayout,
    ObservationEntry,
    ObservationLayout,
)
from torch import nn

from .export import export_onnx, write_manifest

CHUNK_LENGTH = 8
# FR3 "ready" pose: a central, collision-free configuration for the observation mean.
READY_Q = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]


def tiny_observation_layout(joint_velocities: bool = False) -> ObservationLayout:
    entries = [
        ObservationEntry("arm_q", "arm_joint_positions", 7, list(READY_Q), [0.5] * 7),
        ObservationEntry("gripper", "gripper_width", 1, [0.04], [0.02]),
        ObservationEntry("object", "object_position", 3, [0.5, 0.0, 0.05], [0.1, 0.1, 0.05]),
    ]
    if joint_velocities:
        entries.append(ObservationEntry("arm_dq", "arm_joint_velocities", 7, [0.0] * 7, [0.5] * 7))
    return ObservationLayout(entries=entries)


def tiny_action_layout(delta_std: float = 0.02) -> ActionLayout:
    return ActionLayout(
        entries=[ActionEntry("arm_delta", 7, "rad", "joint_position_delta"),
                 ActionEntry("gripper", 1, "m", "gripper_width")],
        mean=[0.0] * 7 + [0.04], std=[delta_std] * 7 + [0.01])


def mlp(n_in: int, n_out: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.GELU()]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


class TinyDecoder(nn.Module):
    """a = Phi(s, w): MLP over [s, w] -> normalised chunk [B, T_a, action_dim]."""

    def __init__(self, obs_dim: int, action_dim: int, chunk_length: int, hidden: int, layers: int):
        super().__init__()
        self.chunk_length, self.action_dim = chunk_length, action_dim
        self.net = mlp(obs_dim + chunk_length * action_dim, chunk_length * action_dim, hidden, layers)

    def forward(self, observation: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([observation, latent], dim=-1))
        return out.reshape(-1, self.chunk_length, self.action_dim)


class TinyHead(nn.Module):
    """Steering head s -> latent (lps: on the sphere; dsrl: tanh-bounded) or residual (lpds)."""

    def __init__(self, obs_dim: int, latent_dim: int, head_type: str, hidden: int, layers: int,
                 output_scale: float = 1.0):
        super().__init__()
        self.head_type, self.output_scale = head_type, output_scale
        self.radius = math.sqrt(latent_dim)
        self.net = mlp(obs_dim, latent_dim, hidden, layers)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        x = self.net(observation)
        if self.head_type == "lps":
            return x * (self.radius / x.norm(dim=-1, keepdim=True).clamp_min(1e-6))
        if self.head_type == "dsrl":
            return torch.tanh(x) * self.output_scale
        return x * self.output_scale


@dataclass
class TinyModels:
    decoder: Path
    heads: dict[str, Path]
    decoder_module: TinyDecoder
    head_modules: dict[str, TinyHead]


def build_tiny_models(out_dir: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2,
                      robot: str = "fr3", latent_geometry: str = "sphere",
                      head_types: tuple[str, ...] = ("lps", "lpds", "dsrl"),
                      trust_region_delta: float = 0.35, lpds_scale: float = 0.1,
                      policy_rate_hz: float = 10.0, decoder_name: str = "tiny_decoder",
                      head_hidden: int | None = None, joint_velocities: bool = False) -> TinyModels:
    """Export a tiny decoder and one head per type (with manifests) into `out_dir`.

    `lpds_scale` scales the lpds residual: large values give ||Delta||^2 far beyond the trust
    region, which exercises the run-time guard. `joint_velocities` appends the arm's joint
    velocities to the observation (as `collect --observation state_velocity` does).
    """
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    obs_layout, act_layout = tiny_observation_layout(joint_velocities), tiny_action_layout()
    obs_dim = obs_layout.dim
    action_dim = sum(e.size for e in act_layout.entries)
    latent_dim = CHUNK_LENGTH * action_dim
    common = dict(observation=obs_layout, action=act_layout, robot=robot, chunk_length=CHUNK_LENGTH,
                  policy_rate_hz=policy_rate_hz, latent_geometry=latent_geometry, seed=seed,
                  command=f"lps_train.tiny.build_tiny_models(seed={seed}, hidden={hidden}, "
                          f"layers={layers})")

    decoder = TinyDecoder(obs_dim, action_dim, CHUNK_LENGTH, hidden, layers).eval()
    dec_path = export_onnx(decoder, (torch.zeros(1, obs_dim), torch.zeros(1, latent_dim)),
                           ["observation", "latent"], ["actions"], out_dir / f"{decoder_name}.onnx")
    write_manifest(dec_path, kind="decoder", name=decoder_name, decoder_type="meanflow", **common)

    heads, modules = {}, {}
    for head_type in head_types:
        scale = lpds_scale if head_type == "lpds" else 1.0
        head = TinyHead(obs_dim, latent_dim, head_type, head_hidden or hidden, layers, scale).eval()
        path = export_onnx(head, (torch.zeros(1, obs_dim),), ["observation"],
                           ["delta" if head_type == "lpds" else "latent"],
                           out_dir / f"tiny_head_{head_type}.onnx")
        write_manifest(path, kind="head", name=f"tiny_head_{head_type}", head_type=head_type,
                       trust_region_delta=trust_region_delta if head_type == "lpds" else None,
                       decoder_onnx=dec_path, **common)
        heads[head_type], modules[head_type] = path, head
    return TinyModels(decoder=dec_path, heads=heads, decoder_module=decoder, head_modules=modules)
