"""LPS in rounds: each round's head on the evaluation seeds, and its own 200 training rollouts.

The table and plot behind docs/training.md ("Eleventh session"). Each `--round` names one head:
its training seed, its round, the `lps-train evaluate` JSON(s) that evaluated it (several are
summed, e.g. seeds 100000-100039 and 100040-100199), and the `lps-train collect --head ...`
rollouts made from it (training seeds 50000+; `-` if none were collected). The rollouts'
success is what `scripts/make_models.sh` picks a round by, so the point of the plot is whether it
ranks the heads as the evaluation does.

    scripts/with-env python training/checks/lps_rounds.py \\
        --round 1 2 eval_r2.json data/pick_place/rollouts_lps_round2_s1.npz ... \\
        --out training/checks/results/eleventh_session/rounds      # + rounds.json, rounds.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lps_sim.experts_report import wilson_interval  # noqa: E402


def evaluated(paths: list[str]) -> tuple[int, int]:
    """Successes and episodes of the one LPS head in each `lps-train evaluate` JSON, summed."""
    successes = episodes = 0
    for p in paths:
        heads = [r for r in json.loads(Path(p).read_text())["results"] if r["head"] != "none"]
        if len(heads) != 1:
            raise ValueError(f"{p}: expected exactly one evaluated head besides the base, found {len(heads)}")
        successes += heads[0]["successes"]
        episodes += heads[0]["episodes"]
    return successes, episodes


def base_result(manifest: str) -> tuple[int, int]:
    ev = json.loads(Path(manifest).read_text())["provenance"]["metrics"]["eval_nominal"]
    return ev["successes"], ev["episodes"]


def table(rounds: list[list[str]]) -> list[dict]:
    rows = []
    for seed, rnd, evals, rollouts in rounds:
        k, n = evaluated(evals.split(","))
        lo, hi = wilson_interval(k, n)
        row = {"seed": int(seed), "round": int(rnd), "eval_successes": k, "eval_episodes": n,
               "eval_rate": k / n, "eval_wilson": [lo, hi], "rollout_rate": None, "rollout_episodes": None}
        if rollouts != "-":
            s = np.load(rollouts)["episode_success"]
            row |= {"rollout_rate": float(s.mean()), "rollout_episodes": int(len(s))}
        rows.append(row)
    return rows


def plot(rows: list[dict], base: tuple[int, int], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    b = base[0] / base[1]
    lo, hi = wilson_interval(*base)
    ax.axhspan(100 * lo, 100 * hi, color="0.85")
    ax.axhline(100 * b, color="0.4", lw=1, label=f"frozen base {base[0]}/{base[1]}")
    for i, seed in enumerate(sorted({r["seed"] for r in rows})):
        rs = sorted((r for r in rows if r["seed"] == seed), key=lambda r: r["round"])
        x = np.array([r["round"] for r in rs]) + 0.06 * (i - 0.5)
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
    rows = table(args.round)
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
