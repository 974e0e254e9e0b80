"""The rule that picks an LPS head among rounds of training on growing data (`lps-train lps-rounds`).

Round 1 trains on the starting data (demonstrations and the frozen base's rollouts); each round's
head is rolled out on training seeds, and the next round trains on all data so far plus these
rollouts. The loop stops at the first round whose rollouts do not succeed more often than the best
round's so far (rounds do not improve monotonically) and keeps that best round. Only the rounds'
own training rollouts are compared: the choice never sees an evaluation seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class Round:
    index: int
    checkpoint: str
    data: list[str]
    """the datasets this round trained on"""
    rollouts: str
    rollout_success: float


def choose_round(first_data: Sequence[str], max_rounds: int,
                 train: Callable[[int, tuple[str, ...]], str],
                 roll_out: Callable[[int, str], tuple[str, float]],
                 report: Callable[[str], None] = lambda line: None) -> tuple[list[Round], int]:
    """Run rounds until one does not beat the best so far (or `max_rounds`); return every round
    run and the index (1-based) of the kept one.

    `train(index, data)` trains round `index` on `data` and returns its checkpoint;
    `roll_out(index, checkpoint)` returns the rollouts' dataset and their success rate.
    """
    if max_rounds < 1:
        raise ValueError(f"`max_rounds` must be >= 1, got {max_rounds}")
    data = list(first_data)
    rounds: list[Round] = []
    best_rate, best = -1.0, 0
    for index in range(1, max_rounds + 1):
        checkpoint = train(index, tuple(data))
        rollouts, rate = roll_out(index, checkpoint)
        rounds.append(Round(index, checkpoint, list(data), rollouts, rate))
        report(f"LPS round {index}: its rollouts succeed in {rate:.3f} (best so far: "
               f"{'none' if best == 0 else f'{best_rate:.3f}, round {best}'})")
        if not rate > best_rate:
            break
        best_rate, best = rate, index
        data.append(rollouts)
    return rounds, best
