"""Every finished episode on disk as it ends, so an evaluation that stops (a closed laptop, a time
limit, Ctrl-C) goes on where it stopped with `resume`.

`episodes.jsonl` in the output folder: a first line naming what decides an episode's outcome
(`episode_key`: the heads' and decoder's file hashes, profiles, first seed, task, time-out,
perception and camera size), then one line per episode, full (TCP path included). A resumed run
reads it back, refuses it if that key differs (other heads, another task: its episodes would be
other episodes), and runs only the (head, profile, seed) it lacks. More episodes per run than
before is fine: seeds extend; fewer leave the others in the file. A run without `resume` starts a
new journal and keeps the old one beside it (`episodes.jsonl.previous`). Which worker ran a seed does not matter (lock-step), so the worker
count may change. An evaluation too long for one machine's sitting goes on elsewhere from the
results.json of its earlier part (`resume_from`), which records the same key. No ROS.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..core.manifest import sha256_file
from ..core.policy import NO_HEAD
from .config import EvalConfig
from .stats import EpisodeRecord, episode_from_dict, json_safe, read_results

JOURNAL = "episodes.jsonl"


def episode_key(config: EvalConfig) -> dict[str, Any]:
    """What an episode's outcome depends on besides its head, profile and seed."""
    key = {
        "heads": {label: (NO_HEAD if path == NO_HEAD else sha256_file(path)) for label, path in config.heads.items()},
        # Without `launch` the stack is someone else's: its decoder cannot be checked from here.
        "decoder": sha256_file(config.decoder) if config.launch else "",
        "profiles": list(config.profiles), "seed": config.seed, "task": config.task,
        "episode_timeout_s": config.episode_timeout_s, "perception": config.perception,
        "camera_size": list(config.camera_size) if config.perception else None,
    }
    # Only when set: journals written before these options stay valid.
    if config.auto_resume_after_stale:
        key["auto_resume_after_stale"] = True
    if config.perception_hold_unseen_s:
        key["perception_hold_unseen_s"] = float(config.perception_hold_unseen_s)
    return key


def record_to_json(e: EpisodeRecord) -> str:
    d = asdict(e)
    d["tcp"] = np.asarray(e.tcp, dtype=float).tolist()
    return json.dumps(json_safe(d))


def record_from_json(line: str) -> EpisodeRecord:
    return episode_from_dict(json.loads(line))


class Journal:
    """The episodes file of one output folder; `append` is thread-safe (workers share it)."""

    def __init__(self, out_dir: Path, config: EvalConfig, resume: bool) -> None:
        self.path = Path(out_dir) / JOURNAL
        self._lock = threading.Lock()
        # Hashed once, at the start: what results.json records is what the episodes were run with.
        self.key = key = episode_key(config)
        self.episodes: list[EpisodeRecord] = []
        if resume or config.resume_from:
            kept = _episodes_so_far(self.path, config, key)
            wanted = _wanted(config)
            # Episodes of a longer run stay in the file (a later resume may want them again).
            self.episodes = [e for k, e in kept.items() if k in wanted]
            self._write([json.dumps({"episode_key": key})] + [record_to_json(e) for e in kept.values()])
        else:
            if self.path.is_file() and len(self.path.read_text().splitlines()) > 1:
                # Not resuming starts afresh, but a forgotten --resume must not cost the episodes.
                self.path.replace(self.path.with_name(JOURNAL + ".previous"))
            self._write([json.dumps({"episode_key": key})])

    def _write(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        tmp.replace(self.path)

    def done(self) -> set[tuple[str, str, int]]:
        return {(e.head, e.profile, e.seed) for e in self.episodes}

    def append(self, record: EpisodeRecord) -> None:
        with self._lock, open(self.path, "a") as f:
            f.write(record_to_json(record) + "\n")
            f.flush()


def journal_episodes(out_dir: Path, config: EvalConfig) -> list[EpisodeRecord]:
    """The episodes of `config`'s runs already in `out_dir`'s journal (and in its `resume_from`),
    read without writing to it (an evaluation may be appending to it meanwhile; a line it has not
    finished is left out).

    Raises:
        FileNotFoundError: there is no journal and no `resume_from`; ValueError: either holds other episodes.
    """
    path = Path(out_dir) / JOURNAL
    if not path.is_file() and not config.resume_from:
        raise FileNotFoundError(f"{path} does not exist: no evaluation has written episodes there")
    wanted = _wanted(config)
    return [e for k, e in _episodes_so_far(path, config, episode_key(config)).items() if k in wanted]


def _episodes_so_far(path: Path, config: EvalConfig, key: dict[str, Any]) -> dict[tuple[str, str, int], EpisodeRecord]:
    """The journal's episodes at `path` (if any), then those of `resume_from` it lacks: the
    folder's own episode, with its full TCP path, comes first."""
    kept = _read(path, key) if path.is_file() else {}
    earlier = _read_results(Path(config.resume_from), key) if config.resume_from else {}
    for k, e in earlier.items():
        kept.setdefault(k, e)
    return kept


def _wanted(config: EvalConfig) -> set[tuple[str, str, int]]:
    return {(h, p, config.seed + i) for h, p, n in config.runs() for i in range(n)}


def _read_results(path: Path, key: dict[str, Any]) -> dict[tuple[str, str, int], EpisodeRecord]:
    """The episodes of an earlier part's results.json by (head, profile, seed).

    Raises:
        FileNotFoundError: no such file; ValueError: unreadable, or its episodes are not this
        evaluation's (or it does not say whose they are).
    """
    if not path.is_file():
        raise FileNotFoundError(f"`resume_from`: {path} does not exist")
    data = read_results(path)
    config = data.get("config")
    written = config.get("episode_key") if isinstance(config, dict) else None
    if written is None:
        raise ValueError(f"`resume_from`: {path} does not record whose episodes it holds (no `episode_key` "
                         "in its config): write it again with `--report-only` in its evaluation's folder")
    if written != key:
        raise ValueError(f"`resume_from`: {path} holds episodes other than this evaluation's: "
                         f"{_differences(written, key)}")
    kept: dict[tuple[str, str, int], EpisodeRecord] = {}
    for d in data.get("episodes", []):
        e = episode_from_dict(d)
        kept.setdefault((e.head, e.profile, e.seed), e)
    return kept


def _read(path: Path, key: dict[str, Any]) -> dict[tuple[str, str, int], EpisodeRecord]:
    """Every readable episode of the journal at `path` by (head, profile, seed), the first of duplicates.

    Raises:
        ValueError: the journal was written for episodes other than `key`'s.
    """
    lines = path.read_text().splitlines()
    try:
        head = json.loads(lines[0]) if lines else {}
        written = head.get("episode_key") if isinstance(head, dict) else None
    except ValueError:
        written = None
    if written != key:
        raise ValueError(f"{path} was written by an evaluation whose episodes differ from "
                         f"this one's: {_differences(written or {}, key)}; "
                         "use another `out_dir` (or, to run the evaluation afresh, leave `resume` and "
                         "`resume_from` off: the journal is then kept aside as episodes.jsonl.previous)")
    kept: dict[tuple[str, str, int], EpisodeRecord] = {}
    for line in lines[1:]:
        try:
            e = record_from_json(line)
        except (ValueError, TypeError, KeyError):
            continue  # a line cut short when the run stopped: that episode runs again
        kept.setdefault((e.head, e.profile, e.seed), e)
    return kept


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys) or "an unreadable first line"
