"""DSRL baseline: SAC in the decoder's latent (noise) space, with noise aliasing.

The latent policy *replaces* the base noise: w ~ pi^W(.|s), w = action_magnitude * tanh(u),
u ~ N(mu(s), sigma(s)), and the frozen decoder (a black box) turns it into a chunk
a = Phi(s, w). Critics (DSRL-NA):

    Q^A(s, a)   soft TD on env transitions: y = r + gamma * (min Qbar^A(s', Phi(s', w')) - T log pi(w'|s'))
    Q^W(s, w)   "noise aliasing": distilled from Q^A(s, Phi(s, w)) over latents w drawn half from
                the current policy and half uniformly from the latent box, so it is right both
                where the actor looks and elsewhere in the box
    actor       SAC: min E[T log pi(w|s) - Q^W(s, w)]
    T           entropy temperature auto-tuned towards a target entropy

Nothing anchors w to N(0, I): that is what LP-DS adds.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import trange

from lps_train.envs import ChunkEnv, check_decoder_matches_env
from lps_train.lpds import LatentCritic
from lps_train.nets import ChunkCritic, check_torch_threads, freeze, mlp, seed_everything, soft_update
from lps_train.replay import ReplayBuffer
from lps_train.runlog import Logger

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclass
class DSRLConfig:
    seed: int = 0
    """seed of numpy and torch"""
    total_steps: int = 20_000
    """env steps (one chunk each)"""
    learning_starts: int = 1_000
    """env steps with latents drawn uniformly from the box before the first update"""
    buffer_size: int = 200_000
    """replay capacity in transitions"""
    batch_size: int = 256
    """transitions per update"""
    gamma: float = 0.99
    """discount per env step"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    critic_lr: float = 3e-4
    """Adam learning rate of Q^A"""
    latent_critic_lr: float = 3e-4
    """Adam learning rate of Q^W"""
    actor_lr: float = 3e-4
    """Adam learning rate of the latent policy"""
    temperature_lr: float = 3e-4
    """Adam learning rate of log T"""
    action_magnitude: float = 1.5
    """bound of every latent coordinate: w = action_magnitude * tanh(u)"""
    target_entropy_scale: float = 1.0
    """target entropy = -target_entropy_scale * latent_dim"""
    init_temperature: float = 1.0
    """initial entropy temperature T"""
    hidden: int = 256
    """width of every MLP"""
    critic_layers: int = 3
    """hidden layers of Q^A and Q^W"""
    actor_layers: int = 2
    """hidden layers of the latent policy"""
    updates_per_step: int = 1
    """update rounds per env step (DSRL's published runs use 20)"""
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
        if self.action_magnitude <= 0:
            raise ValueError(f"`action_magnitude` must be > 0, got {self.action_magnitude}")
        check_torch_threads(self.torch_threads)


