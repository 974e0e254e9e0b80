"""LeRobotDataset v3 folders on disk -> the trajectory format (read with pyarrow; no lerobot install).

The v3 layout read here:

    meta/info.json                                   codebase_version "v3.*", fps, robot_type, features, data_path
    meta/episodes/chunk-XXX/file-YYY.parquet         one row per episode: episode_index, length, tasks,
                                                     dataset_from_index, dataset_to_index, data/chunk_index,
                                                     data/file_index (+ videos/<key>/... for video features)
    data/chunk-XXX/file-YYY.parquet                  one row per frame: the features, index, episode_index,
                                                     frame_index, timestamp, task_index

A LeRobot frame holds o_t and the action a_t taken at it; the observation after an episode's last
action is not recorded. The last frame of each episode therefore becomes the episode's final
observation and its action is dropped. Rewards come from `next.reward` (0 without it), success
from `next.success` (False without it), and an episode whose `next.done` is never set ends by time-out.
Camera features become references (`image.<key>` columns): the video file and the frame's
timestamp for `video` features, the data file and the frame's `index` for `image` features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lps_train.offline.format import DatasetError, Entry, Trajectories, from_episodes, read_json


def _info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    info = read_json(path, f"{root}: not a LeRobot dataset (no meta/info.json)")
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise DatasetError(f"{path}: `codebase_version` must be v3.x (LeRobotDataset v3: episodes packed in "
                           f"data/chunk-*/file-*.parquet), got {version!r}")
    for key in ("features", "data_path", "fps"):
        if key not in info:
            raise DatasetError(f"{path}: `{key}` is missing")
    return info


def _feature_entry(info: dict, key: str, where: str) -> Entry:
    feat = info["features"].get(key)
    if feat is None:
        raise DatasetError(f"{where}: feature {key!r} is not in meta/info.json (has {sorted(info['features'])})")
    if feat.get("dtype") in ("image", "video", "string"):
        raise DatasetError(f"{where}: feature {key!r} is a {feat['dtype']}, not a vector")
    shape = feat.get("shape", [])
    if len(shape) != 1:
        raise DatasetError(f"{where}: feature {key!r} must be a 1-D vector, has shape {shape}")
    return Entry(name=key, size=int(shape[0]))


def _read_tables(folder: Path, where: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(folder.glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{where}: no chunk-*/file-*.parquet under {folder}")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def _vector_column(table, key: str, size: int, where: str) -> np.ndarray:
    if key not in table.column_names:
        raise DatasetError(f"{where}: column {key!r} is missing from the data files")
    import pyarrow as pa

    col = table.column(key).combine_chunks()
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
        lengths = set(col.value_lengths().to_numpy(zero_copy_only=False).tolist()) if len(col) else {size}
        if lengths != {size}:
            got = " or ".join(map(str, sorted(lengths)))
            raise DatasetError(f"{where}: column {key!r} has {got} values per frame, info.json says {size}")
        return col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(col), size)
    if size != 1:
        raise DatasetError(f"{where}: column {key!r} has 1 value per frame, info.json says {size}")
    return col.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1)


def convert(root: str | Path, observation_keys: tuple[str, ...] = ("observation.state",),
            action_key: str = "action") -> Trajectories:
    """Read the v3 folder `root`; observations are the named vector features side by side."""
    root = Path(root)
    info = _info(root)
    where = str(root)
    obs_layout = tuple(_feature_entry(info, k, where) for k in observation_keys)
    act_layout = (_feature_entry(info, action_key, where),)
    episodes = _read_tables(root / "meta" / "episodes", f"{root}/meta/episodes").to_pydict()
    data = _read_tables(root / "data", f"{root}/data")
    for col in ("index", "episode_index"):
        if col not in data.column_names:
            raise DatasetError(f"{where}: data column {col!r} is missing")
    index = data.column("index").to_numpy()
    order = np.argsort(index, kind="stable")
    index = index[order]
    obs = np.concatenate([_vector_column(data, e.name, e.size, where)[order] for e in obs_layout], axis=1)
    act = _vector_column(data, action_key, act_layout[0].size, where)[order]
    cols = data.column_names

    def scalar(name: str, default: float) -> np.ndarray:
        return data.column(name).to_numpy(zero_copy_only=False)[order].astype(np.float64) if name in cols \
            else np.full(len(index), default)

    reward, done, success = scalar("next.reward", 0.0), scalar("next.done", 0.0), scalar("next.success", 0.0)
    task_index = scalar("task_index", -1).astype(np.int64)
    cameras = [k for k, f in info["features"].items() if f.get("dtype") in ("image", "video")]
    tasks = _task_names(root)
    rows = {int(i): r for r, i in enumerate(index)}
    out = []
    for e in np.argsort(episodes["episode_index"]):
        lo, hi = int(episodes["dataset_from_index"][e]), int(episodes["dataset_to_index"][e])
        n = hi - lo
        if n < 2:
            raise DatasetError(f"{where}: episode {episodes['episode_index'][e]} has {n} frame(s); it needs two "
                               "(an action and the observation after it)")
        if lo not in rows or hi - 1 not in rows or rows[hi - 1] - rows[lo] != n - 1:
            raise DatasetError(f"{where}: episode {episodes['episode_index'][e]}: frames {lo}..{hi - 1} are not all "
                               "in the data files")
        r0 = rows[lo]
        sl = slice(r0, r0 + n)
        ep_tasks = episodes.get("tasks", [[]] * len(episodes["episode_index"]))[e] or []
        out.append({"observations": obs[sl], "actions": act[sl][:-1], "rewards": reward[sl][:-1],
                    "terminals": np.zeros(n - 1, bool), "success": bool(success[sl].any()),
                    "timeout": not bool(done[sl].any()),
                    "task": ep_tasks[0] if ep_tasks else tasks.get(int(task_index[r0]), ""),
                    "images": {c: _image_refs(root, info, episodes, e, c, data, order, sl) for c in cameras}})
    images = {c: [ref for ep in out for ref in ep["images"][c][:-1]] for c in cameras}
    return from_episodes(obs_layout, act_layout, out, rate_hz=float(info["fps"]),
                         robot=str(info.get("robot_type") or ""), images=images,
                         source={"converter": "lerobot_v3", "root": root.name,
                                 "codebase_version": info["codebase_version"],
                                 "observation_keys": list(observation_keys), "action_key": action_key})


def _task_names(root: Path) -> dict[int, str]:
    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        return {}
    import pyarrow.parquet as pq

    t = pq.read_table(path).to_pydict()
    names = t.get("task") or t.get("__index_level_0__") or []
    return {int(i): str(n) for i, n in zip(t.get("task_index", []), names, strict=False)}


def _image_refs(root: Path, info: dict, episodes: dict, e: int, camera: str, data, order: np.ndarray,
                sl: slice) -> list[str]:
    ts = data.column("timestamp").to_numpy()[order][sl] if "timestamp" in data.column_names else np.zeros(
        sl.stop - sl.start)
    idx = data.column("index").to_numpy()[order][sl]
    if info["features"][camera]["dtype"] == "video":
        tpl = info.get("video_path", "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")
        chunk = episodes.get(f"videos/{camera}/chunk_index", [0] * (e + 1))[e]
        file = episodes.get(f"videos/{camera}/file_index", [0] * (e + 1))[e]
        start = episodes.get(f"videos/{camera}/from_timestamp", [0.0] * (e + 1))[e]
        path = tpl.format(video_key=camera, chunk_index=chunk, file_index=file)
        return [f"{path}#t={start + t:.6f}" for t in ts]
    chunk = episodes.get("data/chunk_index", [0] * (e + 1))[e]
    file = episodes.get("data/file_index", [0] * (e + 1))[e]
    path = info["data_path"].format(chunk_index=chunk, file_index=file)
    return [f"{path}#index={i}" for i in idx]
