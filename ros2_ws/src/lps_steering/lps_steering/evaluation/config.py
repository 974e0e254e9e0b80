"""What an evaluation runs: one dataclass, read from YAML and/or the command line. No ROS."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..core.policy import NO_HEAD

MAX_WORKERS = 8


@dataclass
class EvalConfig:
    heads: dict[str, str] = field(default_factory=lambda: {"base": NO_HEAD})
    """label -> steering head .onnx path, or "none" for the frozen base policy; run in this order"""
    profiles: list[str] = field(default_factory=lambda: ["nominal"])
    """randomisation profiles (lps_sim/profiles/*.yaml); every head runs under every profile"""
    episodes: int = 10
    """episodes per (head, profile) run; episode i uses seed + i, the same seeds for every head"""
    run_episodes: dict[str, int] = field(default_factory=dict)
    """episodes of particular runs, "head/profile" -> n, fnmatch patterns ("*/nominal"; quote a
    pattern that starts with * in YAML), the last matching entry wins; other runs get `episodes`.
    Runs share their first seeds, so a run with fewer episodes is paired with the first ones of a
    longer run. Spend episodes where the question is (the reference head and the head under test,
    on the main profile)"""
    reference: str = ""
    """label of the head every other head is compared with on the same seeds (paired: Newcombe's
    interval of the difference and McNemar's mid-p); "": the first head whose path is "none",
    else the first head"""
    seed: int = 0
    """seed of the first episode"""
    task: str = "pick_place"
    """sim task (reset_episode's `task`)"""
    episode_timeout_s: float = 0.0
    """sim seconds after which the evaluator ends an episode as a timeout; 0: the task's own limit"""
    out_dir: str = "runs/eval"
    """folder for report.md, results.json, the PNG plots and (optionally) MCAP recordings"""
    record_mcap: bool = False
    """write one MCAP file per episode (task_status, joint_states, commands, telemetry)"""
    namespace: str = ""
    """ROS namespace of the stack (sim bridge and policy node)"""
    policy_node: str = "policy_node"
    """name of the policy node (its services and ~/telemetry are found under it)"""
    stall_timeout_s: float = 60.0
    """wall seconds without any task_status progress before the evaluation gives up"""
    tcp_plots: int = 3
    """episodes per (head, profile) drawn in the TCP trajectory plot"""
    launch: bool = False
    """start the eval stack (scripts/launch_stack.py eval) for this run and stop it afterwards"""
    decoder: str = ""
    """decoder .onnx, only used with `launch` (passed to the stack as decoder:=...)"""
    perception: bool = False
    """perception in the loop: the stack's `perception:=true` (the sim publishes camera images and
    not the object's pose; the robot's object_perception node closes the loop). Each episode then
    records the perception error against the sim's truth, the frames the object was not seen in and
    the holds a stale object position caused"""
    camera_size: list[int] = field(default_factory=lambda: [640, 480])
    """[width, height] of the sim camera with `perception` (the stack's camera_width/height)"""
    auto_resume_after_stale: bool = False
    """the policy node's `auto_resume_after_stale` (needs `launch`): a hold on a stale input, a
    stale object position from perception say, releases itself once the input is fresh again, where
    the robot's default waits for ~/resume (and an evaluation episode then ends held)"""
    perception_hold_unseen_s: float = 0.0
    """object_perception's `hold_unseen_s` with `perception` (needs `launch`): a frame without the
    object gets the last position seen, up to this long after the sighting; 0, the robot's default:
    nothing is published, and the policy holds once the position is stale"""
    ground_truth: str = ""
    """results.json of an evaluation of the same heads, profiles and seeds with the sim's own object
    pose: the report pairs each (head, profile) run with its ground-truth twin seed by seed"""
    resume: bool = False
    """go on from the episodes already in `out_dir` (its episodes.jsonl, written as episodes end):
    only the missing (head, profile, seed) run. Refused if they came from other heads, decoder,
    task, profiles, first seed, time-out or camera; more episodes per run than before is fine"""
    resume_from: str = ""
    """results.json of an earlier part of this evaluation (an interim report, another machine's
    run, a committed record): its episodes count as run, as a journal's do with `resume` (implied),
    and go into this journal (TCP paths thinned as results.json keeps them). Refused unless its
    `episode_key` is this evaluation's"""
    workers: int = 1
    """eval stacks run side by side (needs `launch`), each in a ROS domain of its own; episode i
    of the r-th run goes to worker (i + r) mod workers, with the same per-seed results as one stack. A
    stack's processes hand each period from one to the next, so one stack leaves cores partly idle"""

    def __post_init__(self) -> None:
        def bad(name: str, expected: str, got: object) -> ValueError:
            return ValueError(f"`{name}` must be {expected}, got {got!r}")

        if not isinstance(self.heads, dict) or not self.heads:
            raise bad("heads", "a non-empty mapping label -> head path or 'none'", self.heads)
        for label, path in self.heads.items():
            if not isinstance(path, str) or not path:
                raise bad(f"heads.{label}", "a head .onnx path or 'none'", path)
            if path != NO_HEAD and not Path(path).is_file():
                raise bad(f"heads.{label}", "an existing .onnx file", path)
        if not self.profiles or not all(isinstance(p, str) and p for p in self.profiles):
            raise bad("profiles", "a non-empty list of profile names", self.profiles)
        if not isinstance(self.episodes, int) or isinstance(self.episodes, bool) or self.episodes < 1:
            raise bad("episodes", "an integer >= 1", self.episodes)
        if not isinstance(self.run_episodes, dict):
            raise bad("run_episodes", 'a mapping "head/profile" pattern -> episodes', self.run_episodes)
        names = [f"{h}/{p}" for h in self.heads for p in self.profiles]
        for pattern, n in self.run_episodes.items():
            head, sep, profile = str(pattern).partition("/")
            if not sep or not head or not profile or "/" in profile:
                raise bad(f"run_episodes key {pattern!r}", 'a "head/profile" pattern such as "lpds/nominal" '
                          'or "*/nominal"', pattern)
            if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
                raise bad(f"run_episodes key {pattern!r}", f"a pattern matching one of the runs {names}", pattern)
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise bad(f"run_episodes[{pattern!r}]", "an integer >= 1", n)
        if self.reference and self.reference not in self.heads:
            raise bad("reference", f"one of the head labels {list(self.heads)} (or empty)", self.reference)
        most = max(n for _, _, n in self.runs())
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32 - most:
            raise bad("seed", f"an integer in [0, 2^32 - {most}) (the longest run's episodes)", self.seed)
        if not math.isfinite(self.episode_timeout_s) or self.episode_timeout_s < 0:
            raise bad("episode_timeout_s", "a finite number >= 0", self.episode_timeout_s)
        if not self.stall_timeout_s > 0:
            raise bad("stall_timeout_s", "> 0", self.stall_timeout_s)
        if not isinstance(self.workers, int) or not 1 <= self.workers <= MAX_WORKERS:
            raise bad("workers", f"an integer in [1, {MAX_WORKERS}]", self.workers)
        if self.workers > 1 and not self.launch:
            raise bad("workers", "1 unless `launch` is set (each worker starts its own stack)", self.workers)
        if (not isinstance(self.camera_size, list) or len(self.camera_size) != 2
                or not all(isinstance(v, int) and 16 <= v <= 1280 for v in self.camera_size)):
            raise bad("camera_size", "[width, height], integers in [16, 1280]", self.camera_size)
        if self.ground_truth and not self.perception:
            raise bad("ground_truth", "empty unless `perception` is set (it names the twin without perception)",
                      self.ground_truth)
        if not isinstance(self.auto_resume_after_stale, bool):
            raise bad("auto_resume_after_stale", "true or false", self.auto_resume_after_stale)
        if self.auto_resume_after_stale and not self.launch:
            raise bad("auto_resume_after_stale", "false unless `launch` is set (it is a parameter of the "
                      "stack's policy node)", self.auto_resume_after_stale)
        hold = self.perception_hold_unseen_s
        if isinstance(hold, bool) or not isinstance(hold, (int, float)) or not 0.0 <= hold <= 0.5:
            raise bad("perception_hold_unseen_s", "a number of seconds in [0, 0.5]", hold)
        if hold and not (self.perception and self.launch):
            raise bad("perception_hold_unseen_s", "0 unless `perception` and `launch` are set (it is a "
                      "parameter of the stack's object_perception)", hold)
        if self.launch and not Path(self.decoder).is_file():
            raise bad("decoder", "an existing decoder .onnx when `launch` is set", self.decoder)

    def episodes_of(self, head: str, profile: str) -> int:
        """Episodes of the run (head, profile): the last matching `run_episodes` entry, else `episodes`."""
        n = self.episodes
        for pattern, count in self.run_episodes.items():
            if fnmatch.fnmatchcase(f"{head}/{profile}", pattern):
                n = count
        return n

    def runs(self) -> list[tuple[str, str, int]]:
        """(head, profile, episodes) of every run, heads in config order, then profiles."""
        return [(h, p, self.episodes_of(h, p)) for h in self.heads for p in self.profiles]

    def reference_head(self) -> str:
        if self.reference:
            return self.reference
        return next((label for label, path in self.heads.items() if path == NO_HEAD), next(iter(self.heads)))

    def head_path(self, label: str) -> str:
        """Absolute path for the policy node, whose working directory may differ from ours."""
        path = self.heads[label]
        return path if path == NO_HEAD else str(Path(path).resolve())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | Path | None = None, **overrides: Any) -> EvalConfig:
    """YAML file (keys as the dataclass fields) with `overrides` on top; unknown keys are refused."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of EvalConfig fields, got {type(loaded).__name__}")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(EvalConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown evaluation config keys {unknown}; known: {sorted(known)}")
    return EvalConfig(**data)
