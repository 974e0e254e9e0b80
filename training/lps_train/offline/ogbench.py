"""OGBench manipulation data: the package's .npz layout -> the trajectory format, regeneration of a play
dataset with the package's own scripted oracle, and single-task evaluation of exported models.

The .npz layout (as OGBench's generator writes it and `ogbench.utils.load_dataset` reads it): arrays
`observations` [M, O], `actions` [M, A], `terminals` [M] (1 on the last row of each episode) and the
simulator state `qpos`, `qvel` [M, .] of each row. An episode of L transitions occupies L + 1 rows:
the last row's observation is the final one and its action is not a transition. Single-task rewards
are not stored: they are relabelled from `qpos` for a task (`--task`), as OGBench does:
r_t = (cubes at their goal in s_t) - (cubes), and s_t is absorbing when all are at their goal.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import trange

from lps_train.offline.format import DatasetError, Entry, Trajectories

CONTROL_HZ = 20.0  # OGBench manipspace: 0.05 s per action
QPOS_CUBE_START, QPOS_CUBE_STRIDE = 14, 7  # cube i's free joint in qpos (after the arm and gripper)
GOAL_TOLERANCE_M = 0.04


def cube_layout(num_cubes: int) -> tuple[Entry, ...]:
    """The state observation of OGBench's cube environments (`CubeEnv.compute_observation`)."""
    arm = (Entry("joint_pos", 6, units="rad"), Entry("joint_vel", 6, units="rad/s"),
           Entry("effector_pos", 3, units="(m - center) * 10"), Entry("effector_yaw", 2, units="cos, sin"),
           Entry("gripper_opening", 1, units="* 3"), Entry("gripper_contact", 1))
    cubes = tuple(e for i in range(num_cubes) for e in (
        Entry(f"cube{i}_pos", 3, units="(m - center) * 10"), Entry(f"cube{i}_quat", 4),
        Entry(f"cube{i}_yaw", 2, units="cos, sin")))
    return arm + cubes


ACTION_LAYOUT = (Entry("effector_delta", 5, units="normalised [-1, 1]: dx, dy, dz, dyaw, gripper", mode="delta"),)


def _num_cubes(obs_dim: int) -> int | None:
    n, rest = divmod(obs_dim - 19, 9)
    return n if rest == 0 and n >= 1 else None


def goal_positions(env_name: str) -> np.ndarray:
    """[cubes, 3]: the goal of each cube in single-task env `env_name` (what OGBench relabels with)."""
    import gymnasium
    import ogbench.manipspace  # noqa: F401  (registers the environments)

    env = gymnasium.make(env_name)
    try:
        env.reset(seed=0)
        return np.array(env.unwrapped._data.mocap_pos, np.float64)
    finally:
        env.close()


def relabel(qpos: np.ndarray, goals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rewards, success) of each row from its simulator state: OGBench's single-task relabelling."""
    n = len(goals)
    cubes = np.stack([qpos[:, QPOS_CUBE_START + i * QPOS_CUBE_STRIDE: QPOS_CUBE_START + i * QPOS_CUBE_STRIDE + 3]
                      for i in range(n)], axis=1)
    at_goal = np.linalg.norm(cubes - goals[None], axis=-1) <= GOAL_TOLERANCE_M
    return (at_goal.sum(1) - n).astype(np.float32), at_goal.all(1)


def convert_npz(path: str | Path, task: str = "", goals: np.ndarray | None = None) -> Trajectories:
    """Read an OGBench .npz; with `task` (e.g. cube-single-singletask-task2-v0), relabel its rewards."""
    path = Path(path)
    try:
        z = np.load(path)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable .npz ({e})") from None
    with z:
        missing = [k for k in ("observations", "actions", "terminals") if k not in z.files]
        if missing:
            raise DatasetError(f"{path}: OGBench arrays {missing} are missing (has {z.files})")
        obs, act = z["observations"].astype(np.float32), z["actions"].astype(np.float32)
        ends = z["terminals"].astype(bool)
        qpos = z["qpos"].astype(np.float32) if "qpos" in z.files else None
        qvel = z["qvel"].astype(np.float32) if "qvel" in z.files else None
    m = len(obs)
    if obs.ndim != 2 or act.ndim != 2 or len(act) != m or ends.shape != (m,):
        raise DatasetError(f"{path}: `observations` [M, O], `actions` [M, A] and `terminals` [M] must share M, got "
                           f"{obs.shape}, {act.shape}, {ends.shape}")
    if m == 0 or not ends[-1]:
        raise DatasetError(f"{path}: the last row must end an episode (`terminals`[-1] = 1): the file is truncated")
    last = np.flatnonzero(ends)
    first = np.concatenate([[0], last[:-1] + 1])
    if (last - first < 1).any():
        raise DatasetError(f"{path}: an episode needs >= 2 rows (a transition and its final observation); episode "
                           f"{int(np.argmax(last - first < 1))} has 1")
    step_rows = np.ones(m, bool)
    step_rows[last] = False
    rewards, terminals = np.zeros(m, np.float32), np.zeros(m, bool)
    if task:
        if qpos is None:
            raise DatasetError(f"{path}: relabelling for {task} needs the simulator state `qpos`")
        goals = goal_positions(task) if goals is None else goals
        rewards, terminals = relabel(qpos, goals)
    success_any = np.add.reduceat(terminals.astype(np.int64), first) > 0
    cubes = _num_cubes(obs.shape[1])
    layout = cube_layout(cubes) if cubes else (Entry("state", obs.shape[1]),)
    extras = {k: v[step_rows] for k, v in (("qpos", qpos), ("qvel", qvel)) if v is not None}
    return Trajectories(
        observation=layout, action=ACTION_LAYOUT if act.shape[1] == 5 else (Entry("action", act.shape[1]),),
        observations=obs[step_rows], actions=act[step_rows], rewards=rewards[step_rows],
        terminals=terminals[step_rows], episode_lengths=last - first, final_observations=obs[last],
        success=success_any, timeouts=np.ones(len(last), bool), tasks=[task] * len(last), rate_hz=CONTROL_HZ,
        robot="ur5e", extras=extras,
        source={"converter": "ogbench_npz", "file": path.name, "task": task})


