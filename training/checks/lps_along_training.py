"""Where along its training an offline LPS head on pick_place is good, per training seed.

Each seed's head is trained once with `--save-head-every`, every saved head is exported and all
of them are evaluated on the same seeded episodes, beside the frozen base. The question it answers:
do training seeds that end apart (docs/training.md, "LPS") part early and stay apart, or does each
run swing along its training, so that where a run stops decides as much as its seed?

    scripts/with-env python training/checks/lps_along_training.py --seeds 0 2 4 --out runs/checks/along
    scripts/with-env python training/checks/lps_along_training.py --seeds 1 3 --out runs/checks/along
    scripts/with-env python training/checks/lps_along_training.py --summarise runs/checks/along \\
        --png runs/checks/along/along.png
    # a seed on to 15,000 updates, its heads from 6,000 on evaluated (the first 5,000 updates are
    # the run above's, update for update)
    scripts/with-env python training/checks/lps_along_training.py --seeds 0 --steps 15000 \\
        --evaluate-from 6000 --out runs/checks/along_long
    scripts/with-env python training/checks/lps_along_training.py --summarise runs/checks/along \\
        runs/checks/along_long --png runs/checks/along/along_long.png

Every run's head checkpoints, exported heads and `eval_s<seed>.json` (the `lps-train evaluate`
record: per-episode outcomes, paired with the base) stay under `--out`; started again, a seed whose
evaluation exists is skipped.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import numpy as np
from lps_steering.evaluation.stats import mcnemar_p
from lps_train.cli import head_at
from lps_train.cli import main as lps_train


def run_seed(seed: int, out: Path, args: argparse.Namespace) -> Path:
    """Train (unless its final head is there), export (unless exported) and evaluate one seed."""
    evaluation = out / f"eval_s{seed}.json"
    if evaluation.exists():
        print(f"seed {seed}: {evaluation} exists, skipped", flush=True)
        return evaluation
    head = out / f"lps_s{seed}.pt"
    if not head.exists():
        train = ["train-head", "--preset", args.preset, "--lps.seed", str(seed), "--lps.steps", str(args.steps),
                 "--save-head-every", str(args.every), "--out", str(head)]
        print("lps-train " + shlex.join(train), flush=True)
        lps_train(train)
    onnx_files = []
    for updates in range(max(args.every, args.evaluate_from), args.steps + 1, args.every):
        onnx = out / f"lps_s{seed}_u{updates}.onnx"
        if not onnx.exists():
            lps_train(["export", "--checkpoint", str(head_at(head, updates)), "--decoder-onnx", args.decoder,
                       "--out", str(onnx)])
        onnx_files.append(str(onnx))
    evaluate = ["evaluate", "--decoder", args.decoder, "--head", "none", *onnx_files, "--episodes",
                str(args.episodes), "--profile", args.profile, "--out", str(evaluation)]
    print("lps-train " + shlex.join(evaluate), flush=True)
    lps_train(evaluate)
    return evaluation


def _updates(head: str) -> int:
    return int(Path(head).stem.rsplit("_u", 1)[1])


def summarise(folders: list[Path], png: Path | None) -> dict:
    """Per training seed: success of each saved head, and the spread within a run against the spread
    between runs at the last update they all reached. A seed's evaluations in several folders (a
    longer run of the same seed, evaluated from where the shorter one stopped) are merged when they
    were made on the same episodes."""
    found: dict[int, dict] = {}
    # eval_s<seed>.json, not the .config.json `lps-train evaluate` writes beside it
    records = [p for folder in folders for p in folder.glob("eval_s*.json") if re.fullmatch(r"eval_s\d+\.json", p.name)]
    for path in sorted(records):
        res = json.loads(path.read_text())
        seed = int(path.stem.removeprefix("eval_s"))
        base = next(r for r in res["results"] if r["head"] == "none")
        run = found.setdefault(seed, {"episodes": res["episodes"], "base": base["successes"], "profile": res["profile"],
                                      "outcomes": base["outcomes"], "points": {}})
        if (res["episodes"], res["profile"], base["outcomes"]) != (run["episodes"], run["profile"], run["outcomes"]):
            raise SystemExit(f"{path}: not the episodes of seed {seed}'s other evaluations")
        for r in res["results"]:
            if r["head"] != "none":
                run["points"].setdefault(_updates(r["head"]), (r["successes"], res["paired_with_base"][r["head"]],
                                                               r["outcomes"]))
    if not found:
        raise SystemExit(f"no eval_s*.json under {', '.join(map(str, folders))}")
    profiles = {run["profile"] for run in found.values()}
    if len(profiles) > 1:
        raise SystemExit(f"evaluations of several profiles ({', '.join(sorted(profiles))}): summarise one at a time")
    runs = {}
    for seed, run in sorted(found.items()):
        ups = sorted(run["points"])
        runs[seed] = {"episodes": run["episodes"], "base": run["base"], "profile": run["profile"], "updates": ups,
                      "successes": [run["points"][u][0] for u in ups], "paired": [run["points"][u][1] for u in ups],
                      "outcomes": [run["points"][u][2] for u in ups]}
    updates = sorted(set.union(*(set(r["updates"]) for r in runs.values())))
    common = sorted(set.intersection(*(set(r["updates"]) for r in runs.values())))
    episodes = runs[next(iter(runs))]["episodes"]
    print(f"pick_place, {profiles.pop()}, {episodes} episodes per cell; successes of each training seed's "
          f"saved heads (base {sorted({r['base'] for r in runs.values()})})\n")
    print("| training seed | " + " | ".join(f"{u:,}" for u in updates) + " | range within the run |")
    print("|---|" + "---|" * (len(updates) + 1))
    for seed, r in runs.items():
        cells = dict(zip(r["updates"], (f"{s}{'+' if p['separated'] and p['difference'] > 0 else '−' if p['separated'] else ''}"
                                        for s, p in zip(r["successes"], r["paired"], strict=True)), strict=True))
        print(f"| {seed} | " + " | ".join(cells.get(u, "") for u in updates)
              + f" | {min(r['successes'])}-{max(r['successes'])} |")
    # Over the saved heads every seed has, so that a longer run does not widen its own range alone.
    table = np.array([[dict(zip(r["updates"], r["successes"], strict=True))[u] for u in common]
                      for r in runs.values()], float)
    # Each run's largest move between consecutive heads once its first half of updates is behind it
    # (the rise from nothing is learning, not a swing), tested on the same episodes as two heads are
    # against each other; set against how far apart the runs end.
    half = (len(common) - 1) // 2
    moves, move_p = [], []
    for r in runs.values():
        at = dict(zip(r["updates"], r["outcomes"], strict=True))
        pairs = [list(zip(at[a], at[b], strict=True)) for a, b in zip(common[half:-1], common[half + 1:], strict=True)]
        if pairs:
            largest = max(pairs, key=lambda p: abs(p.count(("1", "0")) - p.count(("0", "1"))))
            gained, lost = largest.count(("1", "0")), largest.count(("0", "1"))
            moves.append(abs(gained - lost))
            move_p.append(mcnemar_p(gained, lost))
    within = float(np.mean(moves)) if moves else 0.0
    between = float(table[:, -1].max() - table[:, -1].min())
    mean_curve = table.mean(0)
    print("\n+ / −: separated above / below the base (Newcombe 95% interval and McNemar mid-p < 0.05)")
    print(f"over the updates every seed reached ({', '.join(f'{u:,}' for u in common)}):")
    print("mean over the seeds: " + ", ".join(f"{m:.1f}" for m in mean_curve))
    print(f"largest move between consecutive saved heads from {common[half]:,} updates on, per seed: "
          f"{', '.join(f'{m:.0f}' for m in moves)} (mean {within:.1f}; McNemar mid-p of each, same episodes: "
          f"{', '.join(f'{p:.2g}' for p in move_p)}); range between the runs at {common[-1]:,} updates: {between:.0f}")
    if png is not None:
        _plot(runs, png)
    return {"runs": runs, "common_updates": common, "mean_curve": mean_curve.tolist(), "within": within,
            "move_p": move_p, "between_last": between}


def _plot(runs: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for seed, r in runs.items():
        n = r["episodes"]
        ax.plot(r["updates"], [100 * s / n for s in r["successes"]], marker="o", label=f"training seed {seed}")
    base = runs[next(iter(runs))]
    ax.axhline(100 * base["base"] / base["episodes"], color="k", ls="--", label="frozen base")
    ax.set_xlabel("LPS updates")
    ax.set_ylabel(f"success, % of {base['episodes']} {base['profile']} episodes")
    ax.set_title("offline LPS on pick_place along its training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="offline-lps", help="the train-head preset (its data and settings)")
    p.add_argument("--decoder", default="models/pick_place/decoder.onnx", help="the exported decoder the head steers")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds")
    p.add_argument("--steps", type=int, default=5000, help="LPS updates (the preset's: 5,000)")
    p.add_argument("--every", type=int, default=1000, help="updates between saved heads")
    p.add_argument("--evaluate-from", type=int, default=0,
                   help="evaluate the saved heads from this update on (a longer run of a seed already "
                        "evaluated: its first saved heads are the shorter run's, update for update)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes per saved head")
    p.add_argument("--profile", default="nominal")
    p.add_argument("--out", default="runs/checks/along")
    p.add_argument("--summarise", type=Path, nargs="+", help="tabulate the evaluations under these folders instead")
    p.add_argument("--png", type=Path, help="with --summarise: the success-along-training plot")
    args = p.parse_args()
    if args.summarise:
        summarise(args.summarise, args.png)
        return
    if args.every < 1 or args.steps % args.every or args.evaluate_from % args.every or args.evaluate_from > args.steps:
        p.error("--every must be >= 1 and divide --steps (the last saved head is the final one) and "
                "--evaluate-from, which is at most --steps")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        run_seed(seed, out, args)


if __name__ == "__main__":
    main()
