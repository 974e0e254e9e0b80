"""One-step MeanFlow policy Phi(s, w) for action chunks (the LPS base policy / decoder).

MeanFlow learns the *average* velocity u(z, r, t | s) of the flow between times r and t,
with the interpolant z_t = (1 - t) x + t e (x: data chunk, e: noise) and instantaneous
velocity v = e - x. The MeanFlow identity u = v - (t - r) d/dt u gives the regression target

    u_tgt = v - (t - r) * (v . d_z u + d_t u)          (total derivative, under stop-gradient)

computed with one forward-mode JVP of the network with tangent (v, 0, 1) over (z, r, t).
Sampling is one step: x = z_1 - u(z_1, r=0, t=1).

LPS's noise-to-action reformulation: the network predicts the denoised chunk x_hat directly,
and the average velocity is *defined* from it, u(z, r, t) = (z - x_hat(z, r, t)) / t, so that
the one-step action is x_hat(w, 0, 1) itself: a = Phi(s, w). Training latents e lie on the
sphere of radius sqrt(d), d = T_a * action_dim, as do the latents an LPS actor emits.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import trange

from lps_train.nets import project_to_sphere, seed_everything
from lps_train.normalization import Normalization
from lps_train.runlog import Logger, config_dict


@dataclass
class MeanFlowConfig:
    seed: int = 0
    """seed of numpy and torch"""
    steps: int = 20_000
    """gradient steps"""
    batch_size: int = 256
    """samples per gradient step"""
    lr: float = 3e-4
    """Adam learning rate"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    hidden: int = 512
    """width of the hidden layers"""
    layers: int = 4
    """number of hidden layers"""
    time_features: int = 16
    """sinusoidal features for each of t and (t - r)"""
    time_max_freq: float = 30.0
    """highest frequency of the time features (rad per unit time). The MeanFlow target contains
    du/dt, and d/dt of a feature sin(f t) is f cos(f t): at f = 1000 (diffusion's usual range) the
    target is dominated by those terms and the one-step samples come out poor (training/checks/
    meanflow_vs_flow.py: 9% of samples in a mode at 1000, about 80% at 30, 55% for K=10 flow)"""
    ratio_r_equals_t: float = 0.75
    """fraction of the batch with r = t (plain flow matching on the instantaneous velocity)"""
    time_mu: float = -0.4
    """mean of the logit-normal distribution of t and r"""
    time_sigma: float = 1.0
    """std of the logit-normal distribution of t and r"""
    adaptive_p: float = 1.0
    """adaptive loss weight exponent p in 1 / (loss + c)^p; 0 gives the plain squared error"""
    loss_space: str = "u"
    """'x': regress the denoised chunk, ||x_hat - (z - t u_tgt)||^2 = t^2 ||u - u_tgt||^2;
    'u': regress the average velocity, ||u - u_tgt||^2 (divides the error by t: small t dominates)"""
    one_step_share: float = 0.0
    """fraction of the batch at exactly (r, t) = (0, 1), the interval the one-step decoder uses"""
    adaptive_c: float = 0.01
    """adaptive loss weight constant c"""
    t_min: float = 1e-3
    """lower clamp of t where u = (z - x_hat) / t divides by it"""
    ema_decay: float = 0.999
    """decay of the weight EMA that becomes the exported decoder (0 disables it)"""
    grad_clip: float = 1.0
    """global gradient-norm clip"""
    log_every: int = 100
    """steps between logged losses"""

    def __post_init__(self) -> None:
        if self.loss_space not in ("x", "u"):
            raise ValueError(f"`loss_space` must be 'x' or 'u', got {self.loss_space!r}")
        for name in ("ratio_r_equals_t", "one_step_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)}")


# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------
def time_embedding(t: torch.Tensor, n: int, max_freq: float = 1000.0) -> torch.Tensor:
    """Sinusoidal features of a scalar time in [0, 1], shape [B] -> [B, n], frequencies 1..max_freq."""
    freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), n // 2, dtype=t.dtype, device=t.device))
    ang = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


