"""N seeded episodes per (head x profile) through a running eval stack, then the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from .config import EvalConfig
from .journal import Journal, episode_key, journal_episodes
from .report import load_twin, write_report
from .stats import (
    EpisodeRecord,
    PairedComparison,
    RunSummary,
    paired_comparison,
    perception_losses,
    summarise,
    twin_comparisons,
)

Progress = Callable[[EpisodeRecord, int, int], None]
STACK_STARTUP_S = 180.0  # a stack launched here may take this long to answer (loaded machine)
MAX_DOMAIN_ID = 232  # the largest ROS domain id Fast DDS and Cyclone map to valid ports on Linux
# Fast DDS's built-in shared-memory segment: a colour frame larger than this crosses between the
# bridge and object_perception as UDP fragments, and in lock-step some arrive after the bridge
# stopped waiting for their report (bench/bench_bridge_lockstep.py: 7 of 42 frames at 640 x 480).
BUILTIN_SHM_SEGMENT_BYTES = 512 * 1024
FASTDDS_PROFILE = Path("config") / "fastdds_localhost.xml"


def find_launch_runner() -> Path:
    """launch_stack.py: from $LPS_ROOT/scripts when set (a checkout), else the one installed in
    lps_steering's share with the stack descriptions (independent of the working directory)."""
    if os.environ.get("LPS_ROOT"):
        candidate = Path(os.environ["LPS_ROOT"]) / "scripts" / "launch_stack.py"
        if candidate.is_file():
            return candidate
        raise FileNotFoundError(f"{candidate} not found: LPS_ROOT must be the lps-franka checkout")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        candidate = Path(get_package_share_directory("lps_steering")) / "launch" / "launch_stack.py"
    except PackageNotFoundError:
        candidate = None
    if candidate is None or not candidate.is_file():
        raise FileNotFoundError("launch_stack.py is not installed in lps_steering's share (rebuild the "
                                "workspace, or set LPS_ROOT to the lps-franka checkout, or start the "
                                "eval stack yourself and leave `launch` off)")
    return candidate


