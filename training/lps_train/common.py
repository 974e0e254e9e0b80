"""Shared pieces of the training algorithms: env protocol, replay buffer, networks, logging.

Everything here is algorithm-agnostic. The algorithms themselves (`meanflow.py`, `flow.py`,
`lps.py`, `lpds.py`, `dsrl.py`) each read top to bottom in their own module.

Conventions used by every algorithm:
- An env executes one action chunk per `step`; observations and chunks are in the decoder's
  normalised units (wrap a raw env in `NormalizedEnv`).
- A decoder is a frozen `torch.nn.Module` with `forward(observation [B, obs_dim],
  latent [B, latent_dim]) -> actions [B, chunk_length, action_dim]` and the integer attributes
  `obs_dim`, `action_dim`, `chunk_length`, `latent_dim`; heads treat it as a black box except
  LPS, which needs its gradient.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn


# ---------------------------------------------------------------------------------------------
# Env and decoder protocols
# ---------------------------------------------------------------------------------------------
@runtime_checkable
class ChunkEnv(Protocol):
    """An environment where one `step` executes one action chunk."""

    obs_dim: int
    action_dim: int
    chunk_length: int

    def reset(self, seed: int | None = None) -> np.ndarray: ...

    def step(self, action_chunk: np.ndarray) -> tuple[np.ndarray, float, bool, dict[str, Any]]: ...


@runtime_checkable
class Decoder(Protocol):
    obs_dim: int
    action_dim: int
    chunk_length: int
    latent_dim: int

    def __call__(self, observation: torch.Tensor, latent: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Normalization:
    """Affine statistics mapping raw units to the decoder's normalised units: (x - mean) / std."""

    obs_mean: np.ndarray
    obs_std: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray

    @classmethod
    def identity(cls, obs_dim: int, action_dim: int) -> Normalization:
        return cls(np.zeros(obs_dim), np.ones(obs_dim), np.zeros(action_dim), np.ones(action_dim))

    @classmethod
    def fit(cls, observations: np.ndarray, actions: np.ndarray, min_std: float = 1e-3) -> Normalization:
        """Statistics of a dataset; `actions` may be [N, action_dim] or [N, T_a, action_dim]."""
        acts = actions.reshape(-1, actions.shape[-1])
        return cls(
            observations.mean(0),
            np.maximum(observations.std(0), min_std),
            acts.mean(0),
            np.maximum(acts.std(0), min_std),
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {k: np.asarray(v, dtype=np.float64).tolist() for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Iterable[float]]) -> Normalization:
        return cls(**{k: np.asarray(d[k], dtype=np.float64) for k in ("obs_mean", "obs_std", "act_mean", "act_std")})

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        return ((obs - self.obs_mean) / self.obs_std).astype(np.float32)

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        return ((actions - self.act_mean) / self.act_std).astype(np.float32)

    def unnormalize_actions(self, actions: np.ndarray) -> np.ndarray:
        return actions * self.act_std + self.act_mean


class NormalizedEnv:
    """Presents a raw `ChunkEnv` in the decoder's normalised observation and action units."""

    def __init__(self, env: ChunkEnv, norm: Normalization) -> None:
        self.env = env
        self.norm = norm
        self.obs_dim, self.action_dim, self.chunk_length = env.obs_dim, env.action_dim, env.chunk_length

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self.norm.normalize_obs(self.env.reset(seed))

    def step(self, action_chunk: np.ndarray) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
        obs, reward, done, info = self.env.step(self.norm.unnormalize_actions(action_chunk))
        return self.norm.normalize_obs(obs), reward, done, info


def check_decoder_matches_env(decoder: Decoder, env: ChunkEnv) -> None:
    """Refuse a decoder whose shapes differ from the env's, naming the field."""
    for field in ("obs_dim", "action_dim", "chunk_length"):
        if getattr(decoder, field) != getattr(env, field):
            raise ValueError(
                f"decoder `{field}` must equal the env's ({getattr(env, field)}), got {getattr(decoder, field)}"
            )


