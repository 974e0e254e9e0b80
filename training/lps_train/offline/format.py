"""The offline trajectory format: one folder, two parquet tables and a JSON header (docs/datasets.md).

    <dataset>/meta.json          layouts (observation, action, extras, images), rate, robot, counts, source
    <dataset>/steps.parquet      one row per environment step, episodes contiguous and in order
    <dataset>/episodes.parquet   one row per episode: length, final observation, success, time-out, task

A step row t of an episode holds the observation o_t, the action a_t taken at it, the reward r_t of
that step and `terminal` (no value after this step: a TD target does not bootstrap past it). The
observation after the last step of an episode is the episode's `final_observation`, so no row holds
an action without a successor. Actions are single steps; chunks are cut at load time
(`lps_train.offline.chunks`), so one file serves every chunk length.

Parquet (pyarrow) rather than .npz: typed, compressed, self-describing columns that pandas, polars
and DuckDB read as they are, and the container LeRobot datasets already use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "lps-trajectories"
VERSION = 1


class DatasetError(ValueError):
    """A dataset (or an input a converter reads) is malformed; the message names the field."""


@dataclass(frozen=True)
class Entry:
    """A named block of a vector: `size` values, with an optional runtime `source` and `units`."""

    name: str
    size: int
    source: str = ""
    units: str = ""
    mode: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("name", self.name), ("size", self.size), ("source", self.source),
                                  ("units", self.units), ("mode", self.mode)) if v != ""}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Entry:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("size"), int):
            raise DatasetError(f"{where}: each layout entry needs a string `name` and an int `size`, got {d!r}")
        if d["size"] < 1:
            raise DatasetError(f"{where}: entry {d['name']!r} has size {d['size']}, must be >= 1")
        return cls(d["name"], d["size"], d.get("source", ""), d.get("units", ""), d.get("mode", ""))


def _layout_dim(entries: tuple[Entry, ...]) -> int:
    return sum(e.size for e in entries)


@dataclass
class Trajectories:
    """A whole dataset in memory. N steps over E episodes; arrays are row-aligned with the steps."""

    observation: tuple[Entry, ...]
    action: tuple[Entry, ...]
    observations: np.ndarray  # [N, obs_dim] float32
    actions: np.ndarray  # [N, action_dim] float32
    rewards: np.ndarray  # [N] float32
    terminals: np.ndarray  # [N] bool
    episode_lengths: np.ndarray  # [E] int64, steps per episode, sum N
    final_observations: np.ndarray  # [E, obs_dim]
    success: np.ndarray  # [E] bool
    timeouts: np.ndarray  # [E] bool: ended by a time limit (the final observation still has a value)
    tasks: list[str] = field(default_factory=list)  # [E]; "" where unknown
    rate_hz: float = 0.0
    robot: str = ""
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [N, k] float32, e.g. simulator state
    images: dict[str, list[str]] = field(default_factory=dict)  # camera -> [N] references (path or path#frame)
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.observations = np.asarray(self.observations, np.float32)
        self.actions = np.asarray(self.actions, np.float32)
        self.rewards = np.asarray(self.rewards, np.float32)
        self.terminals = np.asarray(self.terminals, bool)
        self.episode_lengths = np.asarray(self.episode_lengths, np.int64)
        self.final_observations = np.asarray(self.final_observations, np.float32)
        self.success = np.asarray(self.success, bool)
        self.timeouts = np.asarray(self.timeouts, bool)
        self.extras = {k: np.asarray(v, np.float32).reshape(len(v), -1) for k, v in self.extras.items()}
        if not self.tasks:
            self.tasks = [""] * len(self.episode_lengths)
        self.validate()

    @property
    def num_steps(self) -> int:
        return len(self.rewards)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]]).astype(np.int64)

    @property
    def episode_index(self) -> np.ndarray:
        """[N]: the episode of each step."""
        return np.repeat(np.arange(self.num_episodes), self.episode_lengths)

    def validate(self) -> None:
        o, a = _layout_dim(self.observation), _layout_dim(self.action)
        n, e = len(self.rewards), len(self.episode_lengths)
        if e == 0:
            raise DatasetError("a dataset needs at least one episode")
        if len({x.name for x in self.observation}) != len(self.observation):
            raise DatasetError(f"observation layout names must be unique, got {[x.name for x in self.observation]}")
        shapes = {"observations": (self.observations.shape, (n, o)), "actions": (self.actions.shape, (n, a)),
                  "terminals": (self.terminals.shape, (n,)), "final_observations": (self.final_observations.shape, (e, o)),
                  "success": (self.success.shape, (e,)), "timeouts": (self.timeouts.shape, (e,))}
        for name, (got, want) in shapes.items():
            if got != want:
                raise DatasetError(f"`{name}` must have shape {want} (from the layouts and {n} steps in {e} episodes), "
                                   f"got {got}")
        if len(self.tasks) != e:
            raise DatasetError(f"`tasks` must have one entry per episode ({e}), got {len(self.tasks)}")
        if (self.episode_lengths < 1).any():
            raise DatasetError(f"every episode needs >= 1 step, episode {int(np.argmin(self.episode_lengths))} has "
                               f"{int(self.episode_lengths.min())}")
        if int(self.episode_lengths.sum()) != n:
            raise DatasetError(f"episode lengths add up to {int(self.episode_lengths.sum())}, but there are {n} steps")
        for name in ("observations", "actions", "rewards", "final_observations"):
            arr = getattr(self, name)
            if not np.isfinite(arr).all():
                row = int(np.argwhere(~np.isfinite(arr))[0][0])
                raise DatasetError(f"`{name}` has a non-finite value (row {row})")
        for k, v in self.extras.items():
            if len(v) != n:
                raise DatasetError(f"extra `{k}` must have {n} rows, got {len(v)}")
        for k, v in self.images.items():
            if len(v) != n:
                raise DatasetError(f"image references `{k}` must have {n} rows, got {len(v)}")
        if not np.isfinite(self.rate_hz) or self.rate_hz < 0:
            raise DatasetError(f"`rate_hz` must be a finite number >= 0 (0: unknown), got {self.rate_hz}")

    def next_observations(self) -> np.ndarray:
        """[N, obs_dim]: o_{t+1} within an episode, the final observation after its last step."""
        nxt = np.empty_like(self.observations)
        nxt[:-1] = self.observations[1:]
        ends = self.episode_starts + self.episode_lengths - 1
        nxt[ends] = self.final_observations
        return nxt

    def meta(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION,
                "observation": [x.to_dict() for x in self.observation], "action": [x.to_dict() for x in self.action],
                "extras": [{"name": k, "size": int(v.shape[1])} for k, v in self.extras.items()],
                "images": sorted(self.images), "rate_hz": float(self.rate_hz), "robot": self.robot,
                "steps": self.num_steps, "episodes": self.num_episodes, "source": self.source}


# ---------------------------------------------------------------------------------------------- files
def _vectors(arr: np.ndarray):
    import pyarrow as pa

    arr = np.ascontiguousarray(arr, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])


def save(data: Trajectories, path: str | Path) -> Path:
    """Write `data` as a dataset folder at `path` (created; existing tables are replaced)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    steps = {"episode_index": pa.array(data.episode_index, pa.int64()),
             "step": pa.array(np.concatenate([np.arange(n) for n in data.episode_lengths]), pa.int32()),
             "observation": _vectors(data.observations), "action": _vectors(data.actions),
             "reward": pa.array(data.rewards, pa.float32()), "terminal": pa.array(data.terminals, pa.bool_())}
    steps |= {f"extra.{k}": _vectors(v) for k, v in data.extras.items()}
    steps |= {f"image.{k}": pa.array(v, pa.string()) for k, v in data.images.items()}
    pq.write_table(pa.table(steps), path / "steps.parquet", compression="zstd")
    episodes = {"episode_index": pa.array(np.arange(data.num_episodes), pa.int64()),
                "length": pa.array(data.episode_lengths, pa.int64()),
                "final_observation": _vectors(data.final_observations),
                "success": pa.array(data.success, pa.bool_()), "timeout": pa.array(data.timeouts, pa.bool_()),
                "task": pa.array(data.tasks, pa.string())}
    pq.write_table(pa.table(episodes), path / "episodes.parquet", compression="zstd")
    (path / "meta.json").write_text(json.dumps(data.meta(), indent=2) + "\n")
    return path


