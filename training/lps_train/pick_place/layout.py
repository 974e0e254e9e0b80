"""The pick_place models' fixed shapes: observation layouts, action entries, chunk and rates."""

from __future__ import annotations

from typing import Any

import numpy as np
from lps_sim.tasks import FrankaTask, make_task
from lps_steering.core.kinematics import tcp_position
from lps_steering.core.manifest import (
    OBSERVATION_SOURCES,
    ActionEntry,
    ActionLayout,
    ObservationEntry,
    ObservationLayout,
)

TASK = "pick_place"


# (manifest entry name, source, size): the fixed observation layout of the pick_place models.
OBSERVATION_LAYOUT = tuple((name, source, OBSERVATION_SOURCES[source]) for name, source in (
    ("arm_q", "arm_joint_positions"),
    ("gripper", "gripper_width"),
    ("tcp", "tcp_position"),
    ("object", "object_position"),
    ("target", "target_position"),
))


# `collect --observation NAME`. The joint velocities tell a policy which way the arm is already
# moving, i.e. what its previous chunk chose: a per-episode operator trait (where the grasp goes,
# when the fingers close) can then be continued instead of drawn anew at every chunk.
OBSERVATION_LAYOUTS = {
    "state": OBSERVATION_LAYOUT,
    "state_velocity": (*OBSERVATION_LAYOUT, ("arm_dq", "arm_joint_velocities", OBSERVATION_SOURCES["arm_joint_velocities"])),
}


ACTION_ENTRIES = (("arm_delta", 7, "rad", "joint_position_delta"), ("gripper", 1, "m", "gripper_width"))


OBS_DIM = sum(size for _, _, size in OBSERVATION_LAYOUT)


ACTION_DIM = sum(size for _, size, _, _ in ACTION_ENTRIES)


CHUNK_LENGTH = 8


EXECUTE_STEPS = 4


POLICY_RATE_HZ = 10.0


LATENT_DIM = CHUNK_LENGTH * ACTION_DIM


def make_pick_place(**overrides: Any) -> FrankaTask:
    """The pick_place task as learned and evaluated here: lps_sim's own config (its 25 s episode
    limit is shared with the ROS bridge), unless overridden."""
    return make_task(TASK, **overrides)


def observation_vector(obs: dict[str, np.ndarray], layout: tuple = OBSERVATION_LAYOUT) -> np.ndarray:
    """A task observation dict -> the raw vector in `layout` order, as the runtime builds it."""
    parts = []
    for _, source, size in layout:
        value = tcp_position(obs["arm_joint_positions"]) if source == "tcp_position" else obs[source]
        value = np.asarray(value, dtype=np.float64).reshape(-1)
        if value.shape != (size,):
            raise ValueError(f"observation `{source}` must have {size} values, got {value.shape[0]}")
        parts.append(value)
    return np.concatenate(parts)


def named_layout(name: str) -> tuple:
    if name not in OBSERVATION_LAYOUTS:
        raise ValueError(f"observation layout must be one of {sorted(OBSERVATION_LAYOUTS)}, got {name!r}")
    return OBSERVATION_LAYOUTS[name]


def layout_of(entries: list[dict] | None) -> tuple:
    """The (name, source, size) layout a dataset or checkpoint recorded (None: the default)."""
    if not entries:
        return OBSERVATION_LAYOUT
    return tuple((e["name"], e["source"], int(e["size"])) for e in entries)


def entry_slice(name: str, layout: tuple = OBSERVATION_LAYOUT) -> slice:
    """Where the entry `name` (e.g. "object") sits in an observation vector of `layout`."""
    start = 0
    for entry, _, size in layout:
        if entry == name:
            return slice(start, start + size)
        start += size
    raise KeyError(name)


def layout_entries(layout: tuple) -> list[dict]:
    return [{"name": n, "source": s, "size": z} for n, s, z in layout]


def observation_layout(mean: np.ndarray, std: np.ndarray, layout: tuple = OBSERVATION_LAYOUT) -> ObservationLayout:
    """The manifest's observation layout with normalisation statistics [obs_dim] each."""
    entries, offset = [], 0
    for name, source, size in layout:
        entries.append(ObservationEntry(name, source, size, np.asarray(mean[offset:offset + size]).tolist(),
                                        np.asarray(std[offset:offset + size]).tolist()))
        offset += size
    return ObservationLayout(entries=entries)


def action_layout(mean: np.ndarray, std: np.ndarray) -> ActionLayout:
    return ActionLayout(entries=[ActionEntry(*e) for e in ACTION_ENTRIES],
                        mean=np.asarray(mean).tolist(), std=np.asarray(std).tolist())