# ---------------------------------------------------------------------------------------------
# Seeding, networks, small tensor helpers
# ---------------------------------------------------------------------------------------------
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
                 features: nn.Module | None = None, n: int = 2) -> None:
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
        self.heads = nn.ModuleList(mlp(obs_dim + steps * action_dim + extra, 1, hidden, layers, layer_norm=True)
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


def sample_sphere(n: int, d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return project_to_sphere(torch.randn(n, d, generator=generator))


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
class ReplayBuffer:
    """Transitions of chunk-level steps: (s, a_chunk, r, s', done) plus the latent used."""

    def __init__(self, obs_dim: int, chunk_length: int, action_dim: int, latent_dim: int, capacity: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros((capacity, chunk_length, action_dim), np.float32)
        self.latents = np.zeros((capacity, latent_dim), np.float32)
        self.rewards = np.zeros(capacity, np.float32)
        self.dones = np.zeros(capacity, np.float32)
        # gamma^k of a k-step transition (NStepWriter); NaN for plain one-step transitions, whose
        # learners apply their own gamma, so that mixing the two conventions cannot pass silently.
        self.discounts = np.full(capacity, np.nan, np.float32)
        # The behaviour's action at s' (offline data only, for a SARSA-style critic target); None
        # where the data cannot say, e.g. online replay.
        self.next_actions: np.ndarray | None = None
        self.size = 0
        self._next = 0

    def add(self, obs: np.ndarray, action: np.ndarray, latent: np.ndarray, reward: float,
            next_obs: np.ndarray, done: bool, discount: float = math.nan) -> None:
        i = self._next
        self.obs[i], self.actions[i], self.latents[i] = obs, action, latent
        self.rewards[i], self.next_obs[i], self.dones[i] = reward, next_obs, float(done)
        self.discounts[i] = discount
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    @classmethod
    def from_arrays(cls, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
                    dones: np.ndarray, latent_dim: int | None = None,
                    next_actions: np.ndarray | None = None) -> ReplayBuffer:
        """An offline dataset as a full buffer (latents zero: offline data has none)."""
        n, t, a = actions.shape
        buf = cls(obs.shape[1], t, a, latent_dim or t * a, n)
        buf.obs[:], buf.actions[:], buf.rewards[:] = obs, actions, rewards
        buf.next_obs[:], buf.dones[:] = next_obs, dones
        if next_actions is not None:
            if next_actions.shape != actions.shape:
                raise ValueError(f"`next_actions` must be shaped like `actions` {actions.shape}, "
                                 f"got {next_actions.shape}")
            buf.next_actions = np.asarray(next_actions, np.float32)
        buf.size = n
        return buf

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, batch_size)
        batch = {
            "obs": torch.from_numpy(self.obs[idx]),
            "actions": torch.from_numpy(self.actions[idx]),
            "latents": torch.from_numpy(self.latents[idx]),
            "rewards": torch.from_numpy(self.rewards[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "dones": torch.from_numpy(self.dones[idx]),
            "discounts": torch.from_numpy(self.discounts[idx]),
        }
        if self.next_actions is not None:
            batch["next_actions"] = torch.from_numpy(self.next_actions[idx])
        return batch


def next_actions_within_episodes(observations: np.ndarray, actions: np.ndarray, next_observations: np.ndarray,
                                 episode_ids: np.ndarray) -> np.ndarray:
    """The action taken at each row's next state, read off the dataset itself.

    Rows may lie one env step apart (rollouts) or one policy step apart with s' `execute_steps`
    rows on (demonstrations: overlapping chunks); the stride is the one under which every
    in-episode s' is the observation of that later row, and a dataset with no such stride is
    refused. A row whose s' ends the episode has no next row: its own action stands in (a terminal
    row does not bootstrap; for a time-out it is the best the data offers).
    """
    n = len(actions)
    for stride in range(1, actions.shape[1] + 1):
        i = np.arange(n - stride)
        inside = i[episode_ids[i + stride] == episode_ids[i]]
        if inside.size and np.array_equal(observations[inside + stride], next_observations[inside]):
            nxt = actions.copy()
            nxt[inside] = actions[inside + stride]
            return nxt
    raise ValueError("no row stride up to the chunk length makes `next_observations` the observations of later rows "
                     "of the same episode: the dataset's next actions cannot be read off it")


class NStepWriter:
    """Turns one episode's env steps into n-step transitions for a ReplayBuffer.

    Each stored transition starts at an env step t and carries R = sum_{i<k} gamma^i r_{t+i},
    the observation k steps later and discount gamma^k, with k = n, or fewer when the episode
    ends first (then `done` is the episode's termination flag: a time-out still bootstraps).
    n = 1 gives the ordinary one-step transitions with discount gamma.
    """

    def __init__(self, buffer: ReplayBuffer, n: int, gamma: float) -> None:
        if n < 1:
            raise ValueError(f"`n_step` must be >= 1, got {n}")
        self.buffer, self.n, self.gamma = buffer, n, gamma
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []

    def add(self, obs: np.ndarray, action: np.ndarray, latent: np.ndarray, reward: float,
            next_obs: np.ndarray, terminated: bool, episode_over: bool) -> None:
        """Record one env step; `episode_over` is True on the last step (terminated or timed out)."""
        self._pending.append((obs, action, latent, float(reward)))
        if episode_over:
            while self._pending:
                self._emit(next_obs, terminated)
        elif len(self._pending) == self.n:
            self._emit(next_obs, False)

    def _emit(self, next_obs: np.ndarray, terminated: bool) -> None:
        obs, action, latent, _ = self._pending[0]
        ret = sum(self.gamma ** i * r for i, (*_, r) in enumerate(self._pending))
        self.buffer.add(obs, action, latent, ret, next_obs, terminated,
                        discount=self.gamma ** len(self._pending))
        self._pending.pop(0)


# ---------------------------------------------------------------------------------------------
# Evaluation and metrics
# ---------------------------------------------------------------------------------------------
@dataclass
class EpisodeStats:
    returns: np.ndarray
    lengths: np.ndarray
    infos: list[dict[str, Any]]

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())


def run_episodes(env: ChunkEnv, act: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int,
                 max_steps: int = 1000) -> EpisodeStats:
    """Roll out `act(obs) -> chunk` for whole episodes; the final info of each is kept."""
    returns, lengths, infos = [], [], []
    for ep in range(episodes):
        obs, ret, info, steps = env.reset(seed + ep), 0.0, {}, 0
        while steps < max_steps:
            obs, r, done, info = env.step(act(obs))
            ret, steps = ret + r, steps + 1
            if done:
                break
        returns.append(ret)
        lengths.append(steps)
        infos.append(info)
    return EpisodeStats(np.asarray(returns), np.asarray(lengths), infos)


def knn_entropy(x: np.ndarray, k: int = 5) -> float:
    """Kozachenko-Leonenko k-nearest-neighbour differential entropy estimate, in nats.

    H ~ psi(n) - psi(k) + log(V_d) + d * mean(log(2 * r_k)), where r_k is the distance to the
    k-th neighbour and V_d the volume of the d-dim unit ball (of diameter 1 in the 2 * r_k
    form). Higher means the samples spread over more of the space (more modes, more noise).
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n, d = x.shape
    if n <= k:
        raise ValueError(f"knn_entropy needs more than k={k} samples, got {n}")
    sq = (x * x).sum(1)
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    np.fill_diagonal(dist2, np.inf)
    r_k = np.sqrt(np.partition(dist2, k - 1, axis=1)[:, k - 1])
    r_k = np.maximum(r_k, 1e-12)
    log_vd = (d / 2) * math.log(math.pi) - math.lgamma(d / 2 + 1) - d * math.log(2)
    return float(_digamma_int(n) - _digamma_int(k) + log_vd + d * np.mean(np.log(2 * r_k)))


def _digamma_int(n: int) -> float:
    """psi(n) for a positive integer: -gamma + sum_{i<n} 1/i (no scipy in the environment)."""
    return -0.5772156649015329 + sum(1.0 / i for i in range(1, n))


# ---------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------
class Logger:
    """Namespaced scalars (`losses/q`, `charts/return`, `lagrange/alpha`) keyed by global step."""

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    def log(self, step: int, **scalars: float) -> None:
        for k, v in scalars.items():
            self.history[k.replace("__", "/")].append((step, float(v)))

    def last(self, key: str, default: float = float("nan")) -> float:
        h = self.history.get(key)
        return h[-1][1] if h else default

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        h = self.history.get(key, [])
        return np.asarray([s for s, _ in h]), np.asarray([v for _, v in h])

    def save_csv(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["key", "step", "value"])
            for k, h in sorted(self.history.items()):
                w.writerows((k, s, v) for s, v in h)

    def plot(self, path: str | Path, keys: list[str] | None = None, title: str = "") -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = [k for k in (keys or sorted(self.history)) if self.history.get(k)]
        if not keys:
            return
        cols = min(3, len(keys))
        rows = math.ceil(len(keys) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
        for ax, k in zip(axes.flat, keys, strict=False):
            s, v = self.series(k)
            ax.plot(s, v, lw=1)
            ax.set_title(k, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)


def config_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg) if is_dataclass(cfg) else dict(cfg)


def save_json(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def load_decoder(path: str | Path) -> tuple[torch.nn.Module, Normalization, dict[str, Any]]:
    """A decoder checkpoint written by `meanflow.save_decoder` or `flow.save_decoder`, frozen."""
    try:
        return load_decoder_checkpoint(torch.load(path, map_location="cpu", weights_only=False))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def load_decoder_checkpoint(ckpt: dict[str, Any]) -> tuple[torch.nn.Module, Normalization, dict[str, Any]]:
    """`load_decoder` of a checkpoint already in memory."""
    kind = ckpt.get("decoder_type")
    if kind == "meanflow":
        from lps_train.meanflow import build_from_checkpoint
    elif kind == "flow":
        from lps_train.flow import build_from_checkpoint
    else:
        raise ValueError(f"`decoder_type` must be 'meanflow' or 'flow', got {kind!r}")
    return freeze(build_from_checkpoint(ckpt)), Normalization.from_dict(ckpt["normalization"]), ckpt
