"""K-step flow-matching decoder Phi(s, w) (Euler integration): the multi-step baseline.

Rectified-flow interpolant z_t = (1 - t) x + t e with velocity v = e - x, regressed by
v_theta(z_t, t | s). Decoding integrates dz/dt = v_theta from t = 1 (the latent w ~ N(0, I))
down to t = 0 in K equal Euler steps. Same forward signature as the MeanFlow decoder, so LP-DS
and DSRL use either as a black box; the benchmark compares their latency at equal size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import trange

from lps_train.meanflow import time_embedding
from lps_train.nets import seed_everything
from lps_train.normalization import Normalization
from lps_train.runlog import Logger, config_dict


@dataclass
class FlowConfig:
    seed: int = 0
    """seed of numpy and torch"""
    steps: int = 20_000
    """gradient steps"""
    batch_size: int = 256
    """samples per gradient step"""
    lr: float = 3e-4
    """Adam learning rate"""
    hidden: int = 512
    """width of the hidden layers"""
    layers: int = 4
    """number of hidden layers"""
    time_features: int = 16
    """sinusoidal features of t"""
    integration_steps: int = 10
    """K: Euler steps from noise to action at decoding time"""
    ema_decay: float = 0.999
    """decay of the weight EMA that becomes the exported decoder (0 disables it)"""
    grad_clip: float = 1.0
    """global gradient-norm clip"""
    log_every: int = 100
    """steps between logged losses"""


class VelocityNet(nn.Module):
    """v(z, t | s) on flattened chunks."""

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int, layers: int, time_features: int) -> None:
        super().__init__()
        self.time_features = time_features
        # The same input width as MeanFlowNet (two time embeddings) keeps the two decoders the
        # same size for the latency comparison; the second embedding is always of t - r = 0.
        d_in = obs_dim + latent_dim + 2 * time_features
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.SiLU()]
        mods.append(nn.Linear(hidden, latent_dim))
        self.body = nn.Sequential(*mods)

    def forward(self, obs: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        te = time_embedding(t, self.time_features)
        return self.body(torch.cat([obs, z, te, torch.zeros_like(te)], dim=-1))


class FlowDecoder(nn.Module):
    """a = Phi(s, w) by K Euler steps; actions [B, T_a, action_dim] in normalised units."""

    decoder_type = "flow"
    latent_geometry = "gaussian"

    def __init__(self, obs_dim: int, action_dim: int, chunk_length: int, cfg: FlowConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or FlowConfig()
        self.obs_dim, self.action_dim, self.chunk_length = obs_dim, action_dim, chunk_length
        self.latent_dim = chunk_length * action_dim
        self.integration_steps = cfg.integration_steps
        self.net = VelocityNet(obs_dim, self.latent_dim, cfg.hidden, cfg.layers, cfg.time_features)

    def forward(self, observation: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        n, k = latent.shape[0], self.integration_steps
        z, dt = latent, 1.0 / k
        for i in range(k):
            t = torch.full((n,), 1.0 - i * dt, dtype=latent.dtype, device=latent.device)
            z = z - dt * self.net(observation, z, t)
        return z.view(n, self.chunk_length, self.action_dim)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)


def flow_loss(net: VelocityNet, obs: torch.Tensor, x: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
    n, d = x.shape
    e = torch.randn(n, d, generator=generator)
    t = torch.rand(n, generator=generator)
    z = (1 - t)[:, None] * x + t[:, None] * e
    return ((net(obs, z, t) - (e - x)) ** 2).sum(-1).mean()


def train(cfg: FlowConfig, observations: np.ndarray, actions: np.ndarray, progress: bool = True,
          logger: Logger | None = None) -> FlowDecoder:
    """Fit a flow decoder to normalised (observation [N, obs_dim], chunk [N, T_a, A]) pairs."""
    if observations.ndim != 2 or actions.ndim != 3 or len(observations) != len(actions):
        raise ValueError(
            "expected observations [N, obs_dim] and actions [N, T_a, action_dim] with equal N, "
            f"got {observations.shape} and {actions.shape}"
        )
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    logger = logger if logger is not None else Logger()
    n, t_a, a_dim = actions.shape
    decoder = FlowDecoder(observations.shape[1], a_dim, t_a, cfg)
    ema = copy.deepcopy(decoder).requires_grad_(False) if cfg.ema_decay > 0 else None
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    obs_t = torch.as_tensor(observations, dtype=torch.float32)
    act_t = torch.as_tensor(actions, dtype=torch.float32).reshape(n, -1)
    bar = trange(cfg.steps, desc="flow", disable=not progress, mininterval=1.0)
    for step in bar:
        idx = torch.from_numpy(rng.integers(0, n, cfg.batch_size))
        loss = flow_loss(decoder.net, obs_t[idx], act_t[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(decoder.parameters(), cfg.grad_clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), decoder.parameters(), strict=True):
                    pe.lerp_(p, 1.0 - cfg.ema_decay)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            logger.log(step, losses__flow=loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return (ema if ema is not None else decoder).eval()


def save_decoder(path: str | Path, decoder: FlowDecoder, norm: Normalization, cfg: FlowConfig,
                 extra: dict | None = None) -> None:
    torch.save({
        "decoder_type": "flow",
        "dims": {"obs_dim": decoder.obs_dim, "action_dim": decoder.action_dim, "chunk_length": decoder.chunk_length},
        "config": config_dict(cfg),
        "state_dict": decoder.state_dict(),
        "normalization": norm.to_dict(),
        "extra": extra or {},
    }, path)


def build_from_checkpoint(ckpt: dict) -> FlowDecoder:
    cfg = FlowConfig(**ckpt["config"])
    dec = FlowDecoder(cfg=cfg, **ckpt["dims"])
    dec.load_state_dict(ckpt["state_dict"])
    return dec.eval()
