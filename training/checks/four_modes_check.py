"""Paper checks on the four-mode toy: (a) mode coverage vs delta and DSRL, (b) latent-norm drift.

(a) LP-DS with delta in {0.01, 0.05, 0.1} (the paper's), {0.5, 2, 8} (where collapse begins on this
    toy) and DSRL, all steering the same frozen base policy
    (a flow decoder fitted to a demonstrator that visits all four goals). Measured every
    `eval_every` env steps: goal shares, coverage (goals reached in >= 5% of episodes), success,
    the k-NN entropy of the first chunk at start states.
(b) The mean latent norm ||w|| of the latents each head actually fed the decoder, over training,
    against sqrt(d), where N(0, I) latents concentrate.

The script reports what it measures. The variant decides what the objective rewards:
`symmetric` does not reward concentrating on one goal; `unequal` and `nearer` do. Results go to
`training/checks/results/four_modes_<variant>/` (JSON, CSV, PNG).

    scripts/with-env python training/checks/four_modes_check.py --variant unequal --steps 3000
    scripts/with-env python training/checks/four_modes_check.py --variant symmetric --steps 3000

`--methods dsrl` retrains DSRL alone and reads the other runs back from the results folder (refused
unless their variant, steps, seed and base policy are this run's). `--dsrl-reward-offset X` other
than the authors' cost is kept beside it as the run `dsrl_reward_offsetX`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from lps_train import dsrl, lpds  # noqa: E402
from lps_train.runlog import Logger, save_json  # noqa: E402
from lps_train.toy_setup import base_decoder, base_policy, mode_metrics, toy_env  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def lpds_policy(agent: lpds.LPDSAgent):
    def policy(obs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        w = agent.compose(torch.randn(len(obs), agent.latent_dim, generator=gen), agent.actor(obs))
        return agent.decoder(obs, w)
    return policy


def dsrl_policy(agent: dsrl.DSRLAgent):
    def policy(obs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return agent.decode(obs, agent.actor.sample(obs, gen)[0])
    return policy


METHODS = ("lpds", "dsrl")


def earlier_runs(out: Path, results: dict, retrained: set[str]) -> dict[str, Logger]:
    """The runs not retrained now (every run but `retrained`), from the results in `out` of the same
    settings, with the DSRL configs they were made with."""
    old = json.loads((out / "results.json").read_text())
    for key in ("variant", "steps", "seed"):
        if old[key] != results[key]:
            raise SystemExit(f"{out / 'results.json'} has {key}={old[key]!r}, this run {results[key]!r}: "
                             "retrain every method (--methods lpds dsrl)")
    if old["runs"]["base"] != results["runs"]["base"]:
        raise SystemExit("the base policy differs from the one the earlier runs steered: retrain every method")
    logs = {}
    for name, run in old["runs"].items():
        if name != "base" and name not in retrained:
            results["runs"][name] = run
            logs[name] = Logger.load_csv(out / f"{name}.csv")
            if f"{name}_config" in old:
                results[f"{name}_config"] = old[f"{name}_config"]
    return logs


def dsrl_run_name(offset: float, default: float) -> str:
    """DSRL at the authors' reward is "dsrl"; at any other cost per step a run of its own name."""
    return "dsrl" if offset == default else f"dsrl_reward_offset{offset:g}"


