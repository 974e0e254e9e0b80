"""The project's own pick_place demonstrations (`lps-train collect` of scripted operators, `.npz`)
-> the trajectory format.

A demonstration row is one policy step with the next 8 commands, the arm's relative to that row's
joints (`lps_train.pick_place.dataset`). The step's own action is the row's first command: the later
ones are the next rows' first commands (the arm's re-referenced), which is how `ChunkDataset` cuts
chunks of up to 8 steps back out. That is checked at conversion, command for command, and a file
where it does not hold is refused: its chunks could not be cut back. Rollout files (`collect
--policy`) hold the policy's chunk per env step of several policy steps and are refused too.

The row rewards count a success anywhere within the next `execute_steps` steps; a step-level
reward is 1 on the step where the task succeeds (the last row of a successful episode) and 0
elsewhere (`--lps.reward-shift -1` then charges 1 per chunk until the success, where OGBench's
relabelled data charges 1 per step in its rewards). An episode ends terminal where the
collector says it terminated (success, the object off the table) and by time-out otherwise; its
final observation is the last row's next observation, the state after the last step.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from lps_train.offline.chunks import relative_action_slices
from lps_train.offline.format import DatasetError, Entry, Trajectories, from_episodes

# Largest mismatch between a row's later commands and the next rows' own first commands: float32
# round-off of the re-referencing (rad, m), far below any command step.
COMMAND_TOL = 1e-5


def _entries(layout: dict, path: Path) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
    if not isinstance(layout.get("observation"), list) or not isinstance(layout.get("action"), list):
        raise DatasetError(f"{path}: its layout has no observation/action entry lists")
    return (tuple(Entry.from_dict(e, f"{path}: observation") for e in layout["observation"]),
            tuple(Entry.from_dict(e, f"{path}: action") for e in layout["action"]))


def _episodes(d: dict, path: Path, rereference: list[tuple[slice, slice]]) -> list[dict]:
    """Per-episode dicts of `from_episodes`; `rereference`: (action, observation) slices of the
    relative action entries and the joints they are relative to."""
    ids, chunks_all = d["episode_ids"], d["actions"]
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(ids) != 0) + 1, [len(ids)]])
    if len(np.unique(ids)) != len(bounds) - 1:
        raise DatasetError(f"{path}: `episode_ids` must be contiguous (each episode's rows together)")
    episodes = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        e = int(ids[lo])
        obs, chunks = d["observations"][lo:hi], chunks_all[lo:hi]
        # Absolute commands: row t's command i must be row t+i's first one.
        absolute = chunks.astype(np.float64)
        for a, q in rereference:
            absolute[:, :, a] += obs[:, None, q]
        for i in range(1, min(chunks.shape[1], hi - lo)):
            gap = np.abs(absolute[:-i, i] - absolute[i:, 0]).max()
            if gap > COMMAND_TOL:
                raise DatasetError(f"{path}: episode {e}: row chunks are not the rows' own commands (command {i} "
                                   f"differs by {gap:.2g}); it cannot be cut into steps")
        done, success = bool(d["dones"][hi - 1]), bool(d["episode_success"][e])
        rewards = np.zeros(hi - lo, np.float32)
        rewards[-1] = float(success)
        terminals = np.zeros(hi - lo, bool)
        terminals[-1] = done
        episodes.append({"observations": np.concatenate([obs, d["next_observations"][hi - 1:hi]]),
                         "actions": chunks[:, 0], "rewards": rewards, "terminals": terminals,
                         "success": success, "timeout": not done, "task": d["layout"].get("task", "")})
    return episodes


def convert_datasets(paths: list[str]) -> Trajectories:
    """Concatenate the episodes of one or more pick_place demonstration `.npz` files (the same
    observation and action layouts and policy rate)."""
    from lps_train.pick_place.dataset import load_dataset

    if not paths:
        raise DatasetError("no pick_place .npz given")
    shared, episodes, files = None, [], []
    for p in map(Path, paths):
        try:
            d = load_dataset(p)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise DatasetError(f"{p}: not a pick_place dataset ({e})") from None
        layout = d["layout"]
        if layout.get("quality") == "rollouts":
            raise DatasetError(f"{p}: a rollout file (`collect --policy`: one row per chunk the policy chose, "
                               "before the safety filter); only demonstrations of step-level commands convert")
        obs, act = _entries(layout, p)
        this = (obs, act, float(layout.get("policy_rate_hz", 0.0)))
        if shared is not None and this != shared:
            raise DatasetError(f"{p}: its observation/action layout or policy rate differs from "
                               f"{files[0]['file']}'s")
        shared = this
        episodes += _episodes(d, p, relative_action_slices(obs, act))
        files.append({"file": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                      "quality": layout.get("quality", ""), "episodes": int(len(d["episode_success"]))})
    obs, act, rate = shared
    return from_episodes(obs, act, episodes, rate_hz=rate, robot="fr3",
                         source={"converter": "pick_place_npz", "files": files})
