"""Success of exported models (ONNX decoder + head) through the runtime's controller, without ROS."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lps_steering.core.controller import SteeringController
from lps_steering.evaluation.stats import wilson_interval
from tqdm import tqdm

from lps_train.pick_place.env import ControllerEpisode, controller_config
from lps_train.pick_place.layout import make_pick_place


@dataclass
class EvalResult:
    head: str
    episodes: int
    successes: int
    wilson_low: float
    wilson_high: float
    mean_steps: float
    holds: int
    wall_s: float
    outcomes: str = ""  # per episode, '1' success / '0' failure, episode k on seed `seed + k`

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"success_rate": self.success_rate}


def controller_episode(decoder_path: str | Path, head_path: str | Path | str = "") -> ControllerEpisode:
    """Decoder (+ head) through the runtime's `SteeringController` on a fresh pick_place task; reseed
    `episode.controller` per episode to draw that episode's noise."""
    controller = SteeringController(controller_config(decoder_path, head_path, seed=0))
    controller.configure()
    return ControllerEpisode(make_pick_place(), controller)


def evaluate(decoder_path: str | Path, head_path: str | Path | str = "", episodes: int = 100,
             profile: str = "nominal", seed: int = 100_000, progress: bool = True,
             label: str | None = None) -> EvalResult:
    """Success of decoder (+ head) over seeded episodes through `SteeringController` and ONNX Runtime.

    Episode k uses task seed `seed + k` and noise seed `seed + k`, so two heads meet the same
    scenes and a rerun gives the same numbers. The default seeds do not overlap the
    demonstrations' (0..) nor LP-DS training's.
    """
    episode = controller_episode(decoder_path, head_path)
    controller = episode.controller
    name = label or (Path(head_path).stem if head_path else "base")
    successes, steps, holds, outcomes = 0, [], 0, []
    t0 = time.perf_counter()
    bar = tqdm(range(episodes), desc=f"eval {name}", disable=not progress, mininterval=1.0)
    for k in bar:
        controller.reseed(seed + k)
        episode.reset(seed + k, profile)
        while not episode.done:
            episode.period()
        successes += int(episode.result.success)
        outcomes.append("1" if episode.result.success else "0")
        steps.append(episode.result.steps)
        holds += episode.result.holds
        bar.set_postfix(success=f"{successes / (k + 1):.2f}")
    lo, hi = wilson_interval(successes, episodes)
    return EvalResult(name, episodes, successes, float(lo), float(hi), float(np.mean(steps)), holds,
                      time.perf_counter() - t0, "".join(outcomes))


def paired_with_base(base: EvalResult, head: EvalResult) -> dict[str, Any]:
    """Head against the frozen base on the same seeds: the 2x2 counts, the difference with
    Newcombe's paired interval, McNemar's mid-p and whether the two separate (both agree)."""
    from lps_steering.evaluation.stats import mcnemar_p, paired_difference_interval, separates

    if len(base.outcomes) != len(head.outcomes) or not head.outcomes:
        raise ValueError(f"paired comparison needs the same episodes: base {len(base.outcomes)}, "
                         f"{head.head} {len(head.outcomes)}")
    pairs = list(zip(head.outcomes, base.outcomes, strict=True))
    both, only_head = pairs.count(("1", "1")), pairs.count(("1", "0"))
    only_base, neither = pairs.count(("0", "1")), pairs.count(("0", "0"))
    lo, hi = paired_difference_interval(both, only_head, only_base, neither)
    p = mcnemar_p(only_head, only_base)
    return {"pairs": len(pairs), "both": both, "only_head": only_head, "only_base": only_base,
            "neither": neither, "difference": head.success_rate - base.success_rate,
            "ci_low": lo, "ci_high": hi, "mcnemar_mid_p": p, "separated": separates(lo, hi, p)}