class MeanFlowNet(nn.Module):
    """x_hat(z, r, t | s): the denoised chunk (flattened) predicted from a noisy one."""

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int, layers: int, time_features: int,
                 time_max_freq: float = 1000.0) -> None:
        super().__init__()
        self.time_features = time_features
        self.time_max_freq = time_max_freq
        d_in = obs_dim + latent_dim + 2 * time_features
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.SiLU()]
        mods.append(nn.Linear(hidden, latent_dim))
        self.body = nn.Sequential(*mods)

    def forward(self, obs: torch.Tensor, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        te = time_embedding(t, self.time_features, self.time_max_freq)
        he = time_embedding(t - r, self.time_features, self.time_max_freq)
        return self.body(torch.cat([obs, z, te, he], dim=-1))


def average_velocity(net: MeanFlowNet, obs: torch.Tensor, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor,
                     t_min: float = 1e-3) -> torch.Tensor:
    """u(z, r, t | s) = (z - x_hat) / t: the noise-to-action parameterisation."""
    return (z - net(obs, z, r, t)) / t.clamp_min(t_min)[:, None]


def meanflow_target(net: MeanFlowNet, obs: torch.Tensor, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor,
                    v: torch.Tensor, t_min: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (u, du/dt total derivative, u_tgt); u keeps its graph, the others are detached."""

    def fn(z_: torch.Tensor, r_: torch.Tensor, t_: torch.Tensor) -> torch.Tensor:
        return average_velocity(net, obs, z_, r_, t_, t_min)

    u, dudt = torch.func.jvp(fn, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)))
    dudt = dudt.detach()
    u_tgt = v - (t - r)[:, None] * dudt
    return u, dudt, u_tgt.detach()


def sample_times(n: int, cfg: MeanFlowConfig, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(r, t) with t >= r, both logit-normal; a `ratio_r_equals_t` share has r = t."""
    a = torch.sigmoid(cfg.time_mu + cfg.time_sigma * torch.randn(n, generator=generator))
    b = torch.sigmoid(cfg.time_mu + cfg.time_sigma * torch.randn(n, generator=generator))
    t, r = torch.maximum(a, b), torch.minimum(a, b)
    same = torch.rand(n, generator=generator) < cfg.ratio_r_equals_t
    r = torch.where(same, t, r)
    if cfg.one_step_share > 0:
        # The decoder is only ever used on (0, 1); logit-normal draws almost never reach it.
        edge = torch.rand(n, generator=generator) < cfg.one_step_share
        r = torch.where(edge, torch.zeros_like(r), r)
        t = torch.where(edge, torch.ones_like(t), t)
    return r, t


def meanflow_loss(net: MeanFlowNet, obs: torch.Tensor, x: torch.Tensor, cfg: MeanFlowConfig,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Adaptively weighted MeanFlow loss for a batch of flattened chunks x [B, d]."""
    n, d = x.shape
    e = project_to_sphere(torch.randn(n, d, generator=generator))
    r, t = sample_times(n, cfg, generator)
    z = (1 - t)[:, None] * x + t[:, None] * e
    v = e - x
    u, _, u_tgt = meanflow_target(net, obs, z, r, t, v, cfg.t_min)
    mse_u = ((u - u_tgt) ** 2).sum(-1)
    if cfg.loss_space == "x":
        # Since u = (z - x_hat) / t, the error in x is t times the error in u: weighting by t^2
        # stops the near-zero t (where u is huge and irrelevant to one-step sampling) from dominating.
        per_sample = t.clamp_min(cfg.t_min) ** 2 * mse_u
    else:
        per_sample = mse_u
    # Dividing by (loss + c)^p under stop-gradient equalises the pull of easy and hard samples.
    weight = 1.0 / (per_sample.detach() + cfg.adaptive_c) ** cfg.adaptive_p
    loss = (weight * per_sample).mean()
    return loss, {"losses/meanflow": loss.item(), "losses/mse_u": mse_u.mean().item(),
                  "losses/mse_x": (t.clamp_min(cfg.t_min) ** 2 * mse_u).mean().item()}


# ---------------------------------------------------------------------------------------------
# Decoder: what the steering heads and the ONNX export see
# ---------------------------------------------------------------------------------------------
class MeanFlowDecoder(nn.Module):
    """a = Phi(s, w): one network evaluation, actions [B, T_a, action_dim] in normalised units."""

    decoder_type = "meanflow"
    latent_geometry = "sphere"

    def __init__(self, obs_dim: int, action_dim: int, chunk_length: int, cfg: MeanFlowConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or MeanFlowConfig()
        self.obs_dim, self.action_dim, self.chunk_length = obs_dim, action_dim, chunk_length
        self.latent_dim = chunk_length * action_dim
        self.t_min = cfg.t_min
        self.net = MeanFlowNet(obs_dim, self.latent_dim, cfg.hidden, cfg.layers, cfg.time_features,
                               cfg.time_max_freq)
        self.arch = {"hidden": cfg.hidden, "layers": cfg.layers, "time_features": cfg.time_features}

    def forward(self, observation: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        n = latent.shape[0]
        r = torch.zeros(n, dtype=latent.dtype, device=latent.device)
        t = torch.ones(n, dtype=latent.dtype, device=latent.device)
        x = self.net(observation, latent, r, t)  # = latent - 1 * u(latent, 0, 1)
        return x.view(n, self.chunk_length, self.action_dim)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return project_to_sphere(torch.randn(n, self.latent_dim, generator=generator))


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def train(cfg: MeanFlowConfig, observations: np.ndarray, actions: np.ndarray, progress: bool = True,
          logger: Logger | None = None) -> MeanFlowDecoder:
    """Fit a MeanFlow decoder to normalised (observation [N, obs_dim], chunk [N, T_a, A]) pairs."""
    if observations.ndim != 2 or actions.ndim != 3 or len(observations) != len(actions):
        raise ValueError(
            "expected observations [N, obs_dim] and actions [N, T_a, action_dim] with equal N, "
            f"got {observations.shape} and {actions.shape}"
        )
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    logger = logger if logger is not None else Logger()
    n, t_a, a_dim = actions.shape
    decoder = MeanFlowDecoder(observations.shape[1], a_dim, t_a, cfg)
    ema = copy.deepcopy(decoder).requires_grad_(False) if cfg.ema_decay > 0 else None
    opt = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    obs_t = torch.as_tensor(observations, dtype=torch.float32)
    act_t = torch.as_tensor(actions, dtype=torch.float32).reshape(n, -1)

    bar = trange(cfg.steps, desc="meanflow", disable=not progress, mininterval=1.0)
    for step in bar:
        idx = torch.from_numpy(rng.integers(0, n, cfg.batch_size))
        loss, info = meanflow_loss(decoder.net, obs_t[idx], act_t[idx], cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(decoder.parameters(), cfg.grad_clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), decoder.parameters(), strict=True):
                    pe.lerp_(p, 1.0 - cfg.ema_decay)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            logger.log(step, **info)
            bar.set_postfix(mse_x=f"{info['losses/mse_x']:.3f}")
    out = ema if ema is not None else decoder
    return out.eval()


def save_decoder(path: str | Path, decoder: MeanFlowDecoder, norm: Normalization, cfg: MeanFlowConfig,
                 extra: dict | None = None) -> None:
    torch.save({
        "decoder_type": "meanflow",
        "dims": {"obs_dim": decoder.obs_dim, "action_dim": decoder.action_dim, "chunk_length": decoder.chunk_length},
        "config": config_dict(cfg),
        "state_dict": decoder.state_dict(),
        "normalization": norm.to_dict(),
        "extra": extra or {},
    }, path)


def build_from_checkpoint(ckpt: dict) -> MeanFlowDecoder:
    cfg = MeanFlowConfig(**ckpt["config"])
    dec = MeanFlowDecoder(cfg=cfg, **ckpt["dims"])
    dec.load_state_dict(ckpt["state_dict"])
    return dec.eval()
