"""Scripted-expert success table: N seeded episodes per task and profile, Wilson 95% intervals.

    scripts/with-env python -m lps_sim.experts_report                      # 100 episodes each
    scripts/with-env python -m lps_sim.experts_report --episodes 20 --tasks pick_place \
        --profiles nominal sim2real --expert noisy --png docs/img/experts.png

Seeds are 0..N-1, so a run is reproducible. The ``camera_*`` profiles are left out by default: they only
change images and the camera stream, which scripted experts do not look at.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from lps_steering.evaluation.stats import wilson_interval
from tqdm import tqdm

from lps_sim.experts import EXPERT_PRESETS, run_expert_episode
from lps_sim.randomization import available_profiles
from lps_sim.tasks import TASKS, make_task

DEFAULT_PNG = Path(__file__).resolve().parents[2] / "docs" / "img" / "expert_success.png"


def run(tasks: list[str], profiles: list[str], episodes: int, expert: str) -> list[dict]:
    rows = []
    total = len(tasks) * len(profiles) * episodes
    with tqdm(total=total, desc="expert episodes", unit="ep") as bar:
        for name in tasks:
            task = make_task(name)
            for profile in profiles:
                ok, lengths, start = 0, [], time.perf_counter()
                for seed in range(episodes):
                    traj = run_expert_episode(task, seed, profile, expert)
                    ok += traj.success
                    lengths.append(traj.sim_time)
                    bar.update()
                    bar.set_postfix(task=name, profile=profile, success=f"{ok}/{seed + 1}")
                lo, hi = wilson_interval(ok, episodes)
                rows.append({"task": name, "profile": profile, "success": ok, "episodes": episodes,
                             "rate": ok / episodes, "lo": lo, "hi": hi, "mean_sim_s": float(np.mean(lengths)),
                             "wall_s_per_episode": (time.perf_counter() - start) / episodes})
            task.close()
    return rows


def print_table(rows: list[dict], expert: str) -> None:
    print(f"\nScripted expert ({expert}) success, Wilson 95% interval")
    print(f"{'task':<11} {'profile':<18} {'success':>9} {'rate':>6} {'95% CI':>15} {'sim s':>6} {'wall s/ep':>9}")
    for r in rows:
        print(f"{r['task']:<11} {r['profile']:<18} {r['success']:>4}/{r['episodes']:<4} {r['rate']:>6.0%} "
              f"[{r['lo']:>5.1%}, {r['hi']:>5.1%}] {r['mean_sim_s']:>6.1f} {r['wall_s_per_episode']:>9.2f}")


def plot(rows: list[dict], path: Path, expert: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    profiles = list(dict.fromkeys(r["profile"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 + 1.3 * len(profiles)), 3.8))
    width = 0.8 / len(tasks)
    for i, task in enumerate(tasks):
        sub = {r["profile"]: r for r in rows if r["task"] == task}
        x = np.arange(len(profiles)) + (i - (len(tasks) - 1) / 2) * width
        rate = np.array([sub[p]["rate"] for p in profiles])
        err = np.array([[sub[p]["rate"] - sub[p]["lo"] for p in profiles], [sub[p]["hi"] - sub[p]["rate"] for p in profiles]])
        # Wilson's upper bound at 100% can round a hair below the rate; matplotlib refuses that.
        ax.bar(x, rate * 100, width, yerr=np.clip(err, 0.0, None) * 100, capsize=3, label=task)
    ax.set_xticks(np.arange(len(profiles)), profiles, rotation=20, ha="right")
    ax.set_ylabel("success, % (Wilson 95% CI)")
    ax.set_ylim(0, 105)
    ax.axhline(95, color="grey", lw=0.8, ls="--")
    n = rows[0]["episodes"]
    ax.set_title(f"Scripted expert ({expert}), {n} seeded episodes per bar")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    default_profiles = [p for p in available_profiles() if not p.startswith("camera_")]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100, help="seeded episodes per task and profile")
    parser.add_argument("--tasks", nargs="+", default=sorted(TASKS), choices=sorted(TASKS))
    parser.add_argument("--profiles", nargs="+", default=default_profiles, choices=available_profiles())
    parser.add_argument("--expert", default="clean", choices=sorted(EXPERT_PRESETS))
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG, help="where to write the bar chart")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    rows = run(args.tasks, args.profiles, args.episodes, args.expert)
    print_table(rows, args.expert)
    plot(rows, args.png, args.expert)
    print(f"chart: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
