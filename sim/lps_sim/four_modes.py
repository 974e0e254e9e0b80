"""The four-mode toy of the LP-DS paper: a 2-D point mass and four goals at distance 1.

Numpy only (no MuJoCo, no torch). One `step` executes an action chunk of `chunk_length`
2-D velocity commands (or its first `execute_steps`), so it speaks the same chunk protocol as
the manipulation tasks and the training code can treat both alike.

Variants (`make(variant)`):
- ``symmetric``: start within +-0.05 of the origin, four equal payoffs. A plain version of the
  paper's toy; measured elsewhere, it does not reward concentrating on one goal, so collapse
  can only appear as an artefact of the learner.
- ``unequal``: a fixed start at the origin and unequal payoffs (1.0, 0.9, 0.8, 0.7): the optimum
  is a single goal, so a steered policy *can* collapse and the check can show how far it does.
- ``nearer``: the start shifted towards goal 0 and a per-step time penalty, making goal 0
  the best by being nearer rather than by paying more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

GOAL_ANGLES = (0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi)


@dataclass(frozen=True)
class FourModesConfig:
    goal_rewards: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    """payoff on reaching each goal (east, north, west, south)"""
    goal_distance: float = 1.0
    """distance of every goal from the origin"""
    goal_radius: float = 0.1
    """a goal is reached when the mass comes within this distance of it"""
    start_offset: tuple[float, float] = (0.0, 0.0)
    """centre of the start distribution"""
    start_noise: float = 0.05
    """the start is uniform within +-start_noise of start_offset on each axis"""
    step_penalty: float = 0.0
    """reward subtracted on every env step (one chunk): a time cost"""
    max_step: float = 0.05
    """displacement per action for a command of norm 1 (commands are clipped to norm 1)"""
    chunk_length: int = 8
    """T_a: actions per chunk"""
    execute_steps: int = 8
    """how many actions of each chunk are executed (the rest are dropped)"""
    max_env_steps: int = 16
    """episode time limit, in env steps (chunks)"""
    arena: float = 1.5
    """the mass is kept inside [-arena, arena]^2"""
    discount: float = 0.99
    """per env step discount the algorithms should use"""

    def __post_init__(self) -> None:
        if len(self.goal_rewards) != 4:
            raise ValueError(f"`goal_rewards` must have 4 entries, got {len(self.goal_rewards)}")
        if not 1 <= self.execute_steps <= self.chunk_length:
            raise ValueError(
                f"`execute_steps` must be in [1, chunk_length={self.chunk_length}], got {self.execute_steps}"
            )


VARIANTS: dict[str, FourModesConfig] = {
    "symmetric": FourModesConfig(),
    "unequal": FourModesConfig(goal_rewards=(1.0, 0.9, 0.8, 0.7), start_noise=0.0),
    "nearer": FourModesConfig(start_offset=(0.25, 0.0), step_penalty=0.05),
}


def make(variant: str = "symmetric", **overrides: Any) -> FourModes:
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {sorted(VARIANTS)}, got {variant!r}")
    return FourModes(replace(VARIANTS[variant], **overrides))


class FourModes:
    """Point mass; observation = its 2-D position; action chunk [chunk_length, 2]."""

    obs_dim = 2
    action_dim = 2

    def __init__(self, cfg: FourModesConfig | None = None) -> None:
        self.cfg = cfg or FourModesConfig()
        self.chunk_length = self.cfg.chunk_length
        self.goals = self.cfg.goal_distance * np.array([[math.cos(a), math.sin(a)] for a in GOAL_ANGLES])
        self._rewards = np.asarray(self.cfg.goal_rewards, dtype=np.float64)
        self._rng = np.random.default_rng(0)
        self.pos = np.zeros(2)
        self.t = 0
        self.trajectory: list[np.ndarray] = []

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        c = self.cfg
        self.pos = np.asarray(c.start_offset, dtype=np.float64) + self._rng.uniform(-c.start_noise, c.start_noise, 2) \
            if c.start_noise > 0 else np.asarray(c.start_offset, dtype=np.float64).copy()
        self.t = 0
        self.trajectory = [self.pos.copy()]
        return self.pos.astype(np.float32)

    def step(self, action_chunk: np.ndarray) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
        c = self.cfg
        chunk = np.asarray(action_chunk, dtype=np.float64)
        if chunk.shape != (c.chunk_length, 2):
            raise ValueError(f"action chunk must have shape ({c.chunk_length}, 2), got {chunk.shape}")
        if not np.all(np.isfinite(chunk)):
            raise ValueError("action chunk contains non-finite values")
        goal, travelled = -1, 0.0
        for a in chunk[: c.execute_steps]:
            n = np.linalg.norm(a)
            a = a / n if n > 1.0 else a
            new = np.clip(self.pos + c.max_step * a, -c.arena, c.arena)
            travelled += float(np.linalg.norm(new - self.pos))
            self.pos = new
            self.trajectory.append(self.pos.copy())
            d = np.linalg.norm(self.goals - self.pos, axis=1)
            if d.min() <= c.goal_radius:
                goal = int(d.argmin())
                break
        self.t += 1
        reward = -c.step_penalty + (self._rewards[goal] if goal >= 0 else 0.0)
        terminated = goal >= 0
        truncated = not terminated and self.t >= c.max_env_steps
        info = {"goal": goal, "terminated": terminated, "truncated": truncated, "steps": self.t,
                "travelled": travelled}
        return self.pos.astype(np.float32), float(reward), terminated or truncated, info


# ---------------------------------------------------------------------------------------------
# Scripted demonstrator: multimodal (picks a goal) and deliberately not straight (curved paths)
# ---------------------------------------------------------------------------------------------
def expert_chunk(env: FourModes, goal: int, curve: float, rng: np.random.Generator, speed: float = 0.8,
                 noise: float = 0.1) -> np.ndarray:
    """Plan a chunk towards `goal` by simulating the mass forward; `curve` bends the path (rad)."""
    c = env.cfg
    pos = env.pos.copy()
    chunk = np.zeros((c.chunk_length, 2))
    for k in range(c.chunk_length):
        to_goal = env.goals[goal] - pos
        dist = np.linalg.norm(to_goal)
        # Bend less as the goal nears so that the demonstrator still arrives.
        ang = curve * min(1.0, dist)
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        direction = rot @ (to_goal / max(dist, 1e-9))
        a = min(speed, dist / c.max_step) * direction
        a = a + noise * rng.standard_normal(2)
        chunk[k] = np.clip(a, -1.0, 1.0)
        pos = pos + c.max_step * chunk[k]
    return chunk


def collect_demos(env: FourModes, episodes: int, seed: int, goal_probs: np.ndarray | None = None,
                  max_curve: float = 0.6) -> dict[str, np.ndarray]:
    """Demonstrations as chunk-level transitions (obs, actions, rewards, next_obs, dones, goals)."""
    rng = np.random.default_rng(seed)
    probs = np.full(4, 0.25) if goal_probs is None else np.asarray(goal_probs, dtype=np.float64)
    out: dict[str, list] = {k: [] for k in ("obs", "actions", "rewards", "next_obs", "dones", "goals")}
    for ep in range(episodes):
        obs = env.reset(seed * 100_003 + ep)
        goal = int(rng.choice(4, p=probs))
        curve = rng.uniform(-max_curve, max_curve)
        done = False
        while not done:
            chunk = expert_chunk(env, goal, curve, rng)
            nxt, r, done, info = env.step(chunk)
            out["obs"].append(obs)
            out["actions"].append(chunk.astype(np.float32))
            out["rewards"].append(r)
            out["next_obs"].append(nxt)
            out["dones"].append(float(info["terminated"]))
            out["goals"].append(goal)
            obs = nxt
    return {k: np.asarray(v, dtype=np.float32 if k != "goals" else np.int64) for k, v in out.items()}


def goal_shares(goals: np.ndarray | list[int]) -> np.ndarray:
    """Share of episodes ending at each goal (episodes that reached none count in no share)."""
    g = np.asarray(goals)
    return np.array([(g == i).mean() for i in range(4)]) if len(g) else np.zeros(4)
