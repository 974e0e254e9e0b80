"""Statistics of evaluation runs: success intervals, smoothness, latency. numpy only, no ROS."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

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


def mcnemar_p(only_a: int, only_b: int, mid: bool = True) -> float:
    """Two-sided McNemar test of paired binary outcomes, from the discordant pairs alone.

    Under "no difference" each discordant pair favours either side with probability 1/2, so the
    count favouring one side is Binomial(only_a + only_b, 1/2). The exact test doubles the smaller
    tail; it never exceeds its nominal size but, with the few discordant pairs of an evaluation,
    falls far below it and loses power. The mid-p version counts the observed count's own
    probability half, which keeps the size close to nominal (Fagerland, Lydersen & Laake 2013,
    "The McNemar test for binary matched-pairs data: mid-p and asymptotic are better than exact
    conditional"). Capped at 1.
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_a} and {only_b}")
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    below = sum(math.comb(n, i) for i in range(k)) / 2.0**n
    at = math.comb(n, k) / 2.0**n
    return min(1.0, 2.0 * (below + (0.5 if mid else 1.0) * at))


def phi_coefficient(both: int, only_a: int, only_b: int, neither: int) -> float:
    """Correlation of two heads' outcomes over seeds (0 when a margin is empty): how much pairing helps."""
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    return (both * neither - only_a * only_b) / math.sqrt(margins) if margins > 0 else 0.0


