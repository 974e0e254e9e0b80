"""LP-DS: Lagrangian Perturbation Diffusion Steering (online, in simulation).

The frozen decoder Phi(s, w) is a black box (MeanFlow, flow or diffusion: only its forward
pass is used, never its gradient). The head is a residual on the base noise,

    w = eps + Delta_theta(s),   eps ~ N(0, I),   Delta_theta zero-initialised,

so at the start the steered policy *is* the base policy. eps is the decoder's own base noise
(`decoder.sample_latent` when it has one: on the sphere of radius sqrt(d) for MeanFlow, as the
runtime draws it), else N(0, I). On a sphere decoder eps + Delta leaves the sphere that the decoder
and Q^W were trained on; `project` (the default) scales w back onto it, so every latent the decoder,
Q^W and the actor see lies where they were trained (on a Gaussian decoder w = eps + Delta, the paper's
composition, either way). It is trained under the trust region
E_s ||Delta_theta(s)||^2 <= delta with a Lagrange multiplier:

    Q^A(s, a)   TD:  y = r + gamma * min Qbar^A(s', Phi(s', w(eps', Delta_theta'(s'))))   (twin, target nets;
                a = the chunk's executed actions when `critic_steps` is set; with `n_step` = n,
                r is the discounted sum of n rewards, s' the state n env steps on, gamma -> gamma^n)
    Q^W(s, w)   distilled on base noise:  (Q^W(s, eps) - Q^A(s, Phi(s, eps)))^2
    actor       max E[Q^W(s, w(eps, Delta(s)))] - alpha (E||Delta||^2 - delta)
    w(eps, D)   eps + D, scaled onto the sphere of radius sqrt(d) with `project` on a sphere decoder
    alpha       alpha <- [alpha + eta_alpha (E||Delta||^2 - delta)]_+

One env step -> one Q^A update -> one Q^W update -> one actor and one alpha update.

Q^A may also take task features of (s, a) (`action_features`, e.g. where a pick_place chunk puts
the TCP: lps_train.features); they widen the critic's input only, so the decoder stays a black box
and the exported head is unchanged.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import trange

from lps_train.envs import ChunkEnv, check_decoder_matches_env
from lps_train.nets import (
    ChunkCritic,
    check_torch_threads,
    freeze,
    mlp,
    project_to_sphere,
    projects_onto_sphere,
    seed_everything,
    soft_update,
)
from lps_train.replay import NStepWriter, ReplayBuffer
from lps_train.runlog import Logger


@dataclass
class LPDSConfig:
    seed: int = 0
    """seed of numpy and torch"""
    total_steps: int = 20_000
    """env steps (one chunk each)"""
    learning_starts: int = 1_000
    """env steps of the (zero-residual) base policy before the first update"""
    buffer_size: int = 200_000
    """replay capacity in transitions"""
    batch_size: int = 256
    """transitions per update"""
    gamma: float = 0.99
    """discount per env step"""
    tau: float = 0.005
    """Polyak rate of the target critics and the target actor"""
    critic_lr: float = 3e-4
    """Adam learning rate of Q^A"""
    latent_critic_lr: float = 3e-4
    """Adam learning rate of Q^W"""
    actor_lr: float = 3e-4
    """Adam learning rate of the residual Delta_theta"""
    delta: float = 0.35
    """trust-region radius: the bound on E_s ||Delta(s)||^2 (a sum over all latent dims)"""
    alpha_init: float = 0.0
    """initial Lagrange multiplier"""
    alpha_lr: float = 0.1
    """eta_alpha: step size of the projected dual ascent on alpha"""
    hidden: int = 256
    """width of every MLP"""
    critic_layers: int = 3
    """hidden layers of Q^A and Q^W"""
    actor_layers: int = 2
    """hidden layers of Delta_theta"""
    critic_steps: int = 0
    """leading actions of each chunk that Q^A sees (0: the whole chunk). With receding-horizon
    execution only the first `execute_steps` actions of a chunk reach the environment; the rest
    cannot change the return and only add input dimensions to the critic"""
    n_step: int = 1
    """TD horizon of Q^A in env steps (1: the paper's one-step target). A success reward reaches the
    grasp decisions of pick_place 20-30 chunks earlier; n > 1 carries it back n steps per backup"""
    updates_per_step: int = 1
    """update rounds (Q^A, Q^W, actor, alpha) per env step"""
    distill_target: str = "min"
    """how Q^W's target combines the twin Q^A heads: 'min' or 'mean'"""
    project: bool = True
    """on a decoder whose latents lie on a sphere, scale eps + Delta back onto it (the runtime does
    the same: the head's manifest says `latent_projection: sphere`); off: w = eps + Delta as is"""
    log_every: int = 250
    """env steps between logged scalars"""
    eval_every: int = 0
    """env steps between calls of the eval callback (0: never)"""
    time_budget_s: float = 0.0
    """stop after this much wall-clock time even before total_steps (0: no limit)"""
    torch_threads: int = 1
    """torch intra-op threads for the updates. One leaves the other core to the simulator and to
    other work; on otherwise idle cores two shorten the updates, which dominate an env step"""

    def __post_init__(self) -> None:
        if self.delta <= 0:
            raise ValueError(f"`delta` must be > 0, got {self.delta}")
        check_torch_threads(self.torch_threads)
        if self.distill_target not in ("min", "mean"):
            raise ValueError(f"`distill_target` must be 'min' or 'mean', got {self.distill_target!r}")
        if self.critic_steps < 0:
            raise ValueError(f"`critic_steps` must be >= 0 (0: whole chunk), got {self.critic_steps}")
        if self.n_step < 1:
            raise ValueError(f"`n_step` must be >= 1, got {self.n_step}")
        if self.learning_starts < 1:
            raise ValueError(f"`learning_starts` must be >= 1, got {self.learning_starts}")


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------
class ResidualActor(nn.Module):
    """Delta_theta(s): the exported LP-DS head, observation [B, obs_dim] -> delta [B, latent_dim]."""

    head_type = "lpds"

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, latent_dim, hidden, layers)
        # Zero output layer: Delta = 0 exactly, so training starts from the base policy.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.net(observation)


