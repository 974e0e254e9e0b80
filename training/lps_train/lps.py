"""LPS: Latent Policy Steering through a one-step MeanFlow policy (offline).

The base policy Phi(s, w) is a frozen one-step MeanFlow decoder, differentiable in one pass.
From an offline dataset of chunk-level transitions:

    Q(s, a)   an ensemble of action-space critics (`critics`, two by default) by TD (a: the chunk's
              executed actions when `critic_steps` is set), targets from the steered policy
              y = r + gamma * min Qbar(s', Phi(s', pi(s')))
              or, with `critic_target="data"`, from the dataset's next action a' (SARSA)
              y = r + gamma * min Qbar(s', a')
              (`reward_shift` is added to r in both)
    pi        latent actor w = pi(s), projected onto the sphere of radius sqrt(d) (where the
              decoder's training latents live), trained with
              L = -E_s[ Q(s, Phi(s, pi(s))) ]
              the gradient dQ/da flowing through dPhi/dw by the chain rule.

There is no behaviour-cloning weight and no latent critic Q(s, w): staying on the sphere keeps
w inside the decoder's support, and the decoder keeps the actions inside the data's support.

`train` takes a decoder fitted beforehand (train-base); `train_from_chunks` learns from a trajectory
dataset alone (lps_train.offline), the decoder trained in the same update as critics and actor as
the authors do, or fitted first and frozen.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm, trange

from lps_train.nets import (
    ChunkCritic,
    check_torch_threads,
    freeze,
    mlp,
    project_to_sphere,
    seed_everything,
    soft_update,
)
from lps_train.replay import ReplayBuffer
from lps_train.runlog import Logger
from lps_train.snapshots import differing_settings, save_atomically


@dataclass
class LPSConfig:
    seed: int = 0
    """seed of numpy and torch"""
    steps: int = 100_000
    """gradient steps (each: one critic and one actor update)"""
    batch_size: int = 256
    """transitions per update"""
    gamma: float = 0.99
    """discount per env step (one chunk)"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    critic_lr: float = 3e-4
    """Adam learning rate of Q"""
    actor_lr: float = 3e-4
    """Adam learning rate of the latent actor"""
    hidden: int = 512
    """width of every MLP"""
    critic_layers: int = 4
    """hidden layers of Q"""
    actor_layers: int = 3
    """hidden layers of the latent actor"""
    critic_steps: int = 0
    """leading actions of each chunk that Q sees (0: the whole chunk). Only the first
    `execute_steps` actions of a chunk reach the environment before the next replan; the rest
    cannot change the return, and an actor free to shape them only finds Q's extrapolation errors"""
    critics: int = 2
    """action critics in the ensemble; the TD target takes the minimum of their targets. More than
    two make that minimum, and the actor's "min", more pessimistic where they disagree: off the data
    (SAC-N, An et al. 2021)"""
    actor_q: str = "mean"
    """how the actor reads the critics: their "mean", or their "min" (pessimistic: an actor that
    climbs into one critic's extrapolation error is held back by the others)"""
    critic_target: str = "policy"
    """the action at s' in Q's TD target: "policy", the steered policy's Phi(s', pi(s')) (Q of the
    latent actor, as in the paper); "data", the dataset's own next action (SARSA: Q of the
    demonstrators, never queried off the data; the actor then takes one improvement step through
    the decoder). With "policy" every target is bootstrapped from an action the actor chose to
    maximise Q, so Q's extrapolation errors compound along the chain; "data" has none to compound"""
    reward_shift: float = 0.0
    """added to every reward before the TD target. -1 gives OGBench's convention (-1 per step until
    success, 0 at success), the benchmark the paper reports: offline, a failed demonstration ends by
    time-out, not by a terminal, so with 0/1 rewards nothing anchors its states' values and they
    float up to what the actor's bootstrap promises; a cost per step pulls every chain that does
    not reach success down with its length"""
    normalize_q_loss: bool = True
    """divide the actor loss by stop-grad(mean |Q|) so its scale does not depend on the reward scale"""
    log_every: int = 500
    """steps between logged scalars"""
    eval_every: int = 0
    """steps between calls of the eval callback (0: never)"""
    torch_threads: int = 1
    """torch intra-op threads for the updates"""

    def __post_init__(self) -> None:
        if self.critics < 2:
            raise ValueError(f"`critics` must be >= 2 (the TD target takes the members' minimum), got {self.critics}")
        if self.critic_target not in ("policy", "data"):
            raise ValueError(f"`critic_target` must be 'policy' or 'data', got {self.critic_target!r}")
        check_torch_threads(self.torch_threads)