def paired_difference_interval(both: int, only_a: int, only_b: int, neither: int,
                               z: float = Z_95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (1998, method 10) of p_a - p_b from paired outcomes.

    Each proportion gets its Wilson interval; the two are combined with the phi correlation of
    the 2x2 table, so outcomes that agree on most seeds (an easy scene is easy for both heads)
    narrow the interval the way pairing should.
    """
    counts = (both, only_a, only_b, neither)
    if min(counts) < 0:
        raise ValueError(f"paired counts must be >= 0, got {counts}")
    n = sum(counts)
    if n == 0:
        raise ValueError("no pairs: the interval needs at least one")
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    l_a, u_a = wilson_interval(both + only_a, n, z)
    l_b, u_b = wilson_interval(both + only_b, n, z)
    phi = phi_coefficient(*counts)
    diff = p_a - p_b
    lower = math.sqrt(max(0.0, (p_a - l_a) ** 2 - 2 * phi * (p_a - l_a) * (u_b - p_b) + (u_b - p_b) ** 2))
    upper = math.sqrt(max(0.0, (u_a - p_a) ** 2 - 2 * phi * (u_a - p_a) * (p_b - l_b) + (p_b - l_b) ** 2))
    return max(-1.0, diff - lower), min(1.0, diff + upper)


def excludes_zero(low: float, high: float) -> bool:
    return low > 0.0 or high < 0.0


def separates(low: float, high: float, p_value: float, alpha: float = 0.05) -> bool:
    """Both criteria agree that two heads differ: the interval excludes 0 and the test rejects.

    Newcombe's interval alone calls equal heads different in about 7% of 24-pair evaluations and
    more with fewer pairs (simulated: `lps_steering.evaluation.power`); requiring the mid-p test
    too keeps the false alarms at or below the nominal 5%.
    """
    return excludes_zero(low, high) and p_value < alpha


def mean_squared_jerk(commands: np.ndarray, dt: float, cycles: np.ndarray | None = None) -> float:
    """Mean over time of ||d^3 q / dt^3||^2 (rad^2/s^6) of a [T, joints] command sequence.

    Third finite differences of the commands at the command period `dt` (exact for cubics).
    `cycles` (the control cycle of each command) keeps only differences over four consecutive
    cycles: a command missing from the record (telemetry lost under load) would otherwise count
    as a jump the arm never saw. NaN when no four consecutive commands exist.
    """
    q = np.asarray(commands, dtype=np.float64)
    if q.ndim != 2:
        raise ValueError(f"`commands` must be [T, joints], got shape {q.shape}")
    if not dt > 0.0:
        raise ValueError(f"`dt` must be > 0, got {dt}")
    if q.shape[0] < 4:
        return math.nan
    jerk = np.diff(q, n=3, axis=0) / dt**3
    if cycles is not None:
        c = np.asarray(cycles, dtype=np.int64).reshape(-1)
        if c.shape[0] != q.shape[0]:
            raise ValueError(f"`cycles` must have one entry per command ({q.shape[0]}), got {c.shape[0]}")
        jerk = jerk[(c[3:] - c[:-3]) == 3]
        if jerk.shape[0] == 0:
            return math.nan
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
    tcp_stride: int = 1        # every how many control steps `tcp` has a point (results.json thins it)
    start_q: list[float] = field(default_factory=list)  # arm joints after reset (rad)
    wall_s: float = 0.0
    # Perception in the loop (object_perception's frame reports against the sim's truth; empty and 0
    # when the object's pose came from the sim):
    perception_error_mm: list[float] = field(default_factory=list)  # per frame the object was seen
    frame_age_ms: list[float] = field(default_factory=list)  # per frame: its stamp to perception's result
    frames: int = 0            # camera frames perception reported in the episode
    frames_unseen: int = 0     # of which the object was not found
    longest_blind_s: float = 0.0  # longest sim time between two sightings (episode start and end count)
    stale_holds: int = 0       # held cycles whose reason is the object's position (stale or missing)


def json_safe(v: Any) -> Any:
    """JSON has no NaN or infinity: null (read back as NaN by `episode_from_dict`)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def read_results(path: str | Path) -> dict[str, Any]:
    """A results.json, or its gzip (`.gz`: how a long evaluation's record is kept in a repository).

    Raises:
        FileNotFoundError: no such file; ValueError: not a readable (gzipped) JSON object.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    except (OSError, EOFError, ValueError) as exc:  # a corrupt or cut gzip, or broken JSON
        raise ValueError(f"{path} is not a readable results.json: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a results.json: a {type(data).__name__}, not an object")
    return data


def episode_from_dict(d: dict[str, Any]) -> EpisodeRecord:
    """An episode as results.json or the journal keep it (nulls back to NaN, the TCP path as an
    (n, 3) array); keys it does not know are ignored, missing ones take their defaults."""
    known = {f.name for f in fields(EpisodeRecord)}
    d = {k: v for k, v in d.items() if k in known}
    for k, v in d.items():
        if v is None:
            d[k] = math.nan
        elif isinstance(v, list) and k != "tcp":
            d[k] = [math.nan if x is None else x for x in v]
    d["tcp"] = np.asarray([[math.nan if x is None else x for x in p] for p in d.get("tcp", [])],
                          dtype=float).reshape(-1, 3)
    return EpisodeRecord(**d)


def perception_record(frames: Sequence[tuple[float, bool, Sequence[float], float]],
                      truth: dict[float, Sequence[float]], t_start: float, t_end: float) -> dict[str, Any]:
    """Per-episode perception figures from (stamp, seen, xyz, age_ms) frame reports and the truth by
    stamp (stamps in seconds, rounded to the microsecond by the caller); only frames in [t_start, t_end]."""
    # One report per stamp (the last): a frame reported twice is one frame.
    mine = sorted({f[0]: f for f in frames if t_start - 1e-9 <= f[0] <= t_end + 1e-9}.values())
    errors = [1e3 * float(np.linalg.norm(np.subtract(xyz, truth[t]))) for t, seen, xyz, _ in mine
              if seen and t in truth]
    sightings = [t_start] + [t for t, seen, _, _ in mine if seen] + [t_end]
    return {"perception_error_mm": errors, "frames": len(mine), "frame_age_ms": [f[3] for f in mine],
            "frames_unseen": sum(not f[1] for f in mine),
            "longest_blind_s": float(np.max(np.diff(sightings)))}


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
    stale_holds: int = 0
    frames: int = 0
    unseen_fraction: float = math.nan
    perception_error_mm_p50: float = math.nan
    perception_error_mm_p95: float = math.nan
    perception_error_mm_max: float = math.nan
    longest_blind_s_max: float = math.nan
    frame_age_ms_p50: float = math.nan
    frame_age_ms_p95: float = math.nan


@dataclass
class PairedComparison:
    """One head against the reference head on the seeds both ran under one profile."""

    head: str
    reference: str
    profile: str
    pairs: int
    both: int             # seeds both heads solved
    only_head: int        # seeds only `head` solved
    only_reference: int   # seeds only the reference solved
    neither: int
    difference: float     # success rate of `head` minus the reference's, on these seeds
    low: float            # 95% interval of the difference (Newcombe, paired)
    high: float
    mcnemar_p: float      # two-sided McNemar mid-p
    phi: float            # correlation of the two heads' outcomes over the seeds

    @property
    def separated(self) -> bool:
        return separates(self.low, self.high, self.mcnemar_p)


def paired_comparison(reference: Sequence[EpisodeRecord], head: Sequence[EpisodeRecord]) -> PairedComparison:
    """Pair the episodes of two heads by seed (same profile) and compare their success."""
    if not reference or not head:
        raise ValueError("paired_comparison needs episodes of both heads")
    for side in (reference, head):
        if len({(e.head, e.profile) for e in side}) != 1:
            raise ValueError("each side must hold the episodes of one (head, profile) run")
        if len({e.seed for e in side}) != len(side):
            raise ValueError(f"head {side[0].head!r} ran a seed twice under {side[0].profile!r}")
    ref_head, name, profile = reference[0].head, head[0].head, head[0].profile
    if reference[0].profile != profile:
        raise ValueError(f"pairs must share the profile: {reference[0].profile!r} vs {profile!r}")
    ref_by_seed = {e.seed: e.success for e in reference}
    pairs = [(e.success, ref_by_seed[e.seed]) for e in head if e.seed in ref_by_seed]
    if not pairs:
        raise ValueError(f"heads {name!r} and {ref_head!r} share no seed under {profile!r}")
    both = sum(h and r for h, r in pairs)
    only_head = sum(h and not r for h, r in pairs)
    only_ref = sum(r and not h for h, r in pairs)
    neither = len(pairs) - both - only_head - only_ref
    low, high = paired_difference_interval(both, only_head, only_ref, neither)
    return PairedComparison(head=name, reference=ref_head, profile=profile, pairs=len(pairs), both=both,
                            only_head=only_head, only_reference=only_ref, neither=neither,
                            difference=(only_head - only_ref) / len(pairs), low=low, high=high,
                            mcnemar_p=mcnemar_p(only_head, only_ref),
                            phi=phi_coefficient(both, only_head, only_ref, neither))


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
        holds=sum(e.holds for e in episodes), **_perception_summary(episodes))


def _perception_summary(episodes: Sequence[EpisodeRecord]) -> dict[str, float | int]:
    frames = sum(e.frames for e in episodes)
    out: dict[str, float | int] = {"stale_holds": sum(e.stale_holds for e in episodes), "frames": frames}
    if frames:
        errors = [x for e in episodes for x in e.perception_error_mm]
        out |= {"unseen_fraction": sum(e.frames_unseen for e in episodes) / frames,
                "perception_error_mm_p50": percentile(errors, 50), "perception_error_mm_p95": percentile(errors, 95),
                "perception_error_mm_max": max(errors, default=math.nan),
                "longest_blind_s_max": max(e.longest_blind_s for e in episodes),
                "frame_age_ms_p50": percentile([x for e in episodes for x in e.frame_age_ms], 50),
                "frame_age_ms_p95": percentile([x for e in episodes for x in e.frame_age_ms], 95)}
    return out


@dataclass
class PerceptionLosses:
    """Where one run's losses to its ground-truth twin come from: episodes that held on a stale or
    missing object position (the object not seen for longer than the policy's input may be old:
    occlusion, dim light) or, without such a hold, the position's error."""

    head: str
    profile: str
    lost: int                 # seeds the truth solved and perception did not
    gained: int               # seeds only perception solved
    stale: int                # episodes held on a stale or missing object position
    stale_truth_solved: int   # of those, seeds the truth solved
    lost_stale_seeds: list[int] = field(default_factory=list)  # lost seeds that held so

    @property
    def lost_stale(self) -> int:
        return len(self.lost_stale_seeds)


def perception_losses(truth: Sequence[EpisodeRecord], perceived: Sequence[EpisodeRecord]) -> list[PerceptionLosses]:
    """Per (head, profile) run with a twin, its losses split by stale holds, on the seeds both ran."""
    out = []
    for head, profile in dict.fromkeys((e.head, e.profile) for e in perceived):
        twin = {e.seed: e.success for e in truth if (e.head, e.profile) == (head, profile)}
        mine = [e for e in perceived if (e.head, e.profile) == (head, profile) and e.seed in twin]
        if not mine:
            continue
        lost = [e for e in mine if twin[e.seed] and not e.success]
        stale = [e for e in mine if e.stale_holds > 0]
        out.append(PerceptionLosses(
            head, profile, lost=len(lost),
            gained=sum(e.success and not twin[e.seed] for e in mine), stale=len(stale),
            stale_truth_solved=sum(twin[e.seed] for e in stale),
            lost_stale_seeds=sorted(e.seed for e in lost if e.stale_holds > 0)))
    return out


def twin_comparisons(truth: Sequence[EpisodeRecord], perceived: Sequence[EpisodeRecord]) -> list[PairedComparison]:
    """Each (head, profile) run with perception against its ground-truth twin, seed by seed (the twin
    is the reference: a negative difference is what perception costs)."""
    runs = list(dict.fromkeys((e.head, e.profile) for e in perceived))
    out = []
    for head, profile in runs:
        mine = [e for e in perceived if (e.head, e.profile) == (head, profile)]
        twin = [e for e in truth if (e.head, e.profile) == (head, profile)]
        if twin and {e.seed for e in twin} & {e.seed for e in mine}:
            out.append(paired_comparison(twin, mine))
    return out
