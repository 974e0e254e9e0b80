"""Transition storage: the replay buffer, n-step transitions, next actions read off a dataset."""

from __future__ import annotations

import math

import numpy as np
import torch


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