class LatentCritic(nn.Module):
    """Q^W(s, w)."""

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim + latent_dim, 1, hidden, layers, layer_norm=True)

    def forward(self, obs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, w], dim=-1)).squeeze(-1)


# ---------------------------------------------------------------------------------------------
# Agent: acting and the four updates
# ---------------------------------------------------------------------------------------------
class LPDSAgent:
    def __init__(self, cfg: LPDSConfig, decoder: nn.Module, action_features: nn.Module | None = None) -> None:
        self.cfg = cfg
        self.decoder = freeze(decoder)
        o, d = decoder.obs_dim, decoder.latent_dim
        self.latent_dim = d
        self.actor = ResidualActor(o, d, cfg.hidden, cfg.actor_layers)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        if cfg.critic_steps > decoder.chunk_length:
            raise ValueError(f"`critic_steps` must be <= the chunk length ({decoder.chunk_length}), "
                             f"got {cfg.critic_steps}")
        self.k = cfg.critic_steps or decoder.chunk_length  # leading chunk actions Q^A sees
        self.qa = ChunkCritic(o, decoder.action_dim, self.k, cfg.hidden, cfg.critic_layers, action_features)
        self.qa_target = copy.deepcopy(self.qa).requires_grad_(False)
        self.qw = LatentCritic(o, d, cfg.hidden, cfg.critic_layers)
        self.qa_opt = torch.optim.Adam(self.qa.parameters(), lr=cfg.critic_lr)
        self.qw_opt = torch.optim.Adam(self.qw.parameters(), lr=cfg.latent_critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.alpha = float(cfg.alpha_init)
        self._sample_latent = getattr(decoder, "sample_latent", None)
        self.projects = projects_onto_sphere(decoder, cfg.project)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Base noise eps [n, latent_dim], drawn like the decoder's (and the runtime's) prior."""
        if self._sample_latent is not None:
            return self._sample_latent(n, generator)
        return torch.randn(n, self.latent_dim, generator=generator)

    def compose(self, eps: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The latent the decoder gets: eps + Delta, on the decoder's sphere when projecting."""
        w = eps + delta
        return project_to_sphere(w) if self.projects else w

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Sample eps, return (chunk [T_a, A], latent w, ||Delta(s)||^2) for one observation."""
        s = torch.as_tensor(obs, dtype=torch.float32)[None]
        delta = self.actor(s)
        w = self.compose(self.noise(1, generator), delta)
        chunk = self.decoder(s, w)[0]
        return chunk.numpy(), w[0].numpy(), float((delta**2).sum())

    def update_qa(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        with torch.no_grad():
            s2 = b["next_obs"]
            w2 = self.compose(self.noise(len(s2)), self.actor_target(s2))
            q1t, q2t = self.qa_target(s2, self.decoder(s2, w2))
            y = b["rewards"] + b["discounts"] * (1.0 - b["dones"]) * torch.minimum(q1t, q2t)
        q1, q2 = self.qa(b["obs"], b["actions"])
        loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        self.qa_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.qa_opt.step()
        return {"losses/qa": loss.item(), "values/qa": q1.mean().item()}

    def update_qw(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        s = b["obs"]
        eps = self.noise(len(s))
        with torch.no_grad():
            q1, q2 = self.qa(s, self.decoder(s, eps))
            target = torch.minimum(q1, q2) if self.cfg.distill_target == "min" else 0.5 * (q1 + q2)
        loss = F.mse_loss(self.qw(s, eps), target)
        self.qw_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.qw_opt.step()
        return {"losses/qw": loss.item()}

    def update_actor_and_alpha(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        s = b["obs"]
        delta = self.actor(s)
        sq = (delta**2).sum(-1)
        w = self.compose(self.noise(len(s)), delta)
        q = self.qw(s, w)
        loss = -q.mean() + self.alpha * (sq.mean() - self.cfg.delta)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        self.qw_opt.zero_grad(set_to_none=True)  # the actor's pass left gradients on Q^W
        # Projected dual ascent on the measured constraint gap of this batch.
        gap = sq.mean().item() - self.cfg.delta
        self.alpha = max(0.0, self.alpha + self.cfg.alpha_lr * gap)
        return {"losses/actor": loss.item(), "values/qw_actor": q.mean().item(),
                "constraint/delta_sq": sq.mean().item(), "lagrange/alpha": self.alpha}

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        info = self.update_qa(b)
        info |= self.update_qw(b)
        info |= self.update_actor_and_alpha(b)
        soft_update(self.qa_target, self.qa, self.cfg.tau)
        soft_update(self.actor_target, self.actor, self.cfg.tau)
        return info

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "qa": self.qa.state_dict(), "qw": self.qw.state_dict(),
                "alpha": self.alpha}


# ---------------------------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------------------------
def train(cfg: LPDSConfig, env: ChunkEnv, decoder: nn.Module, progress: bool = True,
          logger: Logger | None = None,
          eval_fn: Callable[[int, LPDSAgent], dict[str, float]] | None = None,
          action_features: nn.Module | None = None) -> tuple[LPDSAgent, Logger]:
    """Train an LP-DS head online in `env` (normalised units) against the frozen `decoder`;
    `action_features` widens Q^A's input (see the module docstring)."""
    check_decoder_matches_env(decoder, env)
    rng = seed_everything(cfg.seed, cfg.torch_threads)
    logger = logger if logger is not None else Logger()
    agent = LPDSAgent(cfg, decoder, action_features)
    buf = ReplayBuffer(env.obs_dim, env.chunk_length, env.action_dim, agent.latent_dim, cfg.buffer_size)
    writer = NStepWriter(buf, cfg.n_step, cfg.gamma)
    gen = torch.Generator().manual_seed(cfg.seed)

    obs, ep_ret, ep_len, episode = env.reset(cfg.seed), 0.0, 0, 0
    recent: list[tuple[float, int, dict]] = []
    info: dict[str, float] = {}
    w_norms: list[float] = []
    bar = trange(cfg.total_steps, desc="lpds", disable=not progress, mininterval=1.0)
    t_start = time.perf_counter()
    for step in bar:
        if cfg.time_budget_s and time.perf_counter() - t_start > cfg.time_budget_s:
            logger.log(step, **{"charts/stopped_at_step": step})
            break
        chunk, w, _ = agent.act(obs, gen)
        w_norms.append(float(np.linalg.norm(w)))
        nxt, r, done, env_info = env.step(chunk)
        writer.add(obs, chunk, w, r, nxt, bool(env_info.get("terminated", done)), episode_over=done)
        ep_ret, ep_len = ep_ret + r, ep_len + 1
        obs = nxt
        if done:
            recent.append((ep_ret, ep_len, env_info))
            episode += 1
            obs, ep_ret, ep_len = env.reset(cfg.seed + 7919 * episode), 0.0, 0

        if step >= cfg.learning_starts and buf.size:  # n-step transitions lag n - 1 env steps
            for _ in range(cfg.updates_per_step):
                info = agent.update(buf.sample(cfg.batch_size, rng))

        if (step + 1) % cfg.log_every == 0:
            scalars = dict(info)
            scalars["latent/norm"] = float(np.mean(w_norms))
            if recent:
                scalars["charts/episodic_return"] = float(np.mean([x[0] for x in recent]))
                if "success" in recent[0][2]:
                    scalars["charts/success"] = float(np.mean([x[2]["success"] for x in recent]))
                scalars["charts/episode_length"] = float(np.mean([x[1] for x in recent]))
            logger.log(step + 1, **scalars)
            recent, w_norms = [], []
            bar.set_postfix(ret=f"{logger.last('charts/episodic_return'):.3f}",
                            dsq=f"{logger.last('constraint/delta_sq'):.3f}", alpha=f"{agent.alpha:.3f}")
        if eval_fn is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            logger.log(step + 1, **eval_fn(step + 1, agent))
    return agent, logger