# ---------------------------------------------------------------------------------------------- oracle data
def _generate_shard(args: tuple[str, int, int, int, float, float]) -> dict[str, np.ndarray]:
    """`episodes` play episodes of `steps` steps from the package's plan oracle, in one process."""
    env_name, episodes, steps, seed, noise, smoothing = args
    import gymnasium
    import ogbench.manipspace  # noqa: F401
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle

    np.random.seed(seed)  # the oracle's noise and new targets draw from numpy's global generator
    env = gymnasium.make(env_name, terminate_at_goal=False, mode="data_collection", max_episode_steps=steps)
    oracle = CubePlanOracle(env=env, noise=noise, noise_smoothing=smoothing)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "actions", "terminals", "qpos", "qvel")}
    t0 = time.perf_counter()  # the stepping alone: process start and model compilation excluded
    # One bar per process: a full play dataset takes tens of minutes.
    for e in trange(episodes, desc=f"oracle play episodes (shard {seed})", mininterval=5.0):
        ob, info = env.reset(seed=seed * 100_003 + e)
        oracle.reset(ob, info)
        done = False
        while not done:
            action = np.clip(np.asarray(oracle.select_action(ob, info)), -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if oracle.done:  # one pick-and-place finished: draw a new target and replan
                ob2, info2 = env.unwrapped.set_new_target(p_stack=0.0)
                oracle.reset(ob2, info2)
            rows["observations"].append(ob)
            rows["actions"].append(action)
            rows["terminals"].append(done)
            rows["qpos"].append(info["prev_qpos"])
            rows["qvel"].append(info["prev_qvel"])
            ob = next_ob
    stepping_s = time.perf_counter() - t0
    env.close()
    return {k: np.asarray(v, bool if k == "terminals" else np.float32) for k, v in rows.items()} | {
        "stepping_s": np.float64(stepping_s)}


def generate_play(out: str | Path, env_name: str = "cube-single-v0", episodes: int = 1000, steps: int = 1001,
                  workers: int = 1, seed: int = 0, noise: float = 0.1, smoothing: float = 0.5) -> dict[str, Any]:
    """Regenerate a play dataset with OGBench's plan oracle, episodes split over `workers` processes, into
    an .npz of OGBench's own layout. Returns timing: oracle env steps per second per process."""
    if episodes < 1 or steps < 2 or workers < 1:
        raise ValueError(f"need episodes >= 1, steps >= 2, workers >= 1, got {episodes}, {steps}, {workers}")
    per = [episodes // workers + (1 if w < episodes % workers else 0) for w in range(workers)]
    shards = [(env_name, n, steps, seed * 1000 + w, noise, smoothing) for w, n in enumerate(per) if n]
    t0 = time.perf_counter()
    if len(shards) == 1:
        parts = [_generate_shard(shards[0])]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(len(shards)) as pool:
            parts = pool.map(_generate_shard, shards)
    wall = time.perf_counter() - t0
    stepping_s = [float(p.pop("stepping_s")) for p in parts]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **data)
    rows = len(data["terminals"])
    return {"file": str(out), "rows": rows, "episodes": episodes, "workers": len(shards), "wall_s": wall,
            "env_steps_per_s_per_process": rows / sum(stepping_s)}


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate(policy, env_name: str, episodes: int, seed: int, execute_steps: int = 0) -> dict[str, Any]:
    """Success of a runtime `SteeredPolicy` in single-task env `env_name`: each inferred chunk is
    executed for `execute_steps` actions (0: the whole chunk), as the reference executes its chunks."""
    import gymnasium
    import ogbench.manipspace  # noqa: F401

    env = gymnasium.make(env_name)
    successes = []
    t0 = time.perf_counter()
    try:
        for e in range(episodes):
            policy.reseed(seed + e)
            ob, info = env.reset(seed=seed + e)
            done, success = False, False
            while not done:
                chunk = policy.infer(np.asarray(ob, np.float32)).actions
                for a in chunk[: execute_steps or len(chunk)]:
                    ob, _, terminated, truncated, info = env.step(np.clip(a, -1, 1))
                    success = success or bool(info.get("success", False))
                    done = terminated or truncated
                    if done:
                        break
            successes.append(success)
    finally:
        env.close()
    k, n = int(sum(successes)), len(successes)
    return {"env": env_name, "episodes": n, "successes": k, "success_rate": k / n if n else math.nan,
            "seed": seed, "wall_s": round(time.perf_counter() - t0, 1)}
