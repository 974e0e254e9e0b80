"""N seeded episodes per (head x profile) through a running eval stack, then the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import EvalConfig
from .report import write_report
from .stats import EpisodeRecord, RunSummary, summarise

Progress = Callable[[EpisodeRecord, int, int], None]


def find_launch_runner() -> Path:
    """scripts/launch_stack.py of the checkout: $LPS_ROOT, else the working directory or a parent."""
    starts = [Path(os.environ["LPS_ROOT"])] if os.environ.get("LPS_ROOT") else []
    starts += [Path.cwd(), *Path.cwd().parents]
    for root in starts:
        candidate = root / "scripts" / "launch_stack.py"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("scripts/launch_stack.py not found (set LPS_ROOT to the lps-franka checkout, or "
                            "start the eval stack yourself and leave `launch` off)")


@contextmanager
def eval_stack(config: EvalConfig, log_path: Path):
    """The eval stack as a child process for the duration of the block (SIGINT on the way out)."""
    args = [sys.executable, str(find_launch_runner()), "eval",
            f"decoder:={Path(config.decoder).resolve()}", f"task:={config.task}",
            f"profile:={config.profiles[0]}", f"seed:={config.seed}"]
    if config.namespace:
        args.append(f"namespace:={config.namespace}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"))
        try:
            yield proc
        finally:
            stop_gracefully(proc, 30.0)


def stop_gracefully(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGINT (the launcher forwards it and every node holds and shuts down), SIGKILL after `grace_s`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_evaluation(config: EvalConfig, progress: Progress | None = None,
                   on_start: Callable[[int], None] | None = None) -> tuple[list[RunSummary], list[EpisodeRecord], Path]:
    """Run every (head, profile) pair; returns the summaries, the episodes and the report path."""
    out_dir = Path(config.out_dir)
    if config.launch:
        with eval_stack(config, out_dir / "stack.log"):
            return _run(config, out_dir, progress, on_start)
    return _run(config, out_dir, progress, on_start)


def _run(config: EvalConfig, out_dir: Path, progress: Progress | None,
         on_start: Callable[[int], None] | None) -> tuple[list[RunSummary], list[EpisodeRecord], Path]:
    from .ros_client import EvaluationClient  # rclpy only here: stats and report stay ROS-free

    total = len(config.heads) * len(config.profiles) * config.episodes
    episodes: list[EpisodeRecord] = []
    summaries: list[RunSummary] = []
    with EvaluationClient(config) as client:
        client.prepare()
        dt = client.command_period()
        if on_start is not None:
            on_start(total)
        for label in config.heads:
            client.set_head(config.head_path(label))
            for profile in config.profiles:
                run: list[EpisodeRecord] = []
                for i in range(config.episodes):
                    seed = config.seed + i
                    mcap = (out_dir / "mcap" / f"{label}_{profile}_{seed}.mcap") if config.record_mcap else None
                    record = client.run_episode(label, profile, seed, dt, mcap)
                    run.append(record)
                    if progress is not None:
                        progress(record, len(episodes) + len(run), total)
                episodes += run
                summaries.append(summarise(label, profile, run))
    meta: dict[str, Any] = config.to_dict()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report = write_report(out_dir, meta, summaries, episodes, config.tcp_plots)
    return summaries, episodes, report
