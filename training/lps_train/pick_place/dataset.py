"""The pick_place dataset file, written by `save_dataset` and checked by `load_dataset`.

Demonstrations (`demos.collect`) and rollouts (`rollouts.collect_rollouts`) -> `save_dataset`, an .npz, N chunk-level rows, one per policy
step of every episode; raw units):

    observations       [N, 17] float32  arm_joint_positions 7, gripper_width 1, tcp_position 3,
                                        object_position 3, target_position 3 (OBSERVATION_LAYOUT;
                                        `collect --observation state_velocity` appends
                                        arm_joint_velocities 7: [N, 24])
    actions            [N, 8, 8] float32 the next T_a = 8 commands the robot was sent (the expert's
                                        targets after the runtime's SafetyFilter, sampled at the
                                        policy rate): 7 joint deltas (rad, relative to the row's
                                        arm joints) + gripper width (m); padded with the last one
                                        after the episode's end
    rewards            [N] float32      1.0 where the task succeeds within the row's env step
                                        (the next `execute_steps` policy steps), else 0.0
    shaped_rewards     [N] float32      the task's shaped reward summed over those steps
    next_observations  [N, 17] float32  the observation `execute_steps` policy steps later (or
                                        the last one of the episode)
    dones              [N] float32      1.0 where the episode terminated (success, object off the
                                        table) within the env step; time-limit cuts are 0
    episode_ids        [N] int64        index of the episode of the row
    episode_success    [E] bool         per episode; episode_seeds [E] int64
    layout             str (JSON)       task, profile, quality, expert config, observation sources
                                        and sizes, action entries, chunk_length, execute_steps,
                                        policy_rate_hz, command_rate_hz
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lps_train.pick_place.layout import (
    ACTION_DIM,
    ACTION_ENTRIES,
    CHUNK_LENGTH,
    EXECUTE_STEPS,
    POLICY_RATE_HZ,
    layout_entries,
    layout_of,
)

DATASET_KEYS = ("observations", "actions", "rewards", "shaped_rewards", "next_observations", "dones",
                "episode_ids", "episode_success", "episode_seeds", "layout")


def build_dataset(rows: dict[str, np.ndarray], ids: list[np.ndarray], success: list[bool], seeds: list[int],
             obs_layout: tuple, layout: dict[str, Any]) -> dict[str, Any]:
    """The dataset dict of `save_dataset`: rows, per-episode arrays, and the layout (JSON)."""
    data: dict[str, Any] = dict(rows)
    data["episode_ids"] = np.concatenate(ids)
    data["episode_success"] = np.asarray(success, dtype=bool)
    data["episode_seeds"] = np.asarray(seeds, dtype=np.int64)
    data["layout"] = json.dumps(layout | {
        "observation": layout_entries(obs_layout),
        "action": [{"name": n, "size": z, "units": u, "mode": m} for n, z, u, m in ACTION_ENTRIES],
        "chunk_length": CHUNK_LENGTH, "execute_steps": EXECUTE_STEPS, "policy_rate_hz": POLICY_RATE_HZ,
    })
    return data


def save_dataset(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: data[k] for k in DATASET_KEYS})
    return path


def load_dataset(path: str | Path) -> dict[str, Any]:
    """Load and check a dataset written by `save_dataset` (names the missing or misshapen field)."""
    with np.load(path) as z:
        missing = [k for k in DATASET_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: dataset fields {missing} missing (expected {list(DATASET_KEYS)})")
        data = {k: z[k] for k in DATASET_KEYS}
    data["layout"] = json.loads(str(data["layout"]))
    n = len(data["observations"])
    obs_dim = sum(size for _, _, size in layout_of(data["layout"].get("observation")))
    for k in ("observations", "next_observations"):
        if data[k].shape != (n, obs_dim):
            raise ValueError(f"{path}: `{k}` must be [N, {obs_dim}] (its layout's sources), got {data[k].shape}")
    if data["actions"].shape != (n, CHUNK_LENGTH, ACTION_DIM):
        raise ValueError(f"{path}: `actions` must be [N, {CHUNK_LENGTH}, {ACTION_DIM}], "
                         f"got {data['actions'].shape}")
    for k in ("rewards", "shaped_rewards", "dones", "episode_ids"):
        if data[k].shape != (n,):
            raise ValueError(f"{path}: `{k}` must be [N={n}], got {data[k].shape}")
    return data
