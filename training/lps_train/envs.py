"""The chunk-env and decoder protocols every algorithm is written against, and episode roll-outs.

Conventions:
- An env executes one action chunk per `step`; observations and chunks are in the decoder's
  normalised units (wrap a raw env in `NormalizedEnv`).
- A decoder is a frozen `torch.nn.Module` with `forward(observation [B, obs_dim],
  latent [B, latent_dim]) -> actions [B, chunk_length, action_dim]` and the integer attributes
  `obs_dim`, `action_dim`, `chunk_length`, `latent_dim`; heads treat it as a black box except
  LPS, which needs its gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from lps_train.normalization import Normalization


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