def _wants_shm_profile(config: EvalConfig, env: dict[str, str]) -> bool:
    """The stack streams colour frames larger than Fast DDS's built-in segment, and the caller chose
    neither a profile nor another middleware."""
    width, height = config.camera_size
    return (config.perception and width * height * 3 > BUILTIN_SHM_SEGMENT_BYTES
            and "FASTDDS_DEFAULT_PROFILES_FILE" not in env
            and env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") == "rmw_fastrtps_cpp")


def image_transport_env(config: EvalConfig, env: dict[str, str], root: Path) -> str | None:
    """Point Fast DDS at the shared-memory profile under `root` (the checkout or lps_steering's share)
    where `_wants_shm_profile`. Returns the profile set, or None."""
    profile = root / FASTDDS_PROFILE
    if not _wants_shm_profile(config, env) or not profile.is_file():
        return None
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    return str(profile)


@contextmanager
def eval_stack(config: EvalConfig, log_path: Path, domain_id: int | None = None):
    """The eval stack as a child process for the duration of the block (SIGINT on the way out).

    `domain_id` puts the stack in that ROS domain instead of the inherited ROS_DOMAIN_ID.
    """
    runner = find_launch_runner()
    args = [sys.executable, str(runner), "--stop-with-parent", "eval",
            f"decoder:={Path(config.decoder).resolve()}", f"task:={config.task}",
            f"profile:={config.profiles[0]}", f"seed:={config.seed}"]
    if config.namespace:
        args.append(f"namespace:={config.namespace}")
    if config.auto_resume_after_stale:
        args.append("auto_resume_after_stale:=true")
    if config.perception_hold_unseen_s:
        args.append(f"perception_hold_unseen_s:={config.perception_hold_unseen_s:g}")
    if config.perception:
        args += ["perception:=true", f"camera_width:={config.camera_size[0]}",
                 f"camera_height:={config.camera_size[1]}"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
        if domain_id is not None:
            env["ROS_DOMAIN_ID"] = str(domain_id)
        root = runner.resolve().parents[1]
        profile = image_transport_env(config, env, root)
        if profile:
            log.write(f"FASTDDS_DEFAULT_PROFILES_FILE={profile} (colour frames larger than Fast DDS's built-in "
                      "shared-memory segment)\n")
        elif _wants_shm_profile(config, env):
            log.write(f"warning: no {FASTDDS_PROFILE} under {root} (rebuild the workspace, or set LPS_ROOT to "
                      "the checkout): colour frames cross as UDP fragments and some may reach object_perception after the bridge stopped "
                      "waiting for them\n")
        log.flush()
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
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


def worker_domains(workers: int, base: int | None = None) -> list[int]:
    """ROS domain of each worker: ROS_DOMAIN_ID and the ones after it."""
    first = int(os.environ.get("ROS_DOMAIN_ID", "0")) if base is None else base
    if first < 0 or first + workers - 1 > MAX_DOMAIN_ID:
        raise ValueError(f"{workers} eval workers need ROS domains {first}..{first + workers - 1}, "
                         f"but domain ids must lie in 0..{MAX_DOMAIN_ID} (set ROS_DOMAIN_ID lower)")
    return [first + k for k in range(workers)]


class EvaluationResult(NamedTuple):
    summaries: list[RunSummary]  # one per (head, profile) run, in config order
    comparisons: list[PairedComparison]  # every other head against the reference, per profile
    episodes: list[EpisodeRecord]  # run by run, in seed order
    report: Path  # report.md


def run_evaluation(config: EvalConfig, progress: Progress | None = None,
                   on_start: Callable[[int], None] | None = None) -> EvaluationResult:
    """Run every (head, profile) pair, then write the report."""
    out_dir = Path(config.out_dir)
    if config.ground_truth and not Path(config.ground_truth).is_file():
        # Before any episode: the twin is an earlier evaluation's output (make demo runs it first).
        raise FileNotFoundError(f"`ground_truth`: {config.ground_truth} does not exist; run the evaluation "
                                "without perception first (same heads, profiles and seeds)")
    twin = load_twin(config.ground_truth, config.task) if config.ground_truth else []
    total = sum(n for _, _, n in config.runs())
    journal = Journal(out_dir, config, config.resume)
    skip = journal.done()
    if on_start is not None:
        on_start(total)
    episodes: list[EpisodeRecord] = list(journal.episodes)
    lock = threading.Lock()

    def done(record: EpisodeRecord) -> None:
        journal.append(record)
        with lock:
            episodes.append(record)
            if progress is not None:
                progress(record, len(episodes), total)

    def shard(k: int, domain: int | None) -> None:
        if not any(_share(config, k, skip).values()):
            return  # a resumed evaluation may leave a worker nothing: no stack for it
        if not config.launch:
            _run_shard(config, out_dir, k, done, skip, domain)
            return
        log = out_dir / ("stack.log" if config.workers == 1 else f"stack{k}.log")
        with eval_stack(config, log, domain) as proc:
            def failure() -> str:
                rc = proc.poll()
                return "" if rc is None else f"the eval stack exited with code {rc}; see {log}"

            _run_shard(config, out_dir, k, done, skip, domain, failure)

    if config.workers == 1:
        shard(0, None)  # in this thread, in the inherited ROS domain: Ctrl-C lands here
    else:
        errors: list[BaseException] = []

        def worker(k: int, domain: int) -> None:
            try:
                shard(k, domain)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k, d), name=f"eval-worker-{k}")
                   for k, d in enumerate(worker_domains(config.workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    return _report(config, episodes, twin, interim=False, key=journal.key)


def report_from_journal(config: EvalConfig) -> EvaluationResult:
    """The report of the episodes already in `config.out_dir`'s journal, running none: a long
    evaluation's interim report (its journal may be growing meanwhile), or a finished one's again."""
    episodes = journal_episodes(Path(config.out_dir), config)
    if not episodes:
        raise ValueError(f"{config.out_dir}: no episode of these runs has been journaled yet")
    twin = load_twin(config.ground_truth, config.task) if config.ground_truth else []
    total = sum(n for _, _, n in config.runs())
    return _report(config, episodes, twin, interim=len(episodes) < total)


def _report(config: EvalConfig, episodes: list[EpisodeRecord], twin: list[EpisodeRecord],
            interim: bool, key: dict[str, Any] | None = None) -> EvaluationResult:
    # One summary per (head, profile), episodes in seed order whatever worker ran them.
    order = {(h, p): i for i, (h, p, _) in enumerate(config.runs())}
    episodes = sorted(episodes, key=lambda e: (order[(e.head, e.profile)], e.seed))
    by_run: dict[tuple[str, str], list[EpisodeRecord]] = {run: [] for run in order}
    for e in episodes:
        by_run[(e.head, e.profile)].append(e)
    # A finished evaluation has every run; an interim report leaves out what has no episode yet.
    summaries = [summarise(h, p, by_run[(h, p)]) for h, p in order if by_run[(h, p)]]
    reference = config.reference_head()
    comparisons = [paired_comparison(by_run[(reference, p)], by_run[(h, p)])
                   for h, p in order if h != reference and _share_a_seed(by_run[(reference, p)], by_run[(h, p)])]
    twins = twin_comparisons(twin, episodes) if twin else []
    losses = perception_losses(twin, episodes) if twin else []
    meta: dict[str, Any] = config.to_dict()
    meta["reference"] = reference
    meta["episode_key"] = key or episode_key(config)  # what a later part checks before it goes on from these
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if interim:  # results.json and report.md say they hold a part of the runs
        meta["interim"] = f"{len(episodes)} of {sum(n for _, _, n in config.runs())} episodes"
    report = write_report(Path(config.out_dir), meta, summaries, episodes, config.tcp_plots, comparisons, twins,
                          losses)
    return EvaluationResult(summaries, comparisons, episodes, report)


def _share_a_seed(a: list[EpisodeRecord], b: list[EpisodeRecord]) -> bool:
    return bool({e.seed for e in a} & {e.seed for e in b})


def _run_shard(config: EvalConfig, out_dir: Path, worker: int, done: Callable[[EpisodeRecord], None],
               skip: set[tuple[str, str, int]], domain_id: int | None = None,
               stack_failure: Callable[[], str] | None = None) -> None:
    """This worker's episodes (`_share`) of every (head, profile) run through one stack."""
    # rclpy only here: stats and report stay ROS-free.
    from .ros_client import SERVICE_TIMEOUT_S, EvaluationClient

    with EvaluationClient(config, domain_id, stack_failure) as client:
        client.prepare(STACK_STARTUP_S if config.launch else SERVICE_TIMEOUT_S)
        dt = client.command_period()
        share = _share(config, worker, skip)
        for label in config.heads:
            mine = {profile: share[(h, profile)] for h, profile in share if h == label}
            if not any(mine.values()):
                continue
            client.set_head(config.head_path(label))
            for profile in config.profiles:
                for i in mine[profile]:
                    seed = config.seed + i
                    mcap = (out_dir / "mcap" / f"{label}_{profile}_{seed}.mcap") if config.record_mcap else None
                    done(client.run_episode(label, profile, seed, dt, mcap))


def _share(config: EvalConfig, worker: int, skip: set[tuple[str, str, int]]) -> dict[tuple[str, str], list[int]]:
    """Episode indices of every (head, profile) run that `worker` runs, but those in `skip` (a
    resumed evaluation's). Run r's episode i goes to worker (i + r) mod workers: the start rotates
    from run to run, so the odd episode of odd-length runs does not always land on worker 0. Which
    worker runs a seed does not change its result (lock-step), so the split is free to choose."""
    return {(h, profile): [i for i in range(n) if (i + r) % config.workers == worker
                           and (h, profile, config.seed + i) not in skip]
            for r, (h, profile, n) in enumerate(config.runs())}
