"""CLI: python -m lps_steering.evaluation [--config FILE] [overrides]; see `--help`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # before rclpy is imported

from .config import EvalConfig, load_config  # noqa: E402 - after the discovery range is set


def _assignments(items: list[str] | None, form: str, valid=bool) -> dict[str, str] | None:
    """NAME=VALUE options as a mapping (None when none was given); `form` names the option in errors."""
    if not items:
        return None
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not valid(value):
            raise SystemExit(f"{form}, got {item!r}")
        out[name] = value
    return out


def config_from_args(argv: list[str] | None = None) -> EvalConfig:
    """The command line's EvalConfig: the --config file with the options on top.

    Raises:
        ValueError, TypeError, OSError, yaml.YAMLError: the config is unreadable or invalid.
    """
    return config_from_options(_parser().parse_args(argv))


def _parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m lps_steering.evaluation",
                                  description="Seeded evaluation episodes per (head x profile) through ROS, "
                                              "with a markdown + PNG report.")
    cli.add_argument("--config", help="YAML file of EvalConfig fields (lps_steering/evaluation/config.py)")
    cli.add_argument("--head", action="append", metavar="LABEL=PATH",
                     help="head to evaluate (repeatable; PATH 'none' = base policy); replaces the config's")
    cli.add_argument("--profile", action="append", help="randomisation profile (repeatable)")
    cli.add_argument("--episodes", type=int, help="episodes of every run")
    cli.add_argument("--run-episodes", action="append", metavar="HEAD/PROFILE=N", dest="run_episodes",
                     help="episodes of the runs matching an fnmatch pattern (repeatable, the last match wins). "
                          "--head, --profile or --episodes without it drop the config file's run_episodes")
    cli.add_argument("--reference", help="head label every other head is compared with on the same seeds")
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
    cli.add_argument("--perception", action="store_true", default=None,
                     help="perception in the loop: the object's position from object_perception, not the sim")
    cli.add_argument("--camera-size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"), dest="camera_size",
                     help="sim camera resolution with --perception")
    cli.add_argument("--auto-resume-after-stale", action="store_true", default=None, dest="auto_resume_after_stale",
                     help="the stack's policy node releases a hold on a stale input by itself once it is fresh")
    cli.add_argument("--perception-hold-unseen-s", type=float, dest="perception_hold_unseen_s",
                     help="object_perception keeps an unseen object's last position this long (s, at most 0.5)")
    cli.add_argument("--ground-truth", dest="ground_truth",
                     help="results.json of the same runs without --perception, paired seed by seed in the report")
    cli.add_argument("--resume", action="store_true", default=None,
                     help="go on from the episodes already in --out-dir (episodes.jsonl): run only the missing ones")
    cli.add_argument("--resume-from", dest="resume_from", metavar="RESULTS_JSON",
                     help="go on from the episodes of an earlier part's results.json (implies --resume)")
    cli.add_argument("--report-only", action="store_true", dest="report_only",
                     help="run nothing: write the report of the episodes already in --out-dir (episodes.jsonl) "
                          "and --resume-from; a long evaluation's interim report, also while it runs")
    return cli


def config_from_options(opts: argparse.Namespace) -> EvalConfig:
    heads = _assignments(opts.head, "--head must be LABEL=PATH (or LABEL=none)")
    counts = _assignments(opts.run_episodes, "--run-episodes must be HEAD/PROFILE=N (fnmatch patterns)",
                          lambda v: v.strip().isdigit())
    run_episodes = None if counts is None else {k: int(v) for k, v in counts.items()}
    if run_episodes is None and (opts.head or opts.profile or opts.episodes is not None):
        run_episodes = {}  # the file's per-run counts were written for its own heads and profiles
    return load_config(opts.config, heads=heads, profiles=opts.profile, episodes=opts.episodes,
                       run_episodes=run_episodes, reference=opts.reference, seed=opts.seed, task=opts.task,
                       episode_timeout_s=opts.episode_timeout_s, out_dir=opts.out_dir,
                       record_mcap=opts.record_mcap, namespace=opts.namespace, launch=opts.launch,
                       decoder=opts.decoder, workers=opts.workers, perception=opts.perception,
                       camera_size=opts.camera_size, auto_resume_after_stale=opts.auto_resume_after_stale,
                       perception_hold_unseen_s=opts.perception_hold_unseen_s,
                       ground_truth=opts.ground_truth, resume=opts.resume, resume_from=opts.resume_from)


def _progress(console: Any) -> Any:
    """Episode progress: a live bar on a terminal, one line per episode in logs and pipes (where a
    live display shows nothing until the end)."""
    if console.is_terminal:
        return _BarProgress(console)
    return _LineProgress(console)


class _BarProgress:
    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[last]}"), console=console)

    def __enter__(self) -> _BarProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task("starting", total=None, last="")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def start(self, total: int) -> None:
        self.bar.update(self.task, total=total, description="episodes")

    def episode(self, e: Any, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, last=f"{e.head}/{e.profile} seed {e.seed}: {e.termination} "
                                                        f"({e.steps} steps)")


class _LineProgress:
    def __init__(self, console: Any) -> None:
        self.console = console

    def __enter__(self) -> _LineProgress:
        self.t0 = time.monotonic()
        self.console.print("starting the evaluation stacks")
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def start(self, total: int) -> None:
        self.console.print(f"{total} episodes")

    def episode(self, e: Any, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.t0
        seen = f", object not seen in {e.frames_unseen}/{e.frames} frames" if e.frames else ""
        self.console.print(f"[{done}/{total}] {elapsed:5.0f} s  {e.head}/{e.profile} seed {e.seed}: {e.termination} "
                           f"({e.steps} steps{seen})")


def main(argv: list[str] | None = None) -> int:
    import yaml
    from rich.console import Console

    from .report import comparison_table, rich_table
    from .ros_client import EvaluationError
    from .runner import report_from_journal, run_evaluation

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and pipes: keep the table's columns readable
    try:
        opts = _parser().parse_args(argv)
        config = config_from_options(opts)
    except (ValueError, TypeError, OSError, yaml.YAMLError) as exc:
        console.print(f"[red]evaluation config: {exc}")
        return 2

    if opts.report_only:
        try:
            result = report_from_journal(config)
        except (FileNotFoundError, ValueError) as exc:
            console.print(f"[red]no report: {exc}")
            return 1
    else:
        with _progress(console) as progress:
            try:
                result = run_evaluation(config, progress.episode, progress.start)
            except (EvaluationError, FileNotFoundError, ValueError) as exc:
                console.print(f"[red]evaluation failed: {exc}")
                return 1
    console.print(rich_table(result.summaries))
    if result.comparisons:
        console.print(comparison_table(result.comparisons))
    console.print(f"report: {result.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