class LatentActor(nn.Module):
    """pi(s) on the sphere: the exported LPS head, observation -> latent [B, latent_dim]."""

    head_type = "lps"

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, latent_dim, hidden, layers)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return project_to_sphere(self.net(observation))


class LPSAgent:
    def __init__(self, cfg: LPSConfig, decoder: nn.Module, action_features: nn.Module | None = None,
                 action_bounds: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.cfg = cfg
        # Bounds of the decoded actions (normalised units) where the critics and the actor read them:
        # the reference clips OGBench's decoder outputs to the action space.
        self.action_bounds = None if action_bounds is None else tuple(
            torch.as_tensor(np.asarray(b, np.float32)) for b in action_bounds)
        # Frozen, but gradients flow through it to the latent: the whole point of LPS.
        self.decoder = freeze(decoder)
        o, d = decoder.obs_dim, decoder.latent_dim
        self.actor = LatentActor(o, d, cfg.hidden, cfg.actor_layers)
        if cfg.actor_q not in ("mean", "min"):
            raise ValueError(f"`actor_q` must be 'mean' or 'min', got {cfg.actor_q!r}")
        if not 0 <= cfg.critic_steps <= decoder.chunk_length:
            raise ValueError(f"`critic_steps` must be in [0, {decoder.chunk_length}] (0: whole chunk), "
                             f"got {cfg.critic_steps}")
        self.k = cfg.critic_steps or decoder.chunk_length  # leading chunk actions Q sees
        self.q = ChunkCritic(o, decoder.action_dim, self.k, cfg.hidden, cfg.critic_layers, action_features,
                             cfg.critics)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=cfg.critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)

    def decode(self, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        a = self.decoder(s, w)
        return a if self.action_bounds is None else torch.clamp(a, *self.action_bounds)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = torch.as_tensor(obs, dtype=torch.float32)[None]
        w = self.actor(s)
        return self.decode(s, w)[0].numpy(), w[0].numpy()

    def update_critic(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        with torch.no_grad():
            s2 = b["next_obs"]
            a2 = b["next_actions"] if self.cfg.critic_target == "data" else self.decode(s2, self.actor(s2))
            q_next = self.q_target(s2, a2).min(0).values
            # Chunk batches cut from step-level data carry their own gamma^H; one-step replay marks
            # its discounts NaN and takes the config's gamma per chunk.
            disc = b.get("discounts")
            gamma = disc if disc is not None and not torch.isnan(disc).any() else self.cfg.gamma
            y = b["rewards"] + self.cfg.reward_shift + gamma * (1.0 - b["dones"]) * q_next
        qs = self.q(b["obs"], b["actions"])
        loss = ((qs - y) ** 2).mean(1).sum()  # each member's own regression; logged as their sum
        self.q_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.q_opt.step()
        return {"losses/q": loss.item(), "values/q_data": qs[0].mean().item()}

    def update_actor(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        s = b["obs"]
        w = self.actor(s)
        qs = self.q(s, self.decode(s, w))
        q = qs.min(0).values if self.cfg.actor_q == "min" else qs.mean(0)
        loss = -q.mean()
        if self.cfg.normalize_q_loss:
            loss = loss / q.abs().mean().detach().clamp_min(1e-6)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        self.q_opt.zero_grad(set_to_none=True)  # the actor's pass left gradients on Q
        return {"losses/actor": loss.item(), "values/q_actor": q.mean().item(),
                "latent/norm": w.norm(dim=-1).mean().item()}

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        info = self.update_critic(b)
        info |= self.update_actor(b)
        soft_update(self.q_target, self.q, self.cfg.tau)
        return info


def train(cfg: LPSConfig, dataset: ReplayBuffer, decoder: nn.Module, progress: bool = True,
          logger: Logger | None = None,
          eval_fn: Callable[[int, LPSAgent], dict[str, float]] | None = None,
          action_features: nn.Module | None = None) -> tuple[LPSAgent, Logger]:
    """Train an LPS latent actor offline on `dataset` (normalised units) through `decoder`;
    `action_features` widens Q's input (task features of (s, a): lps_train.features)."""
    if getattr(decoder, "decoder_type", None) != "meanflow":
        # LPS needs dPhi/dw in one pass; a K-step decoder would work numerically but is not the method.
        raise ValueError(f"LPS needs a one-step decoder: `decoder_type` must be 'meanflow', "
                         f"got {getattr(decoder, 'decoder_type', None)!r}")
    if dataset.actions.shape[1:] != (decoder.chunk_length, decoder.action_dim):
        raise ValueError(f"dataset chunks must be {(decoder.chunk_length, decoder.action_dim)} like the decoder's, "
                         f"got {dataset.actions.shape[1:]}")
    if cfg.critic_target == "data" and dataset.next_actions is None:
        raise ValueError("`critic_target` 'data' needs the dataset's next actions (a task dataset with episode ids: "
                         "lps-train collect), and this dataset has none")
    rng = seed_everything(cfg.seed, cfg.torch_threads)
    logger = logger if logger is not None else Logger()
    agent = LPSAgent(cfg, decoder, action_features)
    bar = trange(cfg.steps, desc="lps", disable=not progress, mininterval=1.0)
    for step in bar:
        info = agent.update(dataset.sample(cfg.batch_size, rng))
        if (step + 1) % cfg.log_every == 0:
            logger.log(step + 1, **info)
            bar.set_postfix(q=f"{info['values/q_actor']:.3f}")
        if eval_fn is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            logger.log(step + 1, **eval_fn(step + 1, agent))
    return agent, logger


# ---------------------------------------------------------------------------------------------
# From a step-level dataset: the reference's joint update, or a decoder fitted first and frozen
# ---------------------------------------------------------------------------------------------
class JointLPSAgent(LPSAgent):
    """LPS as its authors train it: each step updates the critics (TD), the MeanFlow decoder (its BC
    loss on the batch's chunks) and the latent actor, on one batch. The actor's loss reaches only the
    actor: the gradients its pass leaves on the decoder and the critics are discarded."""

    def __init__(self, cfg: LPSConfig, decoder: nn.Module, decoder_cfg: Any,
                 action_bounds: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        super().__init__(cfg, decoder, action_bounds=action_bounds)
        self.decoder_cfg = decoder_cfg
        decoder.requires_grad_(True)
        self.decoder_opt = torch.optim.AdamW(decoder.parameters(), lr=decoder_cfg.lr,
                                             weight_decay=decoder_cfg.weight_decay)

    def update_decoder(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        from lps_train.meanflow import meanflow_loss

        loss, info = meanflow_loss(self.decoder.net, b["obs"], b["actions"].flatten(1), self.decoder_cfg)
        self.decoder_opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.decoder.parameters(), self.decoder_cfg.grad_clip)
        self.decoder_opt.step()
        return info

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        info = self.update_critic(b)
        info |= self.update_decoder(b)
        info |= self.update_actor(b)
        self.decoder_opt.zero_grad(set_to_none=True)
        soft_update(self.q_target, self.q, self.cfg.tau)
        return info


def train_from_chunks(cfg: LPSConfig, decoder_cfg: Any, data: Any, decoder_training: str = "joint",
                      decoder_steps: int = 0, progress: bool = True, logger: Logger | None = None,
                      eval_fn: Callable[[int, LPSAgent], dict[str, float]] | None = None,
                      decoder: nn.Module | None = None,
                      action_bounds: tuple[np.ndarray, np.ndarray] | None = None,
                      device: str = "cpu", checkpoint: str | Path | None = None,
                      checkpoint_every: int = 0) -> tuple[LPSAgent, Logger]:
    """LPS on chunk batches (`lps_train.offline.chunks.ChunkDataset`, normalised units): decoder and
    head from the data alone. `decoder_training` "joint" is the reference (decoder, critics and actor
    updated together for `cfg.steps`); "frozen" fits the decoder first for `decoder_steps` and trains
    critics and actor through it, frozen (one decoder for several heads or seeds: cheaper on CPUs);
    a frozen `decoder` given here is used as it is. `action_bounds` (low, high in normalised units)
    clamp the decoded actions the critics and the actor see. The networks train on `device` (a torch
    device name) and come back on the CPU.

    `checkpoint` is a file the run saves itself to every `checkpoint_every` updates, and once a frozen
    decoder is fitted, and continues from where it exists: decoder, actor, critics and their targets,
    optimisers, random states, the step and the logged curves. An interrupted run started again thus
    ends where an uninterrupted one would have (bit for bit on the same device), and a finished one
    started with more `cfg.steps` goes on. A checkpoint of other settings is refused; `steps`,
    `log_every`, `eval_every` and `torch_threads` may differ."""
    if decoder_training not in ("joint", "frozen"):
        raise ValueError(f"`decoder_training` must be 'joint' or 'frozen', got {decoder_training!r}")
    logger = logger if logger is not None else Logger()
    dev = torch.device(device)
    with dev:  # every network and every tensor made inside lives on `dev`
        agent = _build_and_train(cfg, decoder_cfg, data, decoder_training, decoder_steps, progress, logger, eval_fn,
                                 decoder, action_bounds, dev, Path(checkpoint) if checkpoint else None,
                                 checkpoint_every)
    for module in (agent.decoder, agent.actor, agent.q, agent.q_target):
        module.cpu()
    return agent, logger


def _build_and_train(cfg, decoder_cfg, data, decoder_training, decoder_steps, progress, logger, eval_fn, decoder,
                     action_bounds, dev, checkpoint, checkpoint_every) -> LPSAgent:
    from lps_train.meanflow import MeanFlowDecoder
    from lps_train.meanflow import train as train_meanflow

    t_start = time.perf_counter()
    if checkpoint_every < 0:
        raise ValueError(f"`checkpoint_every` must be >= 0 (0: only after the decoder), got {checkpoint_every}")
    if decoder is not None:
        decoder.to(dev)
        if decoder_training != "frozen":
            raise ValueError("a given decoder is used frozen: `decoder_training` must be 'frozen'")
        dims = (decoder.obs_dim, decoder.action_dim, decoder.chunk_length)
        if dims != (data.obs_dim, data.action_dim, data.horizon):
            raise ValueError(f"the decoder's (obs, action, chunk) dims {dims} differ from the data's "
                             f"{(data.obs_dim, data.action_dim, data.horizon)}")
    fingerprint = _fingerprint(cfg, decoder_cfg, data, decoder_training, decoder_steps, action_bounds,
                               given_decoder=decoder is not None)
    resume = _load_checkpoint(checkpoint, fingerprint, cfg.steps, dev) if checkpoint and checkpoint.exists() else None
    if resume is not None:
        decoder = resume["decoder"]
    elif decoder is None and decoder_training == "frozen":
        if decoder_steps < 1:
            raise ValueError(f"a frozen decoder needs `decoder_steps` >= 1, got {decoder_steps}")
        obs, chunks = data.observations_and_chunks()
        decoder = train_meanflow(dataclasses.replace(decoder_cfg, steps=decoder_steps), obs, chunks,
                                 progress=progress, logger=logger)
    elif decoder is None:
        seed_everything(decoder_cfg.seed)
        decoder = MeanFlowDecoder(data.obs_dim, data.action_dim, data.horizon, decoder_cfg)
    rng = seed_everything(cfg.seed, cfg.torch_threads)
    agent = (JointLPSAgent(cfg, decoder, decoder_cfg, action_bounds) if decoder_training == "joint"
             else LPSAgent(cfg, decoder, action_bounds=action_bounds))
    start, eval_s, prior_s = 0, 0.0, 0.0
    if resume is not None:
        start, prior_s = resume["step"], resume["train_s"]
        _restore(agent, rng, logger, resume, dev)
        print(f"{checkpoint}: continuing at update {start} of {cfg.steps}", flush=True)

    def save(step: int) -> None:
        if checkpoint is not None:
            train_s = prior_s + time.perf_counter() - t_start - eval_s
            _save_checkpoint(checkpoint, fingerprint, agent, step, rng, logger, train_s, dev)

    if resume is None and decoder_training == "frozen":
        save(0)  # the decoder's fit is never repeated
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"lps ({decoder_training} decoder)",
               disable=not progress, mininterval=1.0)
    for step in bar:
        info = agent.update({k: v.to(dev) for k, v in data.sample(cfg.batch_size, rng).items()})
        if (step + 1) % cfg.log_every == 0:
            logger.log(step + 1, **info)
            bar.set_postfix(q=f"{info['values/q_actor']:.3f}")
        if eval_fn is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            t_eval = time.perf_counter()
            logger.log(step + 1, **eval_fn(step + 1, agent))
            eval_s += time.perf_counter() - t_eval
        if checkpoint_every and ((step + 1) % checkpoint_every == 0 or step + 1 == cfg.steps):
            save(step + 1)
    freeze(agent.decoder)
    agent.eval_wall_s = eval_s  # the caller's training time excludes its evaluations
    agent.prior_train_s = prior_s  # and adds the training before the checkpoint it continued from
    return agent


# Settings that may change between an interrupted run and its continuation: they do not change what
# the updates compute.
_RESUMABLE = ("steps", "log_every", "eval_every", "torch_threads")


def _fingerprint(cfg, decoder_cfg, data, decoder_training, decoder_steps, action_bounds, given_decoder) -> dict:
    return {"lps": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _RESUMABLE},
            "decoder": dataclasses.asdict(decoder_cfg), "decoder_training": decoder_training,
            "decoder_steps": 0 if given_decoder else decoder_steps, "given_decoder": given_decoder,
            "data": [data.obs_dim, data.action_dim, data.horizon, len(data)],
            "action_bounds": None if action_bounds is None else [np.asarray(b).tolist() for b in action_bounds]}


def _optimizers(agent: LPSAgent) -> dict[str, torch.optim.Optimizer]:
    names = ("q_opt", "actor_opt", "decoder_opt")
    return {n: getattr(agent, n) for n in names if hasattr(agent, n)}


def _save_checkpoint(path: Path, fingerprint, agent, step, rng, logger, train_s, dev) -> None:
    state = {"fingerprint": fingerprint, "step": step, "train_s": train_s, "decoder": agent.decoder,
             "modules": {n: getattr(agent, n).state_dict() for n in ("actor", "q", "q_target")},
             "optimizers": {n: o.state_dict() for n, o in _optimizers(agent).items()},
             "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
             "device_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
             "history": {k: list(v) for k, v in logger.history.items()}}
    save_atomically(state, path)


def _load_checkpoint(path: Path, fingerprint: dict, steps: int, dev: torch.device) -> dict:
    state = torch.load(path, map_location=dev, weights_only=False)
    if state["fingerprint"] != fingerprint:
        keys = differing_settings(state["fingerprint"], fingerprint)
        raise ValueError(f"{path} is a checkpoint of other settings ({', '.join(keys)}): "
                         "remove it or train into another folder")
    if state["step"] > steps:
        raise ValueError(f"{path} is at update {state['step']}, beyond the {steps} asked for")
    return state


def _restore(agent: LPSAgent, rng: np.random.Generator, logger: Logger, state: dict, dev: torch.device) -> None:
    for n, sd in state["modules"].items():
        getattr(agent, n).load_state_dict(sd)
    for n, opt in _optimizers(agent).items():
        opt.load_state_dict(state["optimizers"][n])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"].cpu())
    if dev.type == "cuda" and state["device_rng"] is not None:
        torch.cuda.set_rng_state(state["device_rng"].cpu(), dev)
    logger.history.clear()
    logger.history.update({k: [tuple(x) for x in v] for k, v in state["history"].items()})
