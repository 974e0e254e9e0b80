"""LPS in rounds: each round's head on the evaluation seeds, and its own 200 training rollouts.

The table and plot behind docs/training.md ("LPS"). Each `--round` names one head:
its training seed, its round, the `lps-train evaluate` JSON(s) that evaluated it (several are
summed, e.g. seeds 100000-100039 and 100040-100199), and the `lps-train collect --head ...`
rollouts made from it (training seeds 50000+; `-` if none were collected). The rollouts'
success is what `lps-train lps-rounds` picks a round by, so the point of the plot is whether it
ranks the heads as the evaluation does.

    scripts/with-env python training/checks/lps_rounds.py \\
        --round 1 2 eval_r2.json data/pick_place/rollouts_lps_round2_s1.npz ... \\
        --out training/checks/results/lps_rounds/rounds      # + rounds.json, rounds.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lps_steering.evaluation.stats import wilson_interval  # noqa: E402


def evaluated(paths: list[str]) -> tuple[int, int]:
    """Successes and episodes of the one LPS head in each `lps-train evaluate` JSON, summed.

    The files must evaluate the same head on disjoint seed ranges: a wrong path would otherwise
    merge two heads, or count a seed twice, without a word.
    """
    successes = episodes = 0
    names, seeds = set(), set()
    for p in paths:
        if not Path(p).is_file():
            raise ValueError(f"evaluation file {p} does not exist")
        ev = json.loads(Path(p).read_text())
        heads = [r for r in ev["results"] if r["head"] != "none"]
        if len(heads) != 1:
            raise ValueError(f"{p}: expected exactly one evaluated head besides the base, found {len(heads)}")
        names.add(Path(heads[0]["head"]).name)
        span = set(range(ev["seed"], ev["seed"] + heads[0]["episodes"]))
        if seeds & span:
            raise ValueError(f"{p}: its seeds {ev['seed']}..{ev['seed'] + heads[0]['episodes'] - 1} overlap "
                             "another file's of the same round")
        seeds |= span
        successes += heads[0]["successes"]
        episodes += heads[0]["episodes"]
    if len(names) > 1:
        raise ValueError(f"the evaluations of one round name different heads: {sorted(names)}")
    return successes, episodes


def rollout_success(path: str) -> tuple[float, int]:
    if not Path(path).is_file():
        raise ValueError(f"rollout file {path} does not exist")
    s = np.load(path)["episode_success"]
    if len(s) == 0:
        raise ValueError(f"rollout file {path} holds no episodes")
    return float(s.mean()), int(len(s))


def base_result(manifest: str) -> tuple[int, int]:
    ev = json.loads(Path(manifest).read_text())["provenance"]["metrics"]["eval_nominal"]
    return ev["successes"], ev["episodes"]


def table(rounds: list[list[str]]) -> list[dict]:
    rows = []
    for seed, rnd, evals, rollouts in rounds:
        if not (seed.isdigit() and rnd.isdigit()):
            raise ValueError(f"--round SEED ROUND ...: both must be non-negative integers, got {seed!r} {rnd!r}")
        k, n = evaluated(evals.split(","))
        lo, hi = wilson_interval(k, n)
        row = {"seed": int(seed), "round": int(rnd), "eval_successes": k, "eval_episodes": n,
               "eval_rate": k / n, "eval_wilson": [lo, hi], "rollout_rate": None, "rollout_episodes": None}
        if rollouts != "-":
            rate, count = rollout_success(rollouts)
            row |= {"rollout_rate": rate, "rollout_episodes": count}
        rows.append(row)
    return rows


def plot(rows: list[dict], base: tuple[int, int], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    b = base[0] / base[1]
    lo, hi = wilson_interval(*base)
    ax.axhspan(100 * lo, 100 * hi, color="0.85")
    ax.axhline(100 * b, color="0.4", lw=1, label=f"frozen base {base[0]}/{base[1]}")
    seeds = sorted({r["seed"] for r in rows})
    for i, seed in enumerate(seeds):
        rs = sorted((r for r in rows if r["seed"] == seed), key=lambda r: r["round"])
        x = np.array([r["round"] for r in rs]) + 0.06 * (i - (len(seeds) - 1) / 2)  # error bars side by side
        y = np.array([100 * r["eval_rate"] for r in rs])
        err = np.array([[y[j] - 100 * r["eval_wilson"][0], 100 * r["eval_wilson"][1] - y[j]] for j, r in enumerate(rs)]).T
        line = ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"seed {seed}: evaluation (95% Wilson)")
        roll = [(r["round"], 100 * r["rollout_rate"]) for r in rs if r["rollout_rate"] is not None]
        if roll:
            ax.plot(*zip(*roll, strict=True), ls="--", marker="x", color=line[0].get_color(),
                    label=f"seed {seed}: its 200 training rollouts")
    ax.set_xlabel("round")
    ax.set_ylabel("success %")
    ax.set_xticks(sorted({r["round"] for r in rows}))
    ax.set_ylim(0, 100)
    ax.set_title("LPS rounds on the shipped base (nominal pick_place)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--round", nargs=4, action="append", required=True, metavar=("SEED", "ROUND", "EVALS", "ROLLOUTS"),
                   help="EVALS: comma-separated evaluate JSONs; ROLLOUTS: the head's rollouts .npz, or -")
    p.add_argument("--base-manifest", default="models/pick_place/decoder.json",
                   help="the decoder manifest whose eval_nominal is the frozen base's result")
    p.add_argument("--out", type=Path, required=True, help="path without suffix: writes .json and .png")
    args = p.parse_args()
    try:
        rows = table(args.round)
    except ValueError as e:
        p.error(str(e))
    base = base_result(args.base_manifest)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"base": list(base), "rounds": rows}, indent=1) + "\n")
    plot(rows, base, args.out)
    for r in rows:
        roll = "-" if r["rollout_rate"] is None else f"{100 * r['rollout_rate']:.1f}%"
        lo, hi = r["eval_wilson"]
        print(f"seed {r['seed']} round {r['round']}: {r['eval_successes']}/{r['eval_episodes']} "
              f"({100 * r['eval_rate']:.1f}%, {100 * lo:.1f}-{100 * hi:.1f}%), rollouts {roll}")


if __name__ == "__main__":
    main()