def _column(table, name: str, where: str, width: int | None = None) -> np.ndarray:
    if name not in table.column_names:
        raise DatasetError(f"{where}: column `{name}` is missing (has {table.column_names})")
    col = table.column(name).combine_chunks()
    if width is None:
        return col.to_numpy(zero_copy_only=False)
    import pyarrow as pa

    if not pa.types.is_fixed_size_list(col.type) or col.type.list_size != width:
        raise DatasetError(f"{where}: column `{name}` must be a fixed-size list of {width} floats (the layout's "
                           f"size), got {col.type}")
    return col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, width)


def read_json(path: Path, missing: str) -> dict:
    """A dataset's JSON metadata; `missing` is the refusal when the file is not there."""
    if not path.is_file():
        raise DatasetError(missing)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None


def load(path: str | Path) -> Trajectories:
    """Read a dataset folder; every inconsistency is refused with a DatasetError naming it."""
    import pyarrow.parquet as pq

    path = Path(path)
    meta_path = path / "meta.json"
    meta = read_json(meta_path, f"{path}: not a dataset folder (no meta.json)")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise DatasetError(f"{meta_path}: `format`/`version` must be {FORMAT!r}/{VERSION}, got "
                           f"{meta.get('format')!r}/{meta.get('version')!r}")
    obs_layout = tuple(Entry.from_dict(d, f"{meta_path} observation") for d in meta.get("observation", []))
    act_layout = tuple(Entry.from_dict(d, f"{meta_path} action") for d in meta.get("action", []))
    if not obs_layout or not act_layout:
        raise DatasetError(f"{meta_path}: `observation` and `action` layouts must be non-empty lists")
    o, a = _layout_dim(obs_layout), _layout_dim(act_layout)
    steps = pq.read_table(path / "steps.parquet")
    eps = pq.read_table(path / "episodes.parquet")
    where_s, where_e = str(path / "steps.parquet"), str(path / "episodes.parquet")
    ep_index = _column(steps, "episode_index", where_s)
    lengths = _column(eps, "length", where_e).astype(np.int64)
    expected = np.repeat(np.arange(len(lengths)), lengths)
    if ep_index.shape != expected.shape or not np.array_equal(ep_index, expected):
        raise DatasetError(f"{where_s}: `episode_index` must list episodes 0..{len(lengths) - 1} contiguously with "
                           f"the lengths of episodes.parquet")
    extras = {d["name"]: _column(steps, f"extra.{d['name']}", where_s, d["size"]) for d in meta.get("extras", [])}
    images = {k: [str(x) for x in _column(steps, f"image.{k}", where_s)] for k in meta.get("images", [])}
    return Trajectories(
        observation=obs_layout, action=act_layout,
        observations=_column(steps, "observation", where_s, o), actions=_column(steps, "action", where_s, a),
        rewards=_column(steps, "reward", where_s).astype(np.float32),
        terminals=_column(steps, "terminal", where_s).astype(bool), episode_lengths=lengths,
        final_observations=_column(eps, "final_observation", where_e, o),
        success=_column(eps, "success", where_e).astype(bool), timeouts=_column(eps, "timeout", where_e).astype(bool),
        tasks=[str(x) for x in _column(eps, "task", where_e)], rate_hz=float(meta.get("rate_hz", 0.0)),
        robot=str(meta.get("robot", "")), extras=extras, images=images, source=meta.get("source", {}))


