"""Scripted demonstrations through the runtime's safety filter: operator qualities, the expert, `collect`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from lps_sim.experts import EXPERT_PRESETS, ExpertConfig, PickPlaceExpert, Waypoint
from lps_sim.tasks import FrankaTask
from tqdm import tqdm

from lps_train.pick_place.dataset import build_dataset
from lps_train.pick_place.env import controller_config
from lps_train.pick_place.layout import (
    ACTION_DIM,
    CHUNK_LENGTH,
    EXECUTE_STEPS,
    OBSERVATION_LAYOUT,
    POLICY_RATE_HZ,
    TASK,
    make_pick_place,
    named_layout,
    observation_vector,
)

# Demonstration qualities. The runtime's safety filter (acceleration 5 rad/s^2, per-joint clipping)
# cannot follow lps_sim's presets at 0.3 m/s: the clipped arm leaves the planned path near the
# cube and the expert waits for arrivals that never come. At 0.2 m/s the filtered expert succeeds.
# Per-target action noise is left out for the same reason (through the filter it stalls the
# expert's arrival checks); a sloppy operator here hesitates and misses its grasp/place points.
_PACE = {"speed": 0.2, "slow_speed": 0.08, "yaw_speed": 1.0}


QUALITIES: dict[str, ExpertConfig] = {
    "clean": ExpertConfig(**_PACE),
    "noisy": ExpertConfig(**_PACE, hesitation_prob=0.1, max_pause_steps=4, dither=0.005, imprecision=0.008),
    "sloppy": ExpertConfig(**_PACE, hesitation_prob=0.15, max_pause_steps=5, dither=0.005, imprecision=0.012),
    # A careful operator waits 0.3 s with the fingers around the cube before closing them: cloned
    # from `clean`, the base starts closing 2-3 cm above the cube's centre and half its grasps slip;
    # from `careful`, 68% succeed (above the 40-60% band the base is meant to sit in).
    "careful": ExpertConfig(**_PACE, settle_steps=3),
    # Two operators: careful ones, and careless ones in 4% of the episodes who close the gripper
    # 3 cm above the grasp point and lose the cube. Which operator a state came from is not
    # visible in it, so the base's latent decides between the two at every chunk near the grasp
    # (base 48%, LP-DS +10 as on `clean`; docs/training.md has the sweep). Not shipped.
    "mixed": ExpertConfig(**_PACE, settle_steps=3, early_close_prob=0.04, early_close=0.03),
    # lps_sim's own presets (0.3 m/s), for comparison: most of their episodes fail through the filter.
    "sim_clean": EXPERT_PRESETS["clean"],
    "sim_noisy": EXPERT_PRESETS["noisy"],
}


def expert_config(quality: str) -> ExpertConfig:
    if quality not in QUALITIES:
        raise ValueError(f"`quality` must be one of {sorted(QUALITIES)}, got {quality!r}")
    return QUALITIES[quality]


def episode_rows(observations: np.ndarray, final_observation: np.ndarray, q_targets: np.ndarray,
                 gripper: np.ndarray, shaped: np.ndarray, success: bool, terminated: bool,
                 chunk_length: int = CHUNK_LENGTH, execute_steps: int = EXECUTE_STEPS) -> dict[str, np.ndarray]:
    """Chunk-level rows of one episode of T policy steps (observation t, then the target chosen at t)."""
    t_len = len(observations)
    arm = slice(0, 7)
    idx = np.minimum(np.arange(t_len)[:, None] + np.arange(chunk_length)[None, :], t_len - 1)
    actions = np.empty((t_len, chunk_length, ACTION_DIM))
    actions[:, :, :7] = q_targets[idx] - observations[:, None, arm]
    actions[:, :, 7] = gripper[idx]
    nxt_idx = np.arange(t_len) + execute_steps
    ends = nxt_idx >= t_len  # the env step starting here reaches the end of the episode
    all_obs = np.vstack([observations, final_observation[None]])
    next_obs = all_obs[np.minimum(nxt_idx, t_len)]
    csum = np.concatenate([[0.0], np.cumsum(shaped)])
    shaped_rows = csum[np.minimum(nxt_idx, t_len)] - csum[np.arange(t_len)]
    return {
        "observations": observations.astype(np.float32), "actions": actions.astype(np.float32),
        "rewards": (ends & success).astype(np.float32), "shaped_rewards": shaped_rows.astype(np.float32),
        "next_observations": next_obs.astype(np.float32), "dones": (ends & terminated).astype(np.float32),
    }


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class RuntimeAwarePickPlaceExpert(PickPlaceExpert):
    """lps_sim's pick_place expert, grasping where the runtime lets it and without wrist flips.

    - Grasp raised by `GRASP_LIFT`: the stock expert puts the TCP at the cube's centre (2.25 cm
      above the table), a hair above the runtime's workspace floor (TCP z >= 2 cm): its commands
      dip below it, the safety filter holds, and a held gripper cannot close. 8 mm higher the
      fingers still grip the middle of the 4.5 cm cube; placement heights follow, as the expert
      measures the cube in the hand.
    - Of the two face pairs within the wrist's reach it takes the one nearest the hand's current
      yaw instead of a random one. With a random choice, a policy that samples every chunk anew
      switches between the two grasp yaws (90 degrees apart) from chunk to chunk and the wrist never
      settles (measured: 3% success of a behaviour-cloned flow decoder). The carry arc still bulges
      left or right at random, so the demonstrations stay multimodal.
    """

    GRASP_LIFT = 0.008

    def plan_grasp(self) -> list[Waypoint]:
        cube = self.task.object_position()
        yaw0 = self.task.object_yaw()
        options = [_wrap(yaw0 + k * np.pi / 2) for k in range(4)]
        options = [y for y in options if abs(y) <= np.pi / 2 + 1e-6]
        self.grasp_yaw = float(min(options, key=lambda y: abs(_wrap(y - self.yaw_cmd))))
        return self.grasp_approach(np.array([*(cube[:2] + self.grasp_error), cube[2] + self.GRASP_LIFT]),
                                   "above_cube")


@dataclass
class DemoEpisode:
    observations: np.ndarray  # [T, obs_dim] raw, at each policy step
    final_observation: np.ndarray  # [obs_dim] after the last step
    executed: np.ndarray  # [T, ACTION_DIM] arm command + gripper sent at the end of each policy step
    shaped: np.ndarray  # [T] shaped reward summed over each policy step's command periods
    success: bool
    terminated: bool
    holds: int
    limited: int


def run_demo_episode(task: FrankaTask, seed: int, quality: str | ExpertConfig = "noisy",
                     profile: str = "nominal", layout: tuple = OBSERVATION_LAYOUT) -> DemoEpisode:
    """The scripted expert at 10 Hz, interpolated to the command rate like `run_expert_episode`,
    with every command passing the runtime's `SafetyFilter` (the controller's settings, without
    jerk limiting).

    What is recorded as the action is what the robot was actually commanded: the filtered command
    at each policy step's end. Chunks built from it are executable by the runtime as they are.
    """
    cfg = expert_config(quality) if isinstance(quality, str) else quality
    n = round(1.0 / (POLICY_RATE_HZ * task.config.control_period_s))
    # Without jerk limiting (which the controller applies by default), as the shipped
    # demonstrations were recorded: `collect` reproduces them.
    safety = controller_config("unused.onnx", robot=task.config.robot, jerk_scale=None,
                               command_rate_hz=1.0 / task.config.control_period_s).safety_filter()
    obs = task.reset(seed, profile)
    agent = RuntimeAwarePickPlaceExpert(task, cfg, POLICY_RATE_HZ, seed)
    prev_q = obs["arm_joint_positions"].copy()
    observations, executed, shaped = [], [], []
    holds = limited = 0
    res = None
    while True:
        q, g = agent.act(obs)
        observations.append(observation_vector(obs, layout))
        total = 0.0
        for k in range(n):
            out = safety.filter(prev_q + (k + 1) / n * (q - prev_q), g, obs["arm_joint_positions"])
            holds += out.state == 2
            limited += out.state == 1
            grip = out.gripper if math.isfinite(out.gripper) else g
            res = task.step(out.q, grip)
            obs = res.observation
            total += res.reward
            if res.terminated or res.truncated:
                break
        executed.append(np.concatenate([out.q, [grip]]))
        shaped.append(total)
        prev_q = q
        if res.terminated or res.truncated:
            break
    return DemoEpisode(np.asarray(observations), observation_vector(task.observation(), layout), np.asarray(executed),
                       np.asarray(shaped), bool(res.success), bool(res.terminated), holds, limited)


def collect(episodes: int, quality: str = "noisy", seed: int = 0, profile: str = "nominal",
            progress: bool = True, task: FrankaTask | None = None,
            expert: ExpertConfig | None = None, observation: str = "state") -> dict[str, Any]:
    """Run the scripted expert for `episodes` seeded episodes (seeds seed..seed+episodes-1).

    `expert` replaces the quality's settings (the layout records both the name and the settings);
    `observation` names the observation layout (OBSERVATION_LAYOUTS) the rows are recorded in.
    """
    layout = named_layout(observation)
    if episodes < 1:
        raise ValueError(f"`episodes` must be >= 1, got {episodes}")
    cfg = expert if expert is not None else expert_config(quality)
    task = task if task is not None else make_pick_place()
    rows: dict[str, list[np.ndarray]] = {}
    ids, succ, seeds = [], [], []
    bar = tqdm(range(episodes), desc=f"collect {quality}", disable=not progress, mininterval=1.0)
    for ep in bar:
        s = seed + ep
        demo = run_demo_episode(task, s, cfg, profile, layout)
        r = episode_rows(demo.observations, demo.final_observation, demo.executed[:, :7], demo.executed[:, 7],
                         demo.shaped, demo.success, demo.terminated)
        for k, v in r.items():
            rows.setdefault(k, []).append(v)
        ids.append(np.full(len(demo.observations), ep, dtype=np.int64))
        succ.append(demo.success)
        seeds.append(s)
        bar.set_postfix(success=f"{np.mean(succ):.2f}")
    return build_dataset({k: np.concatenate(v) for k, v in rows.items()}, ids, succ, seeds, layout, {
        "task": TASK, "profile": profile, "quality": quality, "expert": asdict(cfg), "seed": seed,
        "grasp_lift": RuntimeAwarePickPlaceExpert.GRASP_LIFT,
        "actions_are": "commands after the runtime's SafetyFilter at each policy step's end",
        "command_rate_hz": 1.0 / task.config.control_period_s,
        "reward": "1 where the task succeeds within the env step (execute_steps policy steps), else 0",
    })
