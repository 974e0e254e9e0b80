"""Statistics of evaluation runs: success intervals, smoothness, latency. numpy only, no ROS."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; sane at 0 and n successes, unlike Wald's."""
    if n <= 0:
        raise ValueError(f"`n` must be > 0, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"`successes` must be in [0, n={n}], got {successes}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # At 0 or n successes the bound is exactly 0 or 1; rounding would leave it a hair inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def mean_squared_jerk(commands: np.ndarray, dt: float) -> float:
    """Mean over time of ||d^3 q / dt^3||^2 (rad^2/s^6) of a [T, joints] command sequence.

    Third finite differences of the commands at the command period `dt` (exact for cubics). NaN
    with fewer than four commands: no jerk can be measured.
    """
    q = np.asarray(commands, dtype=np.float64)
    if q.ndim != 2:
        raise ValueError(f"`commands` must be [T, joints], got shape {q.shape}")
    if not dt > 0.0:
        raise ValueError(f"`dt` must be > 0, got {dt}")
    if q.shape[0] < 4:
        return math.nan
    jerk = np.diff(q, n=3, axis=0) / dt**3
    return float(np.mean(np.sum(jerk * jerk, axis=1)))


def percentile(values: Sequence[float], q: float) -> float:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    return float(np.percentile(v, q)) if v.size else math.nan


def finite_mean(values: Sequence[float]) -> float:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    return float(v.mean()) if v.size else math.nan


@dataclass
class EpisodeRecord:
    """One evaluation episode, as measured over ROS."""

    head: str                  # label of the head in the evaluation config ("base", "lpds", ...)
    head_id: str               # the policy node's "name@sha" of the head ("none" for the base policy)
    profile: str
    seed: int
    episode_id: int
    success: bool
    termination: str           # success | timeout | failure | fault (sim), or timeout (evaluator limit)
    steps: int                 # control steps until the end
    sim_time: float            # seconds until the end
    time_to_success: float     # seconds; NaN unless successful
    mean_sq_jerk: float        # of the commanded joint positions (rad^2/s^6)
    inference_ms: list[float] = field(default_factory=list)    # one per inferred chunk
    delta_sq_norm: list[float] = field(default_factory=list)   # lpds: one per inferred chunk
    holds: int = 0             # cycles the safety filter held the arm
    tcp: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # measured TCP path (m)
    start_q: list[float] = field(default_factory=list)  # arm joints after reset (rad)
    wall_s: float = 0.0


@dataclass
class RunSummary:
    """All episodes of one (head, profile) pair."""

    head: str
    profile: str
    episodes: int
    successes: int
    rate: float
    wilson_low: float
    wilson_high: float
    mean_steps: float
    mean_time_to_success: float
    mean_sq_jerk: float
    inference_ms_p50: float
    inference_ms_p99: float
    delta_sq_norm_mean: float
    delta_sq_norm_p95: float
    holds: int


def summarise(head: str, profile: str, episodes: Sequence[EpisodeRecord]) -> RunSummary:
    n = len(episodes)
    if n == 0:
        raise ValueError(f"no episodes for head {head!r}, profile {profile!r}")
    ok = sum(e.success for e in episodes)
    lo, hi = wilson_interval(ok, n)
    latency = [x for e in episodes for x in e.inference_ms]
    delta = [x for e in episodes for x in e.delta_sq_norm]
    return RunSummary(
        head=head, profile=profile, episodes=n, successes=ok, rate=ok / n, wilson_low=lo, wilson_high=hi,
        mean_steps=float(np.mean([e.steps for e in episodes])),
        mean_time_to_success=finite_mean([e.time_to_success for e in episodes]),
        mean_sq_jerk=finite_mean([e.mean_sq_jerk for e in episodes]),
        inference_ms_p50=percentile(latency, 50), inference_ms_p99=percentile(latency, 99),
        delta_sq_norm_mean=finite_mean(delta), delta_sq_norm_p95=percentile(delta, 95),
        holds=sum(e.holds for e in episodes))