def from_episodes(observation: tuple[Entry, ...], action: tuple[Entry, ...], episodes: list[dict[str, Any]],
                  **kwargs: Any) -> Trajectories:
    """Concatenate per-episode dicts (observations [L+1, O] including the final one, actions [L, A],
    rewards [L], optional terminals [L], success, timeout, task, extras {name: [L, k]})."""
    if not episodes:
        raise DatasetError("no episodes to write")
    for i, ep in enumerate(episodes):
        if len(ep["observations"]) != len(ep["actions"]) + 1:
            raise DatasetError(f"episode {i}: needs one more observation than actions (the final one), got "
                               f"{len(ep['observations'])} observations and {len(ep['actions'])} actions")
    cat = np.concatenate
    extras = {k: cat([ep["extras"][k] for ep in episodes]) for k in episodes[0].get("extras", {})}
    return Trajectories(
        observation=observation, action=action,
        observations=cat([np.asarray(ep["observations"])[:-1] for ep in episodes]),
        actions=cat([ep["actions"] for ep in episodes]), rewards=cat([ep["rewards"] for ep in episodes]),
        terminals=cat([ep.get("terminals", np.zeros(len(ep["actions"]), bool)) for ep in episodes]),
        episode_lengths=[len(ep["actions"]) for ep in episodes],
        final_observations=np.stack([np.asarray(ep["observations"])[-1] for ep in episodes]),
        success=[bool(ep.get("success", False)) for ep in episodes],
        timeouts=[bool(ep.get("timeout", False)) for ep in episodes],
        tasks=[str(ep.get("task", "")) for ep in episodes], extras=extras, **kwargs)
