"""Writers of small inputs in the formats the offline converters read: a LeRobotDataset v3 folder
(pyarrow, no lerobot), an OGBench .npz, and an MCAP recording of the stack's topics written with the
mcap_ros2 writer and the messages' real .msg definitions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_lerobot_v3(root: Path, lengths=(4, 3), obs_dim=3, act_dim=2, files=2, seed=0,
                     codebase_version="v3.0") -> dict[str, np.ndarray]:
    """Episodes of `lengths` frames, their frames spread over `files` data files; returns the arrays."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = sum(lengths)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    act = rng.normal(size=(n, act_dim)).astype(np.float32)
    reward = rng.normal(size=n).astype(np.float32)
    ep = np.repeat(np.arange(len(lengths)), lengths)
    frame = np.concatenate([np.arange(k) for k in lengths])
    done = np.concatenate([np.arange(k) == k - 1 for k in lengths])
    success = np.zeros(n, bool)
    success[np.cumsum(lengths)[0] - 1] = True  # episode 0 succeeds on its last frame
    info = {"codebase_version": codebase_version, "robot_type": "so100", "fps": 10, "total_episodes": len(lengths),
            "total_frames": n, "chunks_size": 1000,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": {"observation.state": {"dtype": "float32", "shape": [obs_dim], "names": None},
                         "action": {"dtype": "float32", "shape": [act_dim], "names": None},
                         "observation.images.top": {"dtype": "video", "shape": [3, 8, 8], "names": ["c", "h", "w"]},
                         "next.reward": {"dtype": "float32", "shape": [1]},
                         "next.done": {"dtype": "bool", "shape": [1]},
                         "next.success": {"dtype": "bool", "shape": [1]},
                         "timestamp": {"dtype": "float32", "shape": [1]},
                         "frame_index": {"dtype": "int64", "shape": [1]},
                         "episode_index": {"dtype": "int64", "shape": [1]},
                         "index": {"dtype": "int64", "shape": [1]},
                         "task_index": {"dtype": "int64", "shape": [1]}}}
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    file_of_episode = np.minimum(np.arange(len(lengths)) * files // len(lengths), files - 1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for f in range(files):
        rows = np.flatnonzero(file_of_episode[ep] == f)
        # Rows stored in reverse: the converter must order frames by `index`, not by file position.
        rows = rows[::-1]
        table = pa.table({
            "observation.state": pa.array(list(obs[rows])), "action": pa.array(list(act[rows])),
            "next.reward": pa.array(reward[rows]), "next.done": pa.array(done[rows]),
            "next.success": pa.array(success[rows]), "timestamp": pa.array((frame[rows] / 10).astype(np.float32)),
            "frame_index": pa.array(frame[rows]), "episode_index": pa.array(ep[rows]),
            "index": pa.array(np.arange(n)[rows]), "task_index": pa.array(np.zeros(len(rows), np.int64))})
        pq.write_table(table, root / "data" / "chunk-000" / f"file-{f:03d}.parquet")
    pq.write_table(pa.table({
        "episode_index": pa.array(np.arange(len(lengths))), "length": pa.array(np.asarray(lengths)),
        "tasks": pa.array([["stack the cube"]] * len(lengths)),
        "dataset_from_index": pa.array(starts), "dataset_to_index": pa.array(starts + np.asarray(lengths)),
        "data/chunk_index": pa.array(np.zeros(len(lengths), np.int64)), "data/file_index": pa.array(file_of_episode),
        "videos/observation.images.top/chunk_index": pa.array(np.zeros(len(lengths), np.int64)),
        "videos/observation.images.top/file_index": pa.array(np.zeros(len(lengths), np.int64)),
        "videos/observation.images.top/from_timestamp": pa.array(starts / 10.0)}),
        root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    return {"obs": obs, "act": act, "reward": reward, "lengths": np.asarray(lengths), "starts": starts}


def write_ogbench_npz(path: Path, lengths=(5, 3), seed=0, goal=(0.45, 0.1, 0.02)) -> dict[str, np.ndarray]:
    """cube-single-shaped rows (28-D observations, 5-D actions, qpos with the cube at index 14..16);
    an episode of L transitions has L + 1 rows. The cube sits at `goal` on the rows listed in `at_goal`."""
    rng = np.random.default_rng(seed)
    m = sum(k + 1 for k in lengths)
    obs = rng.normal(size=(m, 28)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(m, 5)).astype(np.float32)
    terminals = np.zeros(m, bool)
    terminals[np.cumsum([k + 1 for k in lengths]) - 1] = True
    qpos = rng.normal(size=(m, 21)).astype(np.float32)
    at_goal = np.array([2, 3, 7])  # rows (file indices) where the cube is within the tolerance
    qpos[at_goal, 14:17] = np.asarray(goal) + 0.01
    np.savez(path, observations=obs, actions=act, terminals=terminals, qpos=qpos,
             qvel=rng.normal(size=(m, 20)).astype(np.float32))
    return {"obs": obs, "act": act, "terminals": terminals, "qpos": qpos, "at_goal": at_goal}


ARM_Q0 = np.array([0.0, -0.5, 0.0, -2.2, 0.0, 1.7, 0.8])


def write_stack_mcap(path: Path, seconds=1.0, done_at=0.65, success=True, joint_names=None, seed=0,
                     namespace="") -> dict[str, np.ndarray]:
    """An episode as the sim stack's topics carry it: joint states and commands at 100 Hz, poses,
    gripper commands and task status; returns the joint positions and commands by time."""
    from lps_steering.evaluation.recording import message_definition
    from mcap_ros2.writer import Writer

    rng = np.random.default_rng(seed)
    names = joint_names or [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1", "fr3_finger_joint2"]
    ns = "/" + namespace.strip("/") if namespace else ""
    times = np.round(np.arange(0.0, seconds, 0.01), 6)
    q = ARM_Q0 + np.cumsum(rng.normal(scale=0.002, size=(len(times), 7)), axis=0)
    cmd = q + 0.01
    grip = np.where(times < 0.4, 0.08, 0.02)
    with open(path, "wb") as f:
        w = Writer(f)
        schemas = {t: w.register_msgdef(t, message_definition(t.replace("/", "/msg/", 1)))
                   for t in ("sensor_msgs/JointState", "geometry_msgs/PoseStamped", "trajectory_msgs/JointTrajectory",
                             "std_msgs/Float64", "lps_msgs/TaskStatus")}

        def header(t):
            return {"stamp": {"sec": int(t), "nanosec": int(round((t % 1) * 1e9))}, "frame_id": "base"}

        def pose(t, xyz):
            return {"header": header(t), "pose": {"position": dict(zip("xyz", xyz, strict=True)),
                                                  "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}}

        for i, t in enumerate(times):
            # The recorder logs wall-clock time, and a lock-step sim runs at its own pace: log times
            # are not the stamps' times.
            ns_t = 5_000_000_000 + int(round(2.5 * t * 1e9))
            w.write_message(f"{ns}/joint_states", schemas["sensor_msgs/JointState"],
                            {"header": header(t), "name": names, "position": [*q[i], grip[i] / 2, grip[i] / 2],
                             "velocity": [0.0] * len(names), "effort": []}, log_time=ns_t)
            w.write_message(f"{ns}/object_pose", schemas["geometry_msgs/PoseStamped"],
                            pose(t, (0.5, 0.0, 0.02 + (0.1 if t > 0.5 else 0.0))), log_time=ns_t)
            w.write_message(f"{ns}/target_pose", schemas["geometry_msgs/PoseStamped"], pose(t, (0.4, 0.2, 0.02)),
                            log_time=ns_t)
            w.write_message(f"{ns}/fr3_arm_controller/joint_trajectory", schemas["trajectory_msgs/JointTrajectory"],
                            {"header": header(0.0), "joint_names": names[:7],  # zero: "start on receipt"
                             "points": [{"positions": list(cmd[i]), "velocities": [], "accelerations": [],
                                         "effort": [], "time_from_start": {"sec": 0, "nanosec": 10_000_000}}]},
                            log_time=ns_t)
            w.write_message(f"{ns}/gripper_command", schemas["std_msgs/Float64"], {"data": float(grip[i])},
                            log_time=ns_t)
            done = bool(t >= done_at)
            w.write_message(f"{ns}/task_status", schemas["lps_msgs/TaskStatus"],
                            {"header": header(t), "task": "pick_place", "profile": "nominal", "episode_id": 1,
                             "seed": seed, "step": i, "sim_time": float(t), "reward": 0.0,
                             "sparse_reward": 1.0 if (done and success) else 0.0, "success": done and success,
                             "done": done, "termination": ("success" if success else "failure") if done else ""},
                            log_time=ns_t)
        w.finish()
    return {"times": times, "q": q, "cmd": cmd, "grip": grip}
