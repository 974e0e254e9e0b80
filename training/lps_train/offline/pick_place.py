"""The project's own pick_place datasets (`lps-train collect`, `.npz`) -> the trajectory format.

A pick_place row is one policy step with the next 8 commands relative to that row's arm joints
(`lps_train.pick_place.dataset`). The step's own action is the chunk's first command: the later
ones are the next rows' first commands, re-referenced, which is how `ChunkDataset` cuts them again
(checked at conversion: a dataset whose chunks are not its rows' own commands is refused, since
it could not be cut back into the same chunks).

The row rewards count a success anywhere within the next `execute_steps` steps; a step-level
reward is 1 on the step where the task succeeds (the last row of a successful episode) and 0
elsewhere, so `--lps.reward-shift -1` gives OGBench's {-1, 0}. An episode ends terminal where the
collector says it terminated (success, the object off the table) and by time-out otherwise; its
final observation is the last row's next observation, the state after the last step.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lps_train.offline.format import DatasetError, Entry, Trajectories, from_episodes

# Largest mismatch (rad) between a row's later commands and the next rows' first commands: float32
# round-off of the re-referencing, far below any joint command step.
REREFERENCE_TOL = 1e-5


def _entries(layout: dict, path: Path) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
    try:
        obs = tuple(Entry(e["name"], int(e["size"]), e["source"]) for e in layout["observation"])
        act = tuple(Entry(e["name"], int(e["size"]), units=e.get("units", ""), mode=e.get("mode", ""))
                    for e in layout["action"])
    except (KeyError, TypeError) as e:
        raise DatasetError(f"{path}: its layout has no usable observation/action entries ({e})") from None
    return obs, act


def _episodes(d: dict, path: Path, a: slice, q: slice) -> list[dict]:
    """Per-episode dicts of `from_episodes`; `a`: the joint-delta action entry, `q`: the arm joints."""
    ids = d["episode_ids"]
    order = np.flatnonzero(np.diff(ids) != 0) + 1
    bounds = np.concatenate([[0], order, [len(ids)]])
    if len(np.unique(ids)) != len(bounds) - 1:
        raise DatasetError(f"{path}: `episode_ids` must be contiguous (each episode's rows together)")
    episodes = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        e = int(ids[lo])
        obs, chunks = d["observations"][lo:hi], d["actions"][lo:hi]
        # Row t's command i (relative to q_t) must be row t+i's first command (relative to q_{t+i}).
        for i in range(1, min(chunks.shape[1], hi - lo)):
            later = chunks[:-i, i, a] + obs[:-i, q]
            own = chunks[i:, 0, a] + obs[i:, q]
            if np.abs(later - own).max() > REREFERENCE_TOL:
                raise DatasetError(f"{path}: episode {e}: row chunks are not the rows' own commands (command {i} "
                                   f"differs by {np.abs(later - own).max():.2g} rad); it cannot be cut into steps")
        done, success = bool(d["dones"][hi - 1]), bool(d["episode_success"][e])
        rewards = np.zeros(hi - lo, np.float32)
        rewards[-1] = float(success)
        terminals = np.zeros(hi - lo, bool)
        terminals[-1] = done
        episodes.append({"observations": np.concatenate([obs, d["next_observations"][hi - 1:hi]]),
                         "actions": chunks[:, 0], "rewards": rewards, "terminals": terminals,
                         "success": success, "timeout": not done, "task": d["layout"].get("task", "")})
    return episodes


def _slice_of(entries: tuple[Entry, ...], key: str, value: str, path: Path) -> slice:
    i = 0
    for e in entries:
        if getattr(e, key) == value:
            return slice(i, i + e.size)
        i += e.size
    raise DatasetError(f"{path}: no layout entry with {key} {value!r} (the chunks are re-referenced to it)")


def convert_datasets(paths: list[str]) -> Trajectories:
    """Concatenate the episodes of one or more pick_place `.npz` files (same observation layout)."""
    from lps_train.pick_place.dataset import load_dataset
    from lps_train.pick_place.layout import POLICY_RATE_HZ

    if not paths:
        raise DatasetError("no pick_place .npz given")
    layouts, episodes, files = None, [], []
    for p in map(Path, paths):
        try:
            d = load_dataset(p)
        except (OSError, ValueError) as e:
            raise DatasetError(f"{p}: not a pick_place dataset ({e})") from None
        entries = _entries(d["layout"], p)
        if layouts is not None and entries != layouts:
            raise DatasetError(f"{p}: its observation/action layout differs from {files[0]['file']}'s")
        layouts = entries
        episodes += _episodes(d, p, _slice_of(entries[1], "mode", "joint_position_delta", p),
                              _slice_of(entries[0], "source", "arm_joint_positions", p))
        files.append({"file": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                      "quality": d["layout"].get("quality", ""), "episodes": int(len(d["episode_success"]))})
    obs, act = layouts
    return from_episodes(obs, act, episodes, rate_hz=float(d["layout"].get("policy_rate_hz", POLICY_RATE_HZ)),
                         robot="fr3", source={"converter": "pick_place_npz", "files": files})
