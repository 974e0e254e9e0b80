"""Networks and the tensor helpers the algorithms share: MLPs, the chunk critic, target updates, the latent sphere, seeding."""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int, torch_threads: int | None = 1) -> np.random.Generator:
    """Seed python, numpy and torch; return a numpy Generator to pass around explicitly.

    One torch thread by default: the networks are small, and extra threads only contend with
    the simulator and other processes for the CPU.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    return np.random.default_rng(seed)


def check_torch_threads(threads: int) -> None:
    """The configs' check of their `torch_threads` field (seed_everything applies it)."""
    if threads < 1:
        raise ValueError(f"`torch_threads` must be >= 1, got {threads}")


def mlp(in_dim: int, out_dim: int, hidden: int = 256, layers: int = 2, act: type[nn.Module] = nn.Mish,
        layer_norm: bool = False) -> nn.Sequential:
    """`layers` hidden layers of width `hidden`, then a linear output."""
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods.append(nn.Linear(d, hidden))
        if layer_norm:
            mods.append(nn.LayerNorm(hidden))
        mods.append(act())
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


class ChunkCritic(nn.Module):
    """An ensemble of `n` independent Q(s, a) on the leading `steps` actions of a chunk [B, T_a, A],
    optionally widened by task features of (s, a[:, :steps]) (`lps_train.features`); returns [n, B]
    (two unpack as q1, q2). Only the executed actions reach the environment before the next replan;
    the rest cannot change the return, and an actor free to shape them finds nothing but the
    critic's extrapolation errors."""

    def __init__(self, obs_dim: int, action_dim: int, steps: int, hidden: int, layers: int,
                 features: nn.Module | None = None, n: int = 2, act: type[nn.Module] = nn.Mish) -> None:
        super().__init__()
        if features is not None and getattr(features, "steps", steps) != steps:
            raise ValueError(f"critic features must cover the {steps} actions the critic sees, "
                             f"got steps={features.steps}")
        if n < 2:
            raise ValueError(f"`critics` must be >= 2 (the TD target takes the members' minimum), got {n}")
        self.steps = steps
        self.features = features
        extra = features.out_dim if features is not None else 0
        # Layer norm keeps TD targets from blowing up when the actor queries unseen inputs.
        self.heads = nn.ModuleList(mlp(obs_dim + steps * action_dim + extra, 1, hidden, layers, act, layer_norm=True)
                                   for _ in range(n))

    def forward(self, obs: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        a = chunk[:, :self.steps]
        x = a.flatten(1) if self.features is None else torch.cat([a.flatten(1), self.features(obs, a)], -1)
        h = torch.cat([obs, x], dim=-1)
        return torch.stack([q(h).squeeze(-1) for q in self.heads])


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for tp, sp in zip(target.parameters(), source.parameters(), strict=True):
            tp.lerp_(sp, tau)


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients; gradients can still flow through to the inputs."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def project_to_sphere(w: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Put each row on the sphere of radius sqrt(d), where a d-dim Gaussian concentrates."""
    d = w.shape[-1]
    return w * (math.sqrt(d) / w.norm(dim=-1, keepdim=True).clamp_min(eps))


def projects_onto_sphere(decoder: nn.Module, enabled: bool) -> bool:
    """Whether a head's latents go onto the decoder's sphere: asked for, and the decoder samples there."""
    return enabled and getattr(decoder, "latent_geometry", "gaussian") == "sphere"


def sample_sphere(n: int, d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return project_to_sphere(torch.randn(n, d, generator=generator))
