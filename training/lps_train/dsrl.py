"""DSRL: steering a frozen generative policy by reinforcement learning in its noise space.

Diffusion Steering via Reinforcement Learning (Wagenmaker et al., 2025), as its paper and its
authors' code describe it. The frozen decoder Phi(s, w) is a black box (forward passes only); a
SAC latent policy *replaces* its base noise,

    w = m * tanh(u),   u ~ N(mu(s), sigma(s)),   a = Phi(s, w)

and is trained online in `env`. Two variants:

  na   (noise-aliased, DSRL-NA; the authors' recommended one)
       Q^A(s, a)  twin, target nets; TD on the stored chunks:
                  y = r + gamma * (min Qbar^A(s', Phi(s', w')) - T log pi(w'|s')),  w' ~ pi(.|s')
       Q^W(s, w)  twin, no target; head i distilled from the online Q^A head i on base noise
                  w ~ N(0, I): sum_i (Q^W_i(s, w) - Q^A_i(s, Phi(s, w)))^2, fresh batch each step
       actor      min E[T log pi(w|s) - min_i Q^W_i(s, w)]
  sac  (DSRL-SAC) one twin critic Q(s, w) on the stored latents, the latent being SAC's action.

In both, the temperature T is tuned towards `target_entropy` (0 in the authors' configs), and every
`train_every` env steps (the authors' four parallel envs) come `utd` gradient steps, then (na)
`distill_steps` steps of Q^W. Until `learning_starts` the base policy acts, on N(0, I) noise
clipped to the box. On a decoder whose latents lie on a sphere, `project` scales every latent onto
it before the decoder (the runtime does the same: `latent_projection: sphere`) and before the
latent critics: the decoder only ever sees latents where it was trained, N(0, I) base noise becomes
its own prior there, and Q^W reads the actor's box latents where it was distilled.

`train_offline` runs DSRL-NA on a dataset alone, its replay buffer filled with the data and no env
steps, as the authors' code can (`load_offline_data`, with no behaviour term); it is the offline
baseline beside LPS. Nothing anchors w to the base noise: that is what LP-DS adds.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from lps_train.replay import ReplayBuffer
from lps_train.runlog import Logger
from lps_train.snapshots import differing_settings, save_atomically

# Stable-Baselines3's SAC bounds, which the authors' code runs on.
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
VARIANTS = ("na", "sac")
# The box of each variant in the authors' code: DSRL-SAC's noise action space is
# [-action_magnitude, action_magnitude]; DSRL-NA's is the environment's own [-1, 1] (its
# action_magnitude is never read).
PUBLISHED_MAGNITUDE = {"na": 1.0, "sac": 1.5}


@dataclass
class DSRLConfig:
    seed: int = 0
    """seed of numpy and torch"""
    variant: str = "na"
    """'na': noise-aliased (Q^A on chunks, Q^W distilled on base noise); 'sac': one critic on latents"""
    total_steps: int = 20_000
    """env steps (one chunk each)"""
    learning_starts: int = 1_000
    """env steps of the base policy (N(0, I) noise clipped to the box) before the first update"""
    buffer_size: int = 1_000_000
    """replay capacity in transitions"""
    batch_size: int = 256
    """transitions per gradient step"""
    gamma: float = 0.99
    """discount per env step (one chunk)"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    critic_lr: float = 3e-4
    """Adam learning rate of Q^A (na) or Q (sac)"""
    latent_critic_lr: float = 3e-4
    """Adam learning rate of Q^W (na)"""
    actor_lr: float = 3e-4
    """Adam learning rate of the latent policy"""
    temperature_lr: float = 3e-4
    """Adam learning rate of log T"""
    action_magnitude: float = 0.0
    """bound of every latent coordinate, w = m tanh(u); 0: the variant's published box
    (na 1.0, sac 1.5)"""
    target_entropy: float = 0.0
    """entropy the temperature is tuned towards"""
    init_temperature: float = 1.0
    """initial entropy temperature T"""
    reward_offset: float = 0.0
    """online: subtracted from every env step's reward, as the authors' robomimic wrapper does
    (`reward_offset: 1`: a step costs 1 until the task succeeds, so the returns are tens to hundreds
    where a 0/1 success reward leaves them below 1, under an entropy bonus T * |log pi| of about 40
    at the start); an episode that ends in failure pays the rest of a never-ending one,
    -reward_offset / (1 - gamma), so that ending early is never the cheaper way to fail"""
    hidden: int = 2048
    """width of every MLP (the authors' manipulation runs: 2048)"""
    critic_layers: int = 3
    """hidden layers of the critics"""
    actor_layers: int = 3
    """hidden layers of the latent policy"""
    critic_steps: int = 0
    """leading actions of each chunk that Q^A sees (0: the whole chunk), as LP-DS's option"""
    train_every: int = 4
    """env steps between training calls (the authors collect with four envs per call)"""
    utd: int = 20
    """gradient steps (critic, actor, temperature) per training call"""
    distill_steps: int = 10
    """na: Q^W distillation steps per training call, after the gradient steps"""
    project: bool = True
    """on a decoder whose latents lie on a sphere, scale every latent onto it before the decoder"""
    stochastic_head: bool = True
    """export the head as the sampling actor (the runtime feeds it standard-normal noise), as the
    authors evaluate; off: the deterministic m tanh(mu(s))"""
    log_every: int = 250
    """env steps between logged scalars"""
    eval_every: int = 0
    """env steps between calls of the eval callback (0: never)"""
    time_budget_s: float = 0.0
    """stop after this much wall-clock time even before total_steps (0: no limit)"""
    torch_threads: int = 1
    """torch intra-op threads for the updates"""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {list(VARIANTS)}, got {self.variant!r}")
        if self.action_magnitude < 0:
            raise ValueError(f"`action_magnitude` must be >= 0 (0: the published box), got {self.action_magnitude}")
        for name in ("train_every", "utd", "learning_starts"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.distill_steps < 0 or self.critic_steps < 0:
            raise ValueError("`distill_steps` and `critic_steps` must be >= 0")
        if not (math.isfinite(self.reward_offset) and self.reward_offset >= 0):
            raise ValueError(f"`reward_offset` must be finite and >= 0 (a cost per step), got {self.reward_offset}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"`gamma` must be in [0, 1), got {self.gamma}")
        check_torch_threads(self.torch_threads)

    @property
    def magnitude(self) -> float:
        return self.action_magnitude or PUBLISHED_MAGNITUDE[self.variant]


def _net(in_dim: int, out_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """The authors' MLP: Linear -> LayerNorm -> Tanh per hidden layer."""
    return mlp(in_dim, out_dim, hidden, layers, act=nn.Tanh, layer_norm=True)


class LatentPolicy(nn.Module):
    """Tanh-squashed Gaussian over latents, and the exported head.

    `forward(observation)` is m tanh(mu(s)); `forward(observation, noise)` samples
    m tanh(mu(s) + sigma(s) * noise) from the standard-normal `noise` the runtime feeds it.
    """

    head_type = "dsrl"

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int, layers: int, magnitude: float,
                 stochastic: bool = True) -> None:
        super().__init__()
        self.trunk = _net(obs_dim, 2 * latent_dim, hidden, layers)
        self.latent_dim = latent_dim
        self.stochastic = stochastic
        self.register_buffer("magnitude", torch.tensor(float(magnitude)))

    def dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.trunk(obs)
        # Constant slices, not chunk(): the exported graph then declares [B, latent_dim].
        mu, log_std = out[:, : self.latent_dim], out[:, self.latent_dim:]
        return mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, log pi(w|s)) with the tanh change of variables."""
        mu, log_std = self.dist(obs)
        noise = torch.randn(mu.shape, generator=generator)
        u = mu + log_std.exp() * noise
        logp = (-0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - torch.log(self.magnitude * (1 - torch.tanh(u) ** 2) + 1e-6).sum(-1)
        return self.magnitude * torch.tanh(u), logp

    def forward(self, observation: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        mu, log_std = self.dist(observation)
        u = mu if noise is None else mu + log_std.exp() * noise
        return self.magnitude * torch.tanh(u)


class LatentCritics(nn.Module):
    """Q(s, w) twin: [2, B]."""

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(_net(obs_dim + latent_dim, 1, hidden, layers) for _ in range(2))

    def forward(self, obs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, w], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.heads])


class DSRLAgent:
    def __init__(self, cfg: DSRLConfig, decoder: nn.Module, action_features: nn.Module | None = None) -> None:
        self.cfg = cfg
        self.decoder = freeze(decoder)
        o, d = decoder.obs_dim, decoder.latent_dim
        self.latent_dim = d
        self.magnitude = cfg.magnitude
        self.projects = projects_onto_sphere(decoder, cfg.project)
        self.actor = LatentPolicy(o, d, cfg.hidden, cfg.actor_layers, self.magnitude, cfg.stochastic_head)
        if cfg.variant == "na":
            if cfg.critic_steps > decoder.chunk_length:
                raise ValueError(f"`critic_steps` must be <= the chunk length ({decoder.chunk_length}), "
                                 f"got {cfg.critic_steps}")
            k = cfg.critic_steps or decoder.chunk_length
            self.critic: nn.Module = ChunkCritic(o, decoder.action_dim, k, cfg.hidden, cfg.critic_layers,
                                                 action_features, act=nn.Tanh)
            self.qw: LatentCritics | None = LatentCritics(o, d, cfg.hidden, cfg.critic_layers)
            self.qw_opt = torch.optim.Adam(self.qw.parameters(), lr=cfg.latent_critic_lr)
        else:
            self.critic = LatentCritics(o, d, cfg.hidden, cfg.critic_layers)
            self.qw = None
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_temp = torch.tensor(math.log(cfg.init_temperature), requires_grad=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.temp_opt = torch.optim.Adam([self.log_temp], lr=cfg.temperature_lr)

    @property
    def temperature(self) -> float:
        return float(self.log_temp.detach().exp())

    def on_decoder(self, w: torch.Tensor) -> torch.Tensor:
        """The latent as the decoder gets it; the latent critics read this too, so that Q^W's
        distillation latents (N(0, I)) and the actor's (the box) meet where the decoder sees them."""
        return project_to_sphere(w) if self.projects else w

    def decode(self, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.decoder(s, self.on_decoder(w))

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator | None = None,
            base: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(chunk [T_a, A], latent w): the actor's sample, or (`base`) clipped N(0, I) noise."""
        s = torch.as_tensor(obs, dtype=torch.float32)[None]
        if base:
            w = torch.randn(1, self.latent_dim, generator=generator).clamp(-self.magnitude, self.magnitude)
        else:
            w, _ = self.actor.sample(s, generator)
        return self.decode(s, w)[0].numpy(), w[0].numpy()

    def _q_of_policy(self, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """min_i Q_i(s, w): Q^W for na, the latent critic for sac."""
        return (self.qw if self.qw is not None else self.critic)(s, self.on_decoder(w)).min(0).values

    def gradient_step(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        """One SAC step: temperature, critic, actor, targets (Stable-Baselines3's order; the critic and
        the actor read the temperature after its step)."""
        s = b["obs"]
        w, logp = self.actor.sample(s)
        temp_loss = -(self.log_temp * (logp.detach() + self.cfg.target_entropy)).mean()
        self.temp_opt.zero_grad(set_to_none=True)
        temp_loss.backward()
        self.temp_opt.step()
        temp = self.temperature

        with torch.no_grad():
            s2 = b["next_obs"]
            w2, logp2 = self.actor.sample(s2)
            nxt = self.decode(s2, w2) if self.qw is not None else self.on_decoder(w2)
            soft_v = self.critic_target(s2, nxt).min(0).values - temp * logp2
            y = b["rewards"] + b["discounts"] * (1.0 - b["dones"]) * soft_v
        qs = self.critic(s, b["actions"] if self.qw is not None else self.on_decoder(b["latents"]))
        critic_loss = 0.5 * sum(F.mse_loss(q, y) for q in qs)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        q = self._q_of_policy(s, w)
        actor_loss = (temp * logp - q).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        return {"losses/critic": critic_loss.item(), "values/critic": qs[0].mean().item(),
                "losses/actor": actor_loss.item(), "values/q_actor": q.mean().item(),
                "entropy/logp": logp.mean().item(), "entropy/temperature": temp}

    def distill_step(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        """na: each Q^W head towards the same online Q^A head on base noise w ~ N(0, I)."""
        s = b["obs"]
        w = torch.randn(len(s), self.latent_dim)
        with torch.no_grad():
            target = self.critic(s, self.decode(s, w))
        loss = 0.5 * sum(F.mse_loss(q, t) for q, t in zip(self.qw(s, self.on_decoder(w)), target, strict=True))
        self.qw_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.qw_opt.step()
        return {"losses/qw": loss.item()}

    def train_call(self, buf: ReplayBuffer, rng: np.random.Generator, steps: int = 0) -> dict[str, float]:
        """`steps` gradient steps (0: `utd`), then the distillation steps."""
        info: dict[str, float] = {}
        for _ in range(steps or self.cfg.utd):
            info = self.gradient_step(buf.sample(self.cfg.batch_size, rng))
        for _ in range(self.cfg.distill_steps if self.qw is not None else 0):
            info |= self.distill_step(buf.sample(self.cfg.batch_size, rng))
        return info


# The parts of a run's state a snapshot holds (`state_dict` of each).
_STATE_PARTS = ("actor", "critic", "critic_target", "qw", "critic_opt", "actor_opt", "temp_opt", "qw_opt")
_BUFFER_ARRAYS = ("obs", "next_obs", "actions", "latents", "rewards", "dones", "discounts")


def save_state(path: Path, cfg: DSRLConfig, agent: DSRLAgent, buf: ReplayBuffer, step: int, episode: int,
               rng: np.random.Generator, gen: torch.Generator, logger: Logger, elapsed_s: float,
               since_log: tuple[list, list, dict], run: dict | None = None) -> None:
    """Everything a run needs to go on from the start of episode `episode` after env step `step`;
    `run`: what else makes the run this run (decoder, task), compared on load like the config."""
    n = buf.size
    state = {"config": dataclasses.asdict(cfg), "run": run, "step": step, "episode": episode, "elapsed_s": elapsed_s,
             "parts": {k: getattr(agent, k).state_dict() for k in _STATE_PARTS if getattr(agent, k, None) is not None},
             "log_temp": agent.log_temp.detach().clone(),
             "buffer": {k: getattr(buf, k)[:n].copy() for k in _BUFFER_ARRAYS} | {"next": buf._next, "size": n},
             "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "gen": gen.get_state(),
             "history": dict(logger.history), "since_log": since_log}
    save_atomically(state, path)


def load_state(path: Path, cfg: DSRLConfig, agent: DSRLAgent, buf: ReplayBuffer, rng: np.random.Generator,
               gen: torch.Generator, logger: Logger,
               run: dict | None = None) -> tuple[int, int, float, tuple[list, list, dict]]:
    """Restore a `save_state` snapshot into a fresh agent; (step, episode, elapsed_s, what was
    gathered since the last logged point) of it."""
    state = torch.load(path, weights_only=False)
    if state["config"] != dataclasses.asdict(cfg):
        differ = differing_settings(state["config"], dataclasses.asdict(cfg))
        raise ValueError(f"{path} is a snapshot of a run with other settings ({', '.join(differ)}): delete it "
                         "to start afresh, or run with its settings")
    if state["run"] != run:
        differ = differing_settings(state["run"], run)
        raise ValueError(f"{path} is a snapshot of another run ({', '.join(differ)} differ): delete it to "
                         "start afresh")
    for k, sd in state["parts"].items():
        getattr(agent, k).load_state_dict(sd)
    with torch.no_grad():
        agent.log_temp.copy_(state["log_temp"])
    n = state["buffer"]["size"]
    for k in _BUFFER_ARRAYS:
        getattr(buf, k)[:n] = state["buffer"][k]
    buf.size, buf._next = n, state["buffer"]["next"]
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    gen.set_state(state["gen"])
    logger.history.update(state["history"])
    return state["step"], state["episode"], state["elapsed_s"], state["since_log"]


def offset_reward(cfg: DSRLConfig, reward: float, terminated: bool, info: dict[str, Any]) -> float:
    """The reward DSRL learns from: the env's, less `reward_offset` per step; a terminal step that is
    not a success (`info["success"]` false) also pays every later step of an episode that never
    succeeds."""
    if not cfg.reward_offset:
        return reward
    r = reward - cfg.reward_offset
    if terminated and not info.get("success", True):
        r -= cfg.reward_offset * cfg.gamma / (1.0 - cfg.gamma)
    return r


def train(cfg: DSRLConfig, env: ChunkEnv, decoder: nn.Module, progress: bool = True,
          logger: Logger | None = None,
          eval_fn: Callable[[int, DSRLAgent], dict[str, float]] | None = None,
          action_features: nn.Module | None = None, state_path: Path | None = None,
          state_every: int = 1000, run: dict | None = None) -> tuple[DSRLAgent, Logger]:
    """Train a DSRL latent policy online in `env` (normalised units) against the frozen `decoder`.

    With `state_path`, the run's whole state (networks, optimisers, replay, random generators,
    curves) is written there at the first episode start after every `state_every` env steps, and a
    run that finds a snapshot of its own settings (`cfg` and `run`) there goes on from it: a run stopped (a session
    ending, a machine going down) loses at most `state_every` steps plus an episode. The episode
    starts are seeded, so the run goes on as if it had not stopped, up to the order of floating-point
    sums."""
    check_decoder_matches_env(decoder, env)
    rng = seed_everything(cfg.seed, cfg.torch_threads)
    logger = logger if logger is not None else Logger()
    agent = DSRLAgent(cfg, decoder, action_features)
    buf = ReplayBuffer(env.obs_dim, env.chunk_length, env.action_dim, agent.latent_dim, cfg.buffer_size)
    gen = torch.Generator().manual_seed(cfg.seed)

    first, episode, elapsed = 0, 0, 0.0
    recent: list[tuple[float, int, dict]] = []
    w_norms: list[float] = []
    info: dict[str, float] = {}
    if state_path is not None and state_path.is_file():
        first, episode, elapsed, (recent, w_norms, info) = load_state(state_path, cfg, agent, buf, rng, gen, logger, run)
        print(f"dsrl: going on from {state_path} at env step {first} (episode {episode})", flush=True)
    obs, ep_ret, ep_len = env.reset(cfg.seed + 7919 * episode if episode else cfg.seed), 0.0, 0
    next_state = (first // state_every + 1) * state_every
    bar = trange(first, cfg.total_steps, initial=first, total=cfg.total_steps, desc=f"dsrl-{cfg.variant}",
                 disable=not progress, mininterval=1.0)
    t_start = time.perf_counter() - elapsed
    for step in bar:
        if cfg.time_budget_s and time.perf_counter() - t_start > cfg.time_budget_s:
            logger.log(step, **{"charts/stopped_at_step": step})
            break
        chunk, w = agent.act(obs, gen, base=step < cfg.learning_starts)
        w_norms.append(float(np.linalg.norm(w)))
        nxt, r, done, env_info = env.step(chunk)
        terminated = bool(env_info.get("terminated", done))
        buf.add(obs, chunk, w, offset_reward(cfg, r, terminated, env_info), nxt, terminated, discount=cfg.gamma)
        ep_ret, ep_len = ep_ret + r, ep_len + 1
        obs = nxt
        if done:
            recent.append((ep_ret, ep_len, env_info))
            episode += 1
            obs, ep_ret, ep_len = env.reset(cfg.seed + 7919 * episode), 0.0, 0
        if step + 1 >= cfg.learning_starts and (step + 1) % cfg.train_every == 0:
            info = agent.train_call(buf, rng)
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
        if state_path is not None and done and step + 1 >= next_state and step + 1 < cfg.total_steps:
            save_state(state_path, cfg, agent, buf, step + 1, episode, rng, gen, logger,
                       time.perf_counter() - t_start, (recent, w_norms, info), run)
            next_state = ((step + 1) // state_every + 1) * state_every
    agent.wall_s = time.perf_counter() - t_start  # over every part of a run that went on from a snapshot
    return agent, logger


def _crossed(every: int, before: int, now: int) -> bool:
    """A multiple of `every` lies in (before, now]."""
    return every > 0 and now // every > before // every


def train_offline(cfg: DSRLConfig, data: Any, decoder: nn.Module, steps: int, progress: bool = True,
                  logger: Logger | None = None,
                  eval_fn: Callable[[int, DSRLAgent], dict[str, float]] | None = None) -> tuple[DSRLAgent, Logger]:
    """DSRL-NA from a dataset alone: the replay buffer is `data` (anything with `sample(batch, rng)`
    giving obs, actions, rewards, next_obs, dones, discounts in normalised units, e.g.
    `lps_train.offline.chunks.ChunkDataset`), and `steps` gradient steps come in training calls of
    `utd` steps with `distill_steps` of Q^W after each, as online. Only the noise-aliased variant
    can learn offline: the dataset holds actions, not the latents that DSRL-SAC's critic reads. The
    data's own discounts apply (`ChunkDataset`: gamma per action, gamma^H per chunk)."""
    if cfg.variant != "na":
        raise ValueError(f"offline DSRL is the noise-aliased variant ('na'), got {cfg.variant!r}")
    if cfg.reward_offset:
        raise ValueError("`reward_offset` is an online setting: offline, the dataset's rewards are used as "
                         "they are (shift them at conversion)")
    dims = (decoder.obs_dim, decoder.action_dim, decoder.chunk_length)
    if dims != (data.obs_dim, data.action_dim, data.horizon):
        raise ValueError(f"the decoder's (obs, action, chunk) dims {dims} differ from the data's "
                         f"{(data.obs_dim, data.action_dim, data.horizon)}")
    rng = seed_everything(cfg.seed, cfg.torch_threads)
    logger = logger if logger is not None else Logger()
    agent = DSRLAgent(cfg, decoder)
    agent.eval_wall_s = 0.0  # evaluation time, which the caller leaves out of the training time
    done = 0
    bar = trange(steps, desc="dsrl-na offline", disable=not progress, mininterval=1.0)
    while done < steps:
        n = min(cfg.utd, steps - done)
        info = agent.train_call(data, rng, n)
        before, done = done, done + n
        bar.update(n)
        if _crossed(cfg.log_every, before, done) or done == steps:
            logger.log(done, **info)
        if eval_fn is not None and (_crossed(cfg.eval_every, before, done) or (cfg.eval_every and done == steps)):
            t_eval = time.perf_counter()
            logger.log(done, **eval_fn(done, agent))
            agent.eval_wall_s += time.perf_counter() - t_eval
    bar.close()
    return agent, logger
