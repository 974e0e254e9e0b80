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
    successes, steps, holds = 0, [], 0
    t0 = time.perf_counter()
    bar = tqdm(range(episodes), desc=f"eval {name}", disable=not progress, mininterval=1.0)
    for k in bar:
        controller.reseed(seed + k)
        episode.reset(seed + k, profile)
        while not episode.done:
            episode.period()
        successes += int(episode.result.success)
        steps.append(episode.result.steps)
        holds += episode.result.holds
        bar.set_postfix(success=f"{successes / (k + 1):.2f}")
    lo, hi = wilson_interval(successes, episodes)
    return EvalResult(name, episodes, successes, float(lo), float(hi), float(np.mean(steps)), holds,
                      time.perf_counter() - t0)
