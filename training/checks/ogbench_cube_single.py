"""OGBench cube-single, the LPS paper's benchmark, end to end: regenerate the play dataset with the
`ogbench` package's own plan oracle (episodes split over processes), relabel it for each single task,
train LPS with `lps-train train-offline`'s code, and evaluate the exported ONNX decoder + head through
the runtime core's `SteeredPolicy` in `cube-single-singletask-task{1..5}-v0`; BC (the decoder alone,
latent drawn on the sphere) beside it, evaluated the same way at the same checkpoints, and with
`--algos` offline DSRL-NA through the same frozen decoder.

    # the reference budget (1,000 x 1,001-step play episodes, 1M steps, 50 episodes every 100k)
    scripts/with-env python training/checks/ogbench_cube_single.py --out runs/ogbench/cube_single \\
        --workers 16 --train-steps 1000000 --eval-every 100000 --eval-episodes 50 --seeds 0 1

    # a frozen decoder fitted once on the play data and shared by every task and seed (cheaper)
    ... --decoder-training frozen --decoder-steps 200000

    # with the offline DSRL-NA baseline through the same frozen decoder, same steps and seeds
    ... --decoder-training frozen --decoder-steps 200000 --algos lps dsrl

    # DSRL-NA alone, through a frozen decoder an earlier run fitted on the same play data
    ... --decoder-training frozen --decoder-checkpoint runs/ogbench/cube_single/runs/task1_s0/decoder.pt \\
        --algos dsrl

Writes <out>/results.json (per task and seed: each head's and BC's success at each evaluation, the final ones,
their means over tasks, the wall times, oracle env steps/s and training steps/s, the command) and
<out>/curves.png (success against gradient steps, LPS solid, BC dashed). The play data is reused
when <out>/data/play.npz exists, and each LPS run checkpoints itself every `--checkpoint-every`
updates: the same command started again after an interruption (the end of a session, a borrowed
GPU's time limit) continues every run where it stopped, e.g. on a device with a limit per command:

    timeout 540 scripts/with-env python training/checks/ogbench_cube_single.py ... ; echo $?  # 124: again
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lps_steering.core.policy import SteeredPolicy  # noqa: E402
from lps_train.cli import train_offline  # noqa: E402
from lps_train.configs import TrainOffline  # noqa: E402
from lps_train.offline import format as fmt  # noqa: E402
from lps_train.offline import ogbench  # noqa: E402
from lps_train.offline.export import export_models, load_unchecked  # noqa: E402


def evaluate_exported(folder: Path, env_name: str, episodes: int, seed: int, algo: str = "lps") -> dict[str, dict]:
    """The head (decoder + heads/<algo>.onnx) and BC (decoder alone) from the ONNX files in `folder`,
    through SteeredPolicy."""
    decoder = load_unchecked(folder / "decoder.onnx", "decoder")
    head = load_unchecked(folder / "heads" / f"{algo}.onnx", "head")
    return {label: ogbench.evaluate(SteeredPolicy(decoder, h, seed=seed), env_name, episodes, seed)
            for label, h in ((algo, head), ("bc", None))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--play-episodes", type=int, default=1000, help="play episodes to regenerate (reference: 1000)")
    p.add_argument("--episode-steps", type=int, default=1001, help="steps per play episode (reference: 1001)")
    p.add_argument("--workers", type=int, default=2, help="processes the oracle's episodes are split over")
    p.add_argument("--tasks", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--train-steps", type=int, default=1_000_000)
    p.add_argument("--decoder-training", choices=["joint", "frozen"], default="joint")
    p.add_argument("--decoder-steps", type=int, default=200_000, help="frozen: the shared decoder's steps")
    p.add_argument("--eval-every", type=int, default=100_000)
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--eval-seed", type=int, default=10_000)
    p.add_argument("--device", default="cpu", help="torch device of the training (e.g. cuda)")
    p.add_argument("--checkpoint-every", type=int, default=10_000,
                   help="LPS updates between resumable checkpoints: the same command started again continues "
                        "each run where it stopped (0: none)")
    p.add_argument("--decoder-checkpoint", default="",
                   help="frozen: a decoder.pt fitted earlier on this play data, shared by every run instead of a new fit")
    p.add_argument("--algos", nargs="+", choices=["lps", "dsrl"], default=["lps"],
                   help="heads trained per task and seed: LPS, and offline DSRL-NA through the same frozen decoder "
                        "with the same steps, seeds and evaluations")
    p.add_argument("--dsrl-hidden", type=int, default=2048, help="DSRL's MLP width (its authors': 2048)")
    args = p.parse_args(argv)
    if args.decoder_training != "frozen" and ("dsrl" in args.algos or args.decoder_checkpoint):
        p.error("--algos dsrl and --decoder-checkpoint steer a frozen decoder: add --decoder-training frozen")
    # LPS first: DSRL steers the decoder the LPS run fitted or was given.
    algos = [a for a in ("lps", "dsrl") if a in args.algos]
    if "lps" not in algos and not args.decoder_checkpoint:
        p.error("--algos dsrl alone steers an existing decoder: name it with --decoder-checkpoint")
    if args.decoder_checkpoint:
        args.decoder_steps = 0  # no decoder is fitted here, and the recorded settings say so
    command = "python training/checks/ogbench_cube_single.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    (out / "data").mkdir(parents=True, exist_ok=True)

    play = out / "data" / "play.npz"
    gen = None
    if not play.exists():
        gen = ogbench.generate_play(play, "cube-single-v0", args.play_episodes, args.episode_steps, args.workers)
        print(f"play data: {gen['rows']} rows, {gen['wall_s']:.0f} s, "
              f"{gen['env_steps_per_s_per_process']:.0f} oracle env steps/s per process", flush=True)

    shared_decoder = args.decoder_checkpoint
    results: dict = {"command": command, "generation": gen, "runs": []}
    for task in args.tasks:
        env_name = f"cube-single-singletask-task{task}-v0"
        ds = out / "data" / f"task{task}"
        fmt.save(ogbench.convert_npz(play, env_name), ds)
        for seed in args.seeds:
            run_dir = out / "runs" / f"task{task}_s{seed}"
            cfg = TrainOffline(dataset=str(ds), out=str(run_dir), name=f"cube_single_task{task}", normalize=False,
                               action_bound=1.0, device=args.device,
                               decoder_training=args.decoder_training, decoder_steps=args.decoder_steps,
                               decoder_checkpoint=shared_decoder, checkpoint_every=args.checkpoint_every)
            cfg.lps = dataclasses.replace(cfg.lps, steps=args.train_steps, seed=seed, eval_every=args.eval_every,
                                          log_every=max(1, min(cfg.lps.log_every, args.eval_every)))
            t0 = time.perf_counter()
            run = {"task": task, "seed": seed, "curve": [], "final": {}, "decoder_training": args.decoder_training}
            for algo in algos:
                if algo == "dsrl":
                    # Through the decoder the LPS run used (a copy of the shared one, or its own fit).
                    decoder = str(run_dir / "decoder.pt") if "lps" in algos else shared_decoder
                    cfg = dataclasses.replace(cfg, algo="dsrl", out=str(run_dir / "dsrl"), decoder_training="frozen",
                                              decoder_checkpoint=decoder, action_bound=0.0,
                                              dsrl_steps=args.train_steps, device="cpu", checkpoint_every=0)
                    cfg.dsrl = dataclasses.replace(cfg.dsrl, seed=seed, hidden=args.dsrl_hidden,
                                                   eval_every=args.eval_every,
                                                   log_every=max(1, min(cfg.dsrl.log_every, args.eval_every)))
                folder = Path(cfg.out)

                def eval_fn(step, agent, norm, data, env_name=env_name, seed=seed, task=task, algo=algo):
                    projection = None if algo == "lps" else ("sphere" if agent.projects else "none")
                    with tempfile.TemporaryDirectory() as tmp:
                        export_models(tmp, agent.decoder, agent.actor, norm, data, "eval", command, seed,
                                      head_type=algo, latent_projection=projection)
                        r = evaluate_exported(Path(tmp), env_name, args.eval_episodes, args.eval_seed, algo)
                    print(f"task{task} seed {seed} step {step}: {algo.upper()} {r[algo]['success_rate']:.2f}, "
                          f"BC {r['bc']['success_rate']:.2f}", flush=True)
                    return {f"eval/{algo}_success": r[algo]["success_rate"], "eval/bc_success": r["bc"]["success_rate"]}

                report = train_offline(cfg, command, eval_fn=eval_fn)
                # From the run's logged curves, which a continued run carries over from its checkpoint.
                points = {c["step"]: c for c in run["curve"]}
                for label in (algo, "bc"):
                    for step, value in zip(*report["logger"].series(f"eval/{label}_success"), strict=True):
                        points.setdefault(int(step), {"step": int(step)})[label] = float(value)
                run["curve"] = sorted(points.values(), key=lambda c: c["step"])
                final = evaluate_exported(folder, env_name, args.eval_episodes, args.eval_seed, algo)
                run["final"] |= final
                run[f"{algo}_train_wall_s"] = round(report["train_wall_s"], 1)
                run[f"{algo}_steps_per_s"] = round(report["steps_per_s"], 2)
                print(f"task{task} seed {seed}: {algo.upper()} {final[algo]['success_rate']:.2f}, "
                      f"BC {final['bc']['success_rate']:.2f}, {report['steps_per_s']:.1f} train steps/s", flush=True)
            if args.decoder_training == "frozen" and not shared_decoder:
                # The play data's observations and actions are the same for every task: one decoder serves all.
                shared_decoder = str(run_dir / "decoder.pt")
            run |= {"train_wall_s": run[f"{algos[0]}_train_wall_s"], "steps_per_s": run[f"{algos[0]}_steps_per_s"],
                    "wall_s": round(time.perf_counter() - t0, 1),
                    "decoder_from": shared_decoder if shared_decoder != str(run_dir / "decoder.pt") else "fitted here"}
            results["runs"].append(run)

    for label in (*algos, "bc"):
        per_task = [np.mean([r["final"][label]["success_rate"] for r in results["runs"] if r["task"] == t])
                    for t in args.tasks]
        results[f"mean_{label}_success"] = float(np.mean(per_task))
    results["settings"] = vars(args)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out / "curves.png")
    print(f"{out}/results.json, curves.png: mean over tasks "
          + ", ".join(f"{label.upper()} {results[f'mean_{label}_success']:.2f}" for label in (*algos, "bc")))
    return 0


def plot(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, task in enumerate(sorted({r["task"] for r in results["runs"]})):
        runs = [r for r in results["runs"] if r["task"] == task and r["curve"]]
        if not runs:
            continue
        steps = [c["step"] for c in runs[0]["curve"]]
        for label, style in (("lps", "-"), ("bc", "--"), ("dsrl", ":")):
            if label not in runs[0]["curve"][0]:
                continue
            mean = np.mean([[c[label] for c in r["curve"]] for r in runs], axis=0)
            ax.plot(steps, 100 * mean, style, color=f"C{i}", label=f"task{task} {label.upper()}")
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("success % (mean over seeds)")
    ax.set_ylim(0, 100)
    ax.set_title("OGBench cube-single: LPS (solid), BC (dashed), DSRL-NA (dotted); exported ONNX via SteeredPolicy",
                 fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
