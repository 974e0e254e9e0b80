"""Action-chunk execution: chunk timing, interpolation to the command rate, temporal ensembling.

A chunk of T_a actions inferred at time t0 holds targets for t0 + (i + 1) / policy_rate,
i = 0..T_a-1; at t0 itself the chunk sits at its start point, which is the command being sent
when the chunk arrived (or the measured state for the first chunk), so a new chunk never makes
the command jump. Between targets, commands are linearly interpolated. After `execute_steps`
actions the next chunk is due. With temporal ensembling (ACT), every chunk still covering the
current time contributes, weighted exp(-decay * i) with i = 0 for the oldest chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class _Chunk:
    t0: float
    points: np.ndarray  # [T_a + 1, D]: start point, then the T_a targets


class ChunkExecutor:
    """Turns chunks at the policy rate into commands at the command rate.

    Args:
        chunk_length: T_a, actions per chunk.
        execute_steps: actions executed before the next chunk is due (1 <= k <= T_a).
        policy_rate_hz: rate of the actions inside a chunk.
        command_rate_hz: rate at which command() is called; sets the replan tolerance.
        ensemble_decay: None for no ensembling (a new chunk replaces the old one), else the
            decay m >= 0 of the exponential ensemble weights.
    """

    def __init__(self, chunk_length: int, execute_steps: int, policy_rate_hz: float,
                 command_rate_hz: float, ensemble_decay: float | None = None) -> None:
        if chunk_length < 1:
            raise ValueError(f"`chunk_length` must be >= 1, got {chunk_length}")
        if not 1 <= execute_steps <= chunk_length:
            raise ValueError(f"`execute_steps` ({execute_steps}) must be in [1, chunk_length "
                             f"({chunk_length})]")
        if not (math.isfinite(policy_rate_hz) and policy_rate_hz > 0):
            raise ValueError(f"`policy_rate_hz` must be > 0, got {policy_rate_hz!r}")
        if not (math.isfinite(command_rate_hz) and command_rate_hz > 0):
            raise ValueError(f"`command_rate_hz` must be > 0, got {command_rate_hz!r}")
        if ensemble_decay is not None and not (math.isfinite(ensemble_decay) and ensemble_decay >= 0):
            raise ValueError(f"`ensemble_decay` must be None or >= 0, got {ensemble_decay!r}")
        self.chunk_length = chunk_length
        self.execute_steps = execute_steps
        self.dt_policy = 1.0 / policy_rate_hz
        self.dt_command = 1.0 / command_rate_hz
        self.ensemble_decay = ensemble_decay
        self._chunks: list[_Chunk] = []
        self._last_command: np.ndarray | None = None
        self._index = 0

    def reset(self) -> None:
        """Drop all chunks: the next chunk starts from the start point given to add_chunk."""
        self._chunks.clear()
        self._last_command = None
        self._index = 0

    @property
    def active(self) -> bool:
        return bool(self._chunks)

    @property
    def chunk_index(self) -> int:
        """Index of the action being executed in the newest chunk at the last command() time."""
        return self._index

    @property
    def targets(self) -> np.ndarray | None:
        """Targets [T_a, D] of the newest chunk (a copy), or None before the first chunk."""
        return self._chunks[-1].points[1:].copy() if self._chunks else None

    def needs_replan(self, now_s: float) -> bool:
        """True when no chunk is running or the newest one has executed `execute_steps` actions.

        Half a command period of tolerance makes the replan fall on the cycle nearest to the
        due time instead of one cycle late.
        """
        if not self._chunks:
            return True
        due = self._chunks[-1].t0 + self.execute_steps * self.dt_policy
        return now_s >= due - 0.5 * self.dt_command

    def add_chunk(self, actions: np.ndarray, t0: float, start: np.ndarray) -> None:
        """Start a chunk of targets [T_a, D] at time t0.

        `start` (the measured state) is used only when no command has been produced yet;
        otherwise the chunk starts from the command last sent, so the output stays continuous.
        """
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] != self.chunk_length:
            raise ValueError(f"`actions` must have shape ({self.chunk_length}, D), got {actions.shape}")
        origin = self._last_command if self._last_command is not None else np.asarray(start, float)
        if origin.shape != (actions.shape[1],):
            raise ValueError(f"`start` must have {actions.shape[1]} values, got {origin.shape}")
        chunk = _Chunk(t0=float(t0), points=np.vstack([origin[None, :], actions]))
        if self.ensemble_decay is None:
            self._chunks = [chunk]
        else:
            end = self.chunk_length * self.dt_policy
            self._chunks = [c for c in self._chunks if t0 - c.t0 <= end] + [chunk]

    def _value(self, chunk: _Chunk, now_s: float) -> np.ndarray:
        s = (now_s - chunk.t0) / self.dt_policy
        if s <= 0.0:
            return chunk.points[0]
        if s >= self.chunk_length:
            return chunk.points[-1]
        k = int(s)
        frac = s - k
        return chunk.points[k] + frac * (chunk.points[k + 1] - chunk.points[k])

    def command(self, now_s: float) -> np.ndarray:
        """The command for time `now_s` (raises if no chunk was added)."""
        if not self._chunks:
            raise RuntimeError("ChunkExecutor.command() called before any chunk was added")
        newest = self._chunks[-1]
        self._index = min(max(int((now_s - newest.t0) / self.dt_policy), 0), self.chunk_length - 1)
        if self.ensemble_decay is None or len(self._chunks) == 1:
            cmd = np.array(self._value(newest, now_s))
        else:
            end = self.chunk_length * self.dt_policy
            live = [c for c in self._chunks if now_s - c.t0 <= end]
            weights = np.exp(-self.ensemble_decay * np.arange(len(live)))
            values = np.stack([self._value(c, now_s) for c in live])
            cmd = weights @ values / weights.sum()
        self._last_command = cmd
        return cmd.copy()