def run(variant: str, steps: int, deltas: list[float], seed: int, eval_every: int, eval_episodes: int,
        base_steps: int, progress: bool, out: Path | None = None, methods: tuple[str, ...] = METHODS,
        dsrl_reward_offset: float | None = None) -> dict:
    out = out or RESULTS / f"four_modes_{variant}"
    out.mkdir(parents=True, exist_ok=True)
    env = toy_env(variant)
    t0 = time.time()
    dec = base_decoder(env, "flow", steps=base_steps, seed=seed, progress=progress)
    results: dict = {"variant": variant, "steps": steps, "seed": seed, "latent_dim": dec.latent_dim,
                     "sqrt_d": math.sqrt(dec.latent_dim), "runs": {}}
    results["runs"]["base"] = {"final": mode_metrics(env, base_policy(dec), eval_episodes, seed=seed + 1)}
    common = dict(seed=seed, total_steps=steps, learning_starts=min(500, steps // 4), hidden=128,
                  batch_size=128, eval_every=eval_every, gamma=env.cfg.discount)
    # The authors' manipulation reward: 1 per executed action until the success (their robomimic
    # wrapper); with the toy's 0/1 reward alone the entropy bonus outweighs any goal.
    offset = env.cfg.execute_steps if dsrl_reward_offset is None else dsrl_reward_offset
    dsrl_name = dsrl_run_name(offset, env.cfg.execute_steps)
    retrained = ({f"lpds_delta{d:g}" for d in deltas} if "lpds" in methods else set()) | \
        ({dsrl_name} if "dsrl" in methods else set())
    partial = set(methods) != set(METHODS) and (out / "results.json").exists()
    logs: dict[str, Logger] = earlier_runs(out, results, retrained) if partial else {}
    for delta in deltas if "lpds" in methods else []:
        name = f"lpds_delta{delta:g}"
        cfg = lpds.LPDSConfig(delta=delta, **common)
        agent, log = lpds.train(cfg, env, dec, progress=progress,
                                eval_fn=lambda s, a: mode_metrics(env, lpds_policy(a), eval_episodes, seed=seed + 1))
        logs[name] = log
        results["runs"][name] = {"final": mode_metrics(env, lpds_policy(agent), eval_episodes, seed=seed + 2)}
    if "dsrl" in methods:
        cfg = dsrl.DSRLConfig(**common, reward_offset=offset)
        agent, log = dsrl.train(cfg, env, dec, progress=progress,
                                eval_fn=lambda s, a: mode_metrics(env, dsrl_policy(a), eval_episodes, seed=seed + 1))
        logs[dsrl_name] = log
        results["runs"][dsrl_name] = {"final": mode_metrics(env, dsrl_policy(agent), eval_episodes, seed=seed + 2)}
        results[f"{dsrl_name}_config"] = dataclasses.asdict(cfg)
    for name, log in logs.items():
        log.save_csv(out / f"{name}.csv")
        results["runs"][name]["latent_norm"] = log.series("latent/norm")[1].tolist()
        results["runs"][name]["latent_norm_steps"] = log.series("latent/norm")[0].tolist()
        if name.startswith("lpds"):
            results["runs"][name]["delta_sq_last"] = float(np.mean(log.series("constraint/delta_sq")[1][-5:]))
    results["wall_s"] = time.time() - t0
    save_json(out / "results.json", results)
    plot(results, logs, out)
    return results


def plot(results: dict, logs: dict[str, Logger], out: Path) -> None:
    names = list(logs)
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    for name in names:
        for ax, key in zip(axes[:3], ["modes/coverage", "modes/knn_action_entropy", "modes/success"], strict=True):
            s, v = logs[name].series(key)
            ax.plot(s, v, marker=".", label=name)
            ax.set_title(key)
        s, v = logs[name].series("latent/norm")
        axes[3].plot(s, v, label=name)
    axes[3].axhline(results["sqrt_d"], color="k", ls="--", lw=1, label="sqrt(d)")
    axes[3].set_title("latent/norm (mean ||w|| fed to the decoder)")
    for ax in axes:
        ax.set_xlabel("env step")
    axes[0].legend(fontsize=7)
    axes[3].legend(fontsize=7)
    fig.suptitle(f"four-mode toy ({results['variant']}), seed {results['seed']}")
    fig.tight_layout()
    fig.savefig(out / "modes_and_drift.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    runs = list(results["runs"])
    shares = np.array([[results["runs"][r]["final"][f"modes/share_goal{i}"] for i in range(4)] for r in runs])
    bottom = np.zeros(len(runs))
    for i in range(4):
        ax.bar(runs, shares[:, i], bottom=bottom, label=f"goal {i}")
        bottom += shares[:, i]
    ax.set_ylabel("share of episodes")
    ax.set_title("final goal shares (unreached = gap to 1)")
    ax.legend(fontsize=7)
    plt.setp(ax.get_xticklabels(), rotation=20, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "goal_shares.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="unequal", choices=["symmetric", "unequal", "nearer"])
    p.add_argument("--steps", type=int, default=3000, help="env steps per head")
    p.add_argument("--deltas", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.5, 2.0, 8.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--base-steps", type=int, default=2000)
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                   help="methods to train; the others' runs are read back from the results folder")
    p.add_argument("--dsrl-reward-offset", type=float, default=None,
                   help="DSRL's cost per env step (default: 1 per executed action, the authors' robomimic "
                        "wrapper; 0: the toy's own 0/1 reward)")
    args = p.parse_args()
    res = run(args.variant, args.steps, args.deltas, args.seed, args.eval_every, args.eval_episodes,
              args.base_steps, progress=True, methods=tuple(args.methods), dsrl_reward_offset=args.dsrl_reward_offset)
    summary = {n: {k.split("/")[1]: round(v, 3) for k, v in r["final"].items()} for n, r in res["runs"].items()}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
