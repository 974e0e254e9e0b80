"""CLI: python -m lps_steering.evaluation [--config FILE] [overrides]; see `--help`."""

from __future__ import annotations

import argparse
import os
import sys

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # before rclpy is imported


def _heads(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    out = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"--head must be LABEL=PATH (or LABEL=none), got {item!r}")
        out[label] = path
    return out


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .config import load_config
    from .report import rich_table
    from .ros_client import EvaluationError
    from .runner import run_evaluation

    cli = argparse.ArgumentParser(prog="python -m lps_steering.evaluation",
                                  description="Seeded evaluation episodes per (head x profile) through ROS, "
                                              "with a markdown + PNG report.")
    cli.add_argument("--config", help="YAML file of EvalConfig fields (lps_steering/evaluation/config.py)")
    cli.add_argument("--head", action="append", metavar="LABEL=PATH",
                     help="head to evaluate (repeatable; PATH 'none' = base policy); replaces the config's")
    cli.add_argument("--profile", action="append", help="randomisation profile (repeatable)")
    cli.add_argument("--episodes", type=int)
    cli.add_argument("--seed", type=int)
    cli.add_argument("--task")
    cli.add_argument("--episode-timeout-s", type=float, dest="episode_timeout_s")
    cli.add_argument("--out-dir", dest="out_dir")
    cli.add_argument("--record-mcap", action="store_true", default=None, dest="record_mcap")
    cli.add_argument("--namespace")
    cli.add_argument("--launch", action="store_true", default=None,
                     help="start the eval stack (scripts/launch_stack.py eval) for the run")
    cli.add_argument("--decoder", help="decoder .onnx for --launch")
    cli.add_argument("--workers", type=int, help="eval stacks side by side (with --launch), one ROS domain each")
    opts = cli.parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and pipes: keep the table's columns readable
    try:
        config = load_config(opts.config, heads=_heads(opts.head), profiles=opts.profile,
                             episodes=opts.episodes, seed=opts.seed, task=opts.task,
                             episode_timeout_s=opts.episode_timeout_s, out_dir=opts.out_dir,
                             record_mcap=opts.record_mcap, namespace=opts.namespace, launch=opts.launch,
                             decoder=opts.decoder, workers=opts.workers)
    except (ValueError, TypeError, OSError) as exc:
        console.print(f"[red]evaluation config: {exc}")
        return 2

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("starting", total=None, last="")

        def on_start(total: int) -> None:
            bar.update(task, total=total, description="episodes")

        def on_episode(e, done: int, total: int) -> None:
            bar.update(task, completed=done, last=f"{e.head}/{e.profile} seed {e.seed}: {e.termination} "
                                                  f"({e.steps} steps)")

        try:
            summaries, _, report = run_evaluation(config, on_episode, on_start)
        except (EvaluationError, FileNotFoundError) as exc:
            console.print(f"[red]evaluation failed: {exc}")
            return 1
    console.print(rich_table(summaries))
    console.print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