class LatentPolicy(nn.Module):
    """Tanh-squashed Gaussian over latents; `forward` is the exported (deterministic) head."""

    head_type = "dsrl"

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int, layers: int, magnitude: float) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, 2 * latent_dim, hidden, layers)
        self.latent_dim = latent_dim
        self.register_buffer("magnitude", torch.tensor(float(magnitude)))

    def dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.trunk(obs).chunk(2, dim=-1)
        return mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, log pi(w|s)) with the tanh change of variables."""
        mu, log_std = self.dist(obs)
        std = log_std.exp()
        noise = torch.randn(mu.shape, generator=generator)
        u = mu + std * noise
        logp = (-0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (torch.log(self.magnitude * (1 - torch.tanh(u) ** 2) + 1e-6)).sum(-1)
        return self.magnitude * torch.tanh(u), logp

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        # A constant slice, not chunk(): the exported graph then declares [B, latent_dim], which the
        # runtime checks against the manifest.
        return self.magnitude * torch.tanh(self.trunk(observation)[:, : self.latent_dim])


class DSRLAgent:
    def __init__(self, cfg: DSRLConfig, decoder: nn.Module) -> None:
        self.cfg = cfg
        self.decoder = freeze(decoder)
        o, d = decoder.obs_dim, decoder.latent_dim
        self.latent_dim = d
        self.actor = LatentPolicy(o, d, cfg.hidden, cfg.actor_layers, cfg.action_magnitude)
        self.qa = ChunkCritic(o, decoder.action_dim, decoder.chunk_length, cfg.hidden, cfg.critic_layers)
        self.qa_target = copy.deepcopy(self.qa).requires_grad_(False)
        self.qw = LatentCritic(o, d, cfg.hidden, cfg.critic_layers)
        self.log_temp = torch.tensor(math.log(cfg.init_temperature), requires_grad=True)
        self.target_entropy = -cfg.target_entropy_scale * d
        self.qa_opt = torch.optim.Adam(self.qa.parameters(), lr=cfg.critic_lr)
        self.qw_opt = torch.optim.Adam(self.qw.parameters(), lr=cfg.latent_critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.temp_opt = torch.optim.Adam([self.log_temp], lr=cfg.temperature_lr)

    @property
    def temperature(self) -> float:
        return float(self.log_temp.detach().exp())

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator | None = None,
            uniform: bool = False) -> tuple[np.ndarray, np.ndarray]:
        s = torch.as_tensor(obs, dtype=torch.float32)[None]
        if uniform:
            w = (2 * torch.rand(1, self.latent_dim, generator=generator) - 1) * self.cfg.action_magnitude
        else:
            w, _ = self.actor.sample(s, generator)
        return self.decoder(s, w)[0].numpy(), w[0].numpy()

    def update_qa(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        with torch.no_grad():
            s2 = b["next_obs"]
            w2, logp2 = self.actor.sample(s2)
            q1t, q2t = self.qa_target(s2, self.decoder(s2, w2))
            soft_v = torch.minimum(q1t, q2t) - self.temperature * logp2
            y = b["rewards"] + self.cfg.gamma * (1.0 - b["dones"]) * soft_v
        q1, q2 = self.qa(b["obs"], b["actions"])
        loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        self.qa_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.qa_opt.step()
        return {"losses/qa": loss.item(), "values/qa": q1.mean().item()}

    def update_qw(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        s = b["obs"]
        n = len(s)
        with torch.no_grad():
            w_pi, _ = self.actor.sample(s[: n // 2])
            w_box = (2 * torch.rand(n - n // 2, self.latent_dim) - 1) * self.cfg.action_magnitude
            w = torch.cat([w_pi, w_box])
            q1, q2 = self.qa(s, self.decoder(s, w))
            target = torch.minimum(q1, q2)
        loss = F.mse_loss(self.qw(s, w), target)
        self.qw_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.qw_opt.step()
        return {"losses/qw": loss.item()}

    def update_actor_and_temperature(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        s = b["obs"]
        w, logp = self.actor.sample(s)
        q = self.qw(s, w)
        loss = (self.temperature * logp - q).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        self.qw_opt.zero_grad(set_to_none=True)
        temp_loss = -(self.log_temp.exp() * (logp.detach() + self.target_entropy)).mean()
        self.temp_opt.zero_grad(set_to_none=True)
        temp_loss.backward()
        self.temp_opt.step()
        return {"losses/actor": loss.item(), "values/qw_actor": q.mean().item(), "entropy/logp": logp.mean().item(),
                "entropy/temperature": self.temperature}

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        info = self.update_qa(b)
        info |= self.update_qw(b)
        info |= self.update_actor_and_temperature(b)
        soft_update(self.qa_target, self.qa, self.cfg.tau)
        return info


def train(cfg: DSRLConfig, env: ChunkEnv, decoder: nn.Module, progress: bool = True,
          logger: Logger | None = None,
          eval_fn: Callable[[int, DSRLAgent], dict[str, float]] | None = None) -> tuple[DSRLAgent, Logger]:
    """Train a DSRL latent policy online in `env` (normalised units) against the frozen `decoder`."""
    check_decoder_matches_env(decoder, env)
    rng = seed_everything(cfg.seed, cfg.torch_threads)
    logger = logger if logger is not None else Logger()
    agent = DSRLAgent(cfg, decoder)
    buf = ReplayBuffer(env.obs_dim, env.chunk_length, env.action_dim, agent.latent_dim, cfg.buffer_size)
    gen = torch.Generator().manual_seed(cfg.seed)

    obs, ep_ret, ep_len, episode = env.reset(cfg.seed), 0.0, 0, 0
    recent: list[tuple[float, int, dict]] = []
    w_norms: list[float] = []
    info: dict[str, float] = {}
    bar = trange(cfg.total_steps, desc="dsrl", disable=not progress, mininterval=1.0)
    t_start = time.perf_counter()
    for step in bar:
        if cfg.time_budget_s and time.perf_counter() - t_start > cfg.time_budget_s:
            logger.log(step, **{"charts/stopped_at_step": step})
            break
        chunk, w = agent.act(obs, gen, uniform=step < cfg.learning_starts)
        w_norms.append(float(np.linalg.norm(w)))
        nxt, r, done, env_info = env.step(chunk)
        buf.add(obs, chunk, w, r, nxt, bool(env_info.get("terminated", done)))
        ep_ret, ep_len = ep_ret + r, ep_len + 1
        obs = nxt
        if done:
            recent.append((ep_ret, ep_len, env_info))
            episode += 1
            obs, ep_ret, ep_len = env.reset(cfg.seed + 7919 * episode), 0.0, 0
        if step >= cfg.learning_starts:
            for _ in range(cfg.updates_per_step):
                info = agent.update(buf.sample(cfg.batch_size, rng))
        if (step + 1) % cfg.log_every == 0:
            scalars = dict(info)
            scalars["latent/norm"] = float(np.mean(w_norms))
            if recent:
                scalars["charts/episodic_return"] = float(np.mean([x[0] for x in recent]))
                scalars["charts/episode_length"] = float(np.mean([x[1] for x in recent]))
                if "success" in recent[0][2]:
                    scalars["charts/success"] = float(np.mean([x[2]["success"] for x in recent]))
            logger.log(step + 1, **scalars)
            recent, w_norms = [], []
            bar.set_postfix(ret=f"{logger.last('charts/episodic_return'):.3f}", temp=f"{agent.temperature:.3f}")
        if eval_fn is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            logger.log(step + 1, **eval_fn(step + 1, agent))
    return agent, logger
