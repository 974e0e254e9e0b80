"""Affine normalisation between raw units and the decoder's units."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np


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
