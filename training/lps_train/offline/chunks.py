"""Action-chunk batches cut from step-level trajectories at load time.

A chunk starts at any step t whose H actions a_t..a_{t+H-1} all lie in its episode (the reference
LPS and Q-chunking samplers do the same: no padded chunks). For such a start:

    actions     a_t .. a_{t+H-1}                         [H, A]
    reward      sum_{i<H} gamma^i r_{t+i}                 the chunk's discounted reward
    mask        prod_{i<H} (1 - terminal_{t+i})           0: the TD target does not bootstrap
    next_obs    o_{t+H} (the episode's final observation when t+H is its end)
    discount    gamma^H                                   what the bootstrap is multiplied by
    next_actions the chunk starting at t+H                 (SARSA targets, `--lps.critic-target data`)

Where fewer than H steps follow t+H in the episode, the episode's last whole chunk stands in for
the next one: a terminal there does not bootstrap, and after a time-out it is the data's action
nearest to o_{t+H}.

Actions of mode `joint_position_delta` are stored per step, relative to that step's measured arm
joint positions (observation source `arm_joint_positions`); the runtime reads every delta of a chunk
relative to the observation the chunk was inferred from, so a chunk re-references them:
a_{t+i} + q_{t+i} - q_t.
"""

from __future__ import annotations

import numpy as np
import torch

from lps_train.normalization import Normalization
from lps_train.offline.format import DatasetError, Entry, Trajectories


class ChunkDataset:
    """Chunk batches of `data` in normalised units (`norm`: raw -> model units)."""

    def __init__(self, data: Trajectories, horizon: int, gamma: float, norm: Normalization | None = None) -> None:
        if horizon < 1:
            raise DatasetError(f"chunk length must be >= 1, got {horizon}")
        if not 0.0 < gamma <= 1.0:
            raise DatasetError(f"`gamma` must be in (0, 1], got {gamma}")
        self.horizon, self.gamma = horizon, gamma
        starts, lengths = data.episode_starts, data.episode_lengths
        self.starts = np.concatenate([s + np.arange(max(0, n - horizon + 1)) for s, n in zip(starts, lengths, strict=True)]
                                     ).astype(np.int64)
        # Per step: where its episode's last whole chunk starts (the stand-in for a missing next chunk).
        self.last_start = np.repeat(starts + lengths - horizon, lengths).astype(np.int64)
        if len(self.starts) == 0:
            raise DatasetError(f"no episode has {horizon} steps: no chunk of length {horizon} can be cut "
                               f"(longest episode: {int(lengths.max())} steps)")
        self.norm = norm or Normalization.identity(data.observations.shape[1], data.actions.shape[1])
        self.obs = self.norm.normalize_obs(data.observations)
        self.next_obs_all = self.norm.normalize_obs(data.next_observations())
        self.raw_actions = data.actions
        self.rereference = relative_action_slices(data.observation, data.action)
        self.raw_q = data.observations
        self.rewards = data.rewards.astype(np.float64)
        self.not_terminal = (~data.terminals).astype(np.float64)
        self.obs_dim, self.action_dim = self.obs.shape[1], self.raw_actions.shape[1]

    def __len__(self) -> int:
        return len(self.starts)

    def chunks(self, starts: np.ndarray) -> np.ndarray:
        """[B, H, A] normalised action chunks starting at these step indices."""
        seq = starts[:, None] + np.arange(self.horizon)[None, :]
        raw = self.raw_actions[seq].astype(np.float64)
        for act_sl, obs_sl in self.rereference:
            q = self.raw_q[:, obs_sl]
            raw[:, :, act_sl] += q[seq] - q[starts][:, None, :]
        return self.norm.normalize_actions(raw)

    def batch(self, starts: np.ndarray) -> dict[str, np.ndarray]:
        """The chunks starting at these global step indices (each must be a valid start)."""
        h = self.horizon
        seq = starts[:, None] + np.arange(h)[None, :]
        powers = self.gamma ** np.arange(h)
        return {
            "obs": self.obs[starts],
            "actions": self.chunks(starts),
            "rewards": (self.rewards[seq] * powers).sum(1).astype(np.float32),
            "masks": self.not_terminal[seq].prod(1).astype(np.float32),
            # o_{t+H} is the next observation of step t+H-1: the final one where the episode ends.
            "next_obs": self.next_obs_all[starts + h - 1],
            "discounts": np.full(len(starts), self.gamma ** h, np.float32),
            "next_actions": self.chunks(np.minimum(starts + h, self.last_start[starts])),
        }

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A uniform batch over chunk starts, as torch tensors with the keys the LPS agent reads
        (`dones` = 1 - mask)."""
        b = self.batch(self.starts[rng.integers(0, len(self.starts), batch_size)])
        out = {k: torch.from_numpy(v) for k, v in b.items()}
        out["dones"] = 1.0 - out.pop("masks")
        return out

    def observations_and_chunks(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (o_t, a_t..a_{t+H-1}) pair: what a decoder is fitted on."""
        return self.obs[self.starts], self.chunks(self.starts)


def relative_action_slices(observation: tuple[Entry, ...], action: tuple[Entry, ...]) -> list[tuple[slice, slice]]:
    """(action slice, observation slice) of each `joint_position_delta` action entry and the
    `arm_joint_positions` observation it is relative to."""
    obs_at, i = {}, 0
    for e in observation:
        obs_at[e.source] = slice(i, i + e.size)
        i += e.size
    out, i = [], 0
    for e in action:
        if e.mode == "joint_position_delta":
            q = obs_at.get("arm_joint_positions")
            if q is None or q.stop - q.start != e.size:
                raise DatasetError(f"action {e.name!r} is a joint_position_delta of {e.size} joints, but the observation "
                                   "has no arm_joint_positions of that size to re-reference its chunks to")
            out.append((slice(i, i + e.size), q))
        i += e.size
    return out
