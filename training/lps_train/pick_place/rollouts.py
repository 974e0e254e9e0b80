"""Rollouts of an exported policy, recorded in the dataset format (offline data with failures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from lps_steering.core.controller import SteeringController
from tqdm import tqdm

from lps_train.pick_place.dataset import build_dataset
from lps_train.pick_place.env import ControllerEnv, controller_config
from lps_train.pick_place.layout import TASK


def collect_rollouts(decoder_path: str | Path, head_path: str | Path | str = "", episodes: int = 200,
                     seed: int = 0, profile: str = "nominal", progress: bool = True,
                     terminate_on_hold: bool = False) -> dict[str, Any]:
    """Episodes of an exported policy (ONNX decoder + optional head) in the dataset format.

    Offline RL needs failures to learn what not to do, and demonstrations that almost all succeed
    have none; rollouts of the frozen base policy have plenty, in the states it really visits.
    One row per chunk the policy chose (the env step of `ControllerEnv`); `layout.quality` is
    "rollouts". Episode k uses task seed and noise seed `seed + k`. With `terminate_on_hold` a
    chunk that the runtime's SafetyFilter refuses ends its episode as a terminal failure (reward 0),
    as in online training (`ControllerEnv`), so an offline critic sees what a refused command is worth.
    """
    if episodes < 1:
        raise ValueError(f"`episodes` must be >= 1, got {episodes}")
    env = ControllerEnv(decoder_path, profile=profile, terminate_on_hold=terminate_on_hold)
    policy_ctl = SteeringController(controller_config(decoder_path, head_path, seed=seed))
    policy_ctl.configure()
    policy = policy_ctl.policy
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "actions", "rewards", "shaped_rewards",
                                                        "next_observations", "dones")}
    ids, succ, seeds = [], [], []
    bar = tqdm(range(episodes), desc="collect rollouts", disable=not progress, mininterval=1.0)
    for ep in bar:
        s = seed + ep
        policy.reseed(s)
        obs, done, n = env.reset(s), False, 0
        while not done:
            chunk = policy.infer(obs).actions.astype(np.float64)
            nxt, r, done, info = env.step(chunk)
            for k, v in (("observations", obs), ("actions", chunk), ("rewards", r), ("shaped_rewards", info["shaped"]),
                         ("next_observations", nxt), ("dones", float(info["terminated"]))):
                rows[k].append(np.asarray(v, dtype=np.float32))
            obs, n = nxt, n + 1
        ids.append(np.full(n, ep, dtype=np.int64))
        succ.append(bool(info["success"]))
        seeds.append(s)
        bar.set_postfix(success=f"{np.mean(succ):.2f}")
    return build_dataset({k: np.stack(v) for k, v in rows.items()}, ids, succ, seeds, env.observation_layout, {
        "task": TASK, "profile": profile, "quality": "rollouts", "seed": seed, "terminate_on_hold": terminate_on_hold,
        "policy": {"decoder": str(decoder_path), "decoder_id": policy_ctl.decoder_id, "head_id": policy_ctl.head_id},
        "actions_are": "the chunk the policy chose (before the runtime's SafetyFilter)",
        "command_rate_hz": 1.0 / env.task.config.control_period_s,
        "reward": "1 where the task succeeds within the env step, else 0",
    })
