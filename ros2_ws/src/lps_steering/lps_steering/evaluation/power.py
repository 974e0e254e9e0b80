"""How many paired episodes an evaluation needs: simulated power of the report's paired comparison.

    python -m lps_steering.evaluation.power --reference 0.54 --head 0.86 --phi 0.12 --pairs 16 24 30

For each number of pairs it draws many evaluations whose seeds succeed for both heads, one, or
neither with the probabilities that the two success rates and their correlation phi imply, and
counts how often the heads come out separated, as the report decides it (`stats.separates`:
Newcombe's paired interval excludes 0 and McNemar's mid-p < 0.05). Beside it: the paired
interval alone, the unpaired view (non-overlapping Wilson intervals), and the false-alarm rate,
how often two heads that both succeed at the reference's rate come out separated. phi is the
correlation of the two heads' outcomes over seeds (scenes that are easy for one head tend to be
easy for the other, phi > 0); a previous evaluation's results.json has it per comparison.
numpy only, no ROS.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np

from .stats import excludes_zero, mcnemar_p, paired_difference_interval, separates, wilson_interval


@dataclass
class Power:
    pairs: int
    separated: float  # share of simulated evaluations the report calls separated
    interval_only: float  # ... whose paired interval alone excludes 0
    wilson_apart: float  # ... whose two Wilson intervals do not overlap (unpaired view)
    false_alarm: float  # share called separated when both heads succeed at the reference's rate


def cell_probabilities(p_head: float, p_reference: float, phi: float) -> np.ndarray:
    """P(both succeed), P(only the head), P(only the reference), P(neither) for correlation phi."""
    for name, p in (("head", p_head), ("reference", p_reference)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"`{name}` success rate must be in [0, 1], got {p}")
    both = p_head * p_reference + phi * math.sqrt(p_head * (1 - p_head) * p_reference * (1 - p_reference))
    cells = np.array([both, p_head - both, p_reference - both, 1.0 - p_head - p_reference + both])
    if not -1.0 <= phi <= 1.0 or np.any(cells < -1e-12):
        raise ValueError(f"`phi` {phi} is impossible for success rates {p_head} and {p_reference}: a cell of "
                         f"the 2x2 table would be negative ({np.round(cells, 4).tolist()})")
    return np.clip(cells, 0.0, 1.0) / np.clip(cells, 0.0, 1.0).sum()


def _criteria(tables: np.ndarray, pairs: int) -> np.ndarray:
    """Per simulated table: [separated, interval excludes 0, Wilson intervals apart]."""
    out = np.zeros((len(tables), 3), dtype=bool)
    for row, (both, only_head, only_ref, neither) in zip(out, tables.tolist(), strict=True):
        low, high = paired_difference_interval(both, only_head, only_ref, neither)
        row[0] = separates(low, high, mcnemar_p(only_head, only_ref))
        row[1] = excludes_zero(low, high)
        h_lo, h_hi = wilson_interval(both + only_head, pairs)
        r_lo, r_hi = wilson_interval(both + only_ref, pairs)
        row[2] = h_lo > r_hi or r_lo > h_hi
    return out


def simulate_power(p_head: float, p_reference: float, phi: float, pairs: int, draws: int = 4000,
                   seed: int = 0) -> Power:
    if pairs < 1 or draws < 1:
        raise ValueError(f"`pairs` and `draws` must be >= 1, got {pairs} and {draws}")
    rng = np.random.default_rng(seed)
    hits = _criteria(rng.multinomial(pairs, cell_probabilities(p_head, p_reference, phi), size=draws), pairs)
    null = _criteria(rng.multinomial(pairs, cell_probabilities(p_reference, p_reference, phi), size=draws), pairs)
    share = hits.mean(axis=0)
    return Power(pairs, float(share[0]), float(share[1]), float(share[2]), float(null[:, 0].mean()))


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m lps_steering.evaluation.power", description=__doc__.split("\n")[0])
    cli.add_argument("--reference", type=float, required=True, help="success rate of the reference head")
    cli.add_argument("--head", type=float, required=True, help="success rate of the head under test")
    cli.add_argument("--phi", type=float, default=0.0, help="correlation of their outcomes over seeds")
    cli.add_argument("--pairs", type=int, nargs="+", required=True, help="numbers of paired episodes")
    cli.add_argument("--draws", type=int, default=4000, help="simulated evaluations per number of pairs")
    cli.add_argument("--seed", type=int, default=0)
    a = cli.parse_args(argv)
    try:
        rows = [simulate_power(a.head, a.reference, a.phi, n, a.draws, a.seed) for n in a.pairs]
    except ValueError as exc:
        print(f"power: {exc}", file=sys.stderr)
        return 2
    print(f"head {a.head:.2f} vs reference {a.reference:.2f}, phi {a.phi:.2f}, {a.draws} simulated evaluations "
          "each: share that separates the heads at 95%")
    print(f"{'pairs':>6} {'separated':>10} {'interval only':>14} {'Wilson apart':>13} {'false alarms':>13}")
    for r in rows:
        print(f"{r.pairs:>6} {r.separated:>10.2f} {r.interval_only:>14.2f} {r.wilson_apart:>13.2f} "
              f"{r.false_alarm:>13.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
