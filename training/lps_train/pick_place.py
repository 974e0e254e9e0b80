"""pick_place for learning: demonstrations, the chunk env over the runtime core, evaluation.

Everything here executes action chunks with the runtime's own code, so what is trained and
measured in Python is what the policy node does on the robot or in the ROS sim:

- observations are assembled in the manifest's order with `core.observation.ObservationAssembler`
  (``tcp_position`` is forward kinematics of the arm joints, as on the robot);
- a chunk of joint_position_delta actions becomes absolute targets relative to the arm joints of
  the observation it was inferred from, is interpolated to the command rate by
  `core.chunking.ChunkExecutor` and passes `core.safety.SafetyFilter`, all inside
  `core.controller.SteeringController`;
- `ControllerEnv` (training: the chunk comes from a torch agent) and `evaluate` (the exported ONNX
  models) both drive that controller, stepping the MuJoCo task directly, without ROS.

Demonstration dataset (`collect` -> `save_dataset`, an .npz, N chunk-level rows, one per policy
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
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lps_sim.experts import EXPERT_PRESETS, ExpertConfig, PickPlaceExpert, Waypoint
from lps_sim.experts_report import wilson_interval
from lps_sim.tasks import FrankaTask, make_task
from lps_steering.core.controller import ControllerConfig, SteeringController
from lps_steering.core.kinematics import tcp_position
from lps_steering.core.manifest import ActionEntry, ActionLayout, ObservationEntry, ObservationLayout
from lps_steering.core.policy import PolicyOutput
from tqdm import tqdm

TASK = "pick_place"
# (manifest entry name, source, size): the fixed observation layout of the pick_place models.
OBSERVATION_LAYOUT = (
    ("arm_q", "arm_joint_positions", 7),
    ("gripper", "gripper_width", 1),
    ("tcp", "tcp_position", 3),
    ("object", "object_position", 3),
    ("target", "target_position", 3),
)
# `collect --observation NAME`. The joint velocities tell a policy which way the arm is already
# moving, i.e. what its previous chunk chose: a per-episode operator trait (where the grasp goes,
# when the fingers close) can then be continued instead of drawn anew at every chunk.
OBSERVATION_LAYOUTS = {
    "state": OBSERVATION_LAYOUT,
    "state_velocity": (*OBSERVATION_LAYOUT, ("arm_dq", "arm_joint_velocities", 7)),
}
ACTION_ENTRIES = (("arm_delta", 7, "rad", "joint_position_delta"), ("gripper", 1, "m", "gripper_width"))
OBS_DIM = sum(size for _, _, size in OBSERVATION_LAYOUT)
ACTION_DIM = sum(size for _, size, _, _ in ACTION_ENTRIES)
CHUNK_LENGTH = 8
EXECUTE_STEPS = 4
LIFT_HEIGHT = 0.02  # m of cube clearance that counts as lifted (for ControllerEnv's lift_bonus)
POLICY_RATE_HZ = 10.0
LATENT_DIM = CHUNK_LENGTH * ACTION_DIM

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


def make_pick_place(**overrides: Any) -> FrankaTask:
    """The pick_place task as learned and evaluated here: lps_sim's own config (its 25 s episode
    limit is shared with the ROS bridge), unless overridden."""
    return make_task(TASK, **overrides)


def expert_config(quality: str) -> ExpertConfig:
    if quality not in QUALITIES:
        raise ValueError(f"`quality` must be one of {sorted(QUALITIES)}, got {quality!r}")
    return QUALITIES[quality]


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


# ---------------------------------------------------------------------------------------------
# Demonstrations
# ---------------------------------------------------------------------------------------------
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
    # The shipped demonstrations were recorded without jerk limiting (the controller's default
    # since): kept so that `collect` reproduces them.
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
    return _dataset({k: np.concatenate(v) for k, v in rows.items()}, ids, succ, seeds, layout, {
        "task": TASK, "profile": profile, "quality": quality, "expert": asdict(cfg), "seed": seed,
        "grasp_lift": RuntimeAwarePickPlaceExpert.GRASP_LIFT,
        "actions_are": "commands after the runtime's SafetyFilter at each policy step's end",
        "command_rate_hz": 1.0 / task.config.control_period_s,
        "reward": "1 where the task succeeds within the env step (execute_steps policy steps), else 0",
    })


def _dataset(rows: dict[str, np.ndarray], ids: list[np.ndarray], success: list[bool], seeds: list[int],
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
    return _dataset({k: np.stack(v) for k, v in rows.items()}, ids, succ, seeds, env.observation_layout, {
        "task": TASK, "profile": profile, "quality": "rollouts", "seed": seed, "terminate_on_hold": terminate_on_hold,
        "policy": {"decoder": str(decoder_path), "decoder_id": policy_ctl.decoder_id, "head_id": policy_ctl.head_id},
        "actions_are": "the chunk the policy chose (before the runtime's SafetyFilter)",
        "command_rate_hz": 1.0 / env.task.config.control_period_s,
        "reward": "1 where the task succeeds within the env step, else 0",
    })


DATASET_KEYS = ("observations", "actions", "rewards", "shaped_rewards", "next_observations", "dones",
                "episode_ids", "episode_success", "episode_seeds", "layout")


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


# ---------------------------------------------------------------------------------------------
# The controller loop over the MuJoCo task
# ---------------------------------------------------------------------------------------------
class _ChunkSlot:
    """Stands in for `SteeredPolicy` inside the controller: hands over the chunk the agent chose.

    Training decides each chunk outside the controller (a torch agent), but everything after that
    (absolute targets, interpolation, safety) must stay the controller's own code.
    """

    head_type = "external"

    def __init__(self) -> None:
        self.chunk: np.ndarray | None = None
        self.observation: np.ndarray | None = None

    def infer(self, observation: np.ndarray, images: Any = None) -> PolicyOutput:
        if self.chunk is None:
            raise RuntimeError("the controller asked for a chunk but none was supplied")
        if not np.allclose(observation, self.observation, rtol=0.0, atol=1e-9):
            raise RuntimeError("the controller replanned on another observation than the agent saw")
        actions, self.chunk = self.chunk, None
        return PolicyOutput(actions=actions, latent=np.zeros(0), delta_sq_norm=math.nan, guard_scale=math.nan,
                            latent_norm=math.nan, inference_ms=0.0)

    def reseed(self, seed: int) -> None:
        pass


@dataclass
class EpisodeResult:
    success: bool
    terminated: bool
    truncated: bool
    steps: int  # command periods
    chunks: int
    holds: int  # command periods the safety filter refused (HOLD)
    limited: int  # command periods the safety filter clipped (LIMITED)
    hold_reason: str = ""  # why the safety filter last held, if it ever did


class ControllerEpisode:
    """One task episode driven by a `SteeringController`, one command period at a time.

    `advance()` runs command periods until the controller is due to infer a new chunk (returning
    the raw observation it will infer from) or the episode ends (returning None).
    """

    def __init__(self, task: FrankaTask, controller: SteeringController) -> None:
        self.task, self.controller = task, controller
        self.dt = task.config.control_period_s

    def reset(self, seed: int, profile: str = "nominal") -> np.ndarray:
        c = self.controller
        c.executor.reset()
        c.safety.reset()
        c.resume()
        self.obs = self.task.reset(seed, profile)
        self.now = 0.0
        self._feed()
        self.result = EpisodeResult(False, False, False, 0, 0, 0, 0)
        self.done = False
        self.shaped = 0.0
        return self.raw_observation()

    def _feed(self) -> None:
        # What the decoder's layout needs, as the node subscribes to it (derived sources excluded).
        for source in self.controller.required_sources:
            self.controller.observe(source, self.obs[source], self.now)

    def raw_observation(self) -> np.ndarray:
        return np.array(self.controller.assembler.assemble(self.now))

    @property
    def needs_chunk(self) -> bool:
        return self.controller.executor.needs_replan(self.now)

    def period(self) -> None:
        """One command period: controller cycle, then one task step."""
        c = self.controller
        cyc = c.step(self.now, self.obs["arm_joint_positions"])
        if cyc.replanned:
            self.result.chunks += 1
        if cyc.safety_state == 2:
            self.result.holds += 1
            self.result.hold_reason = cyc.safety_reason
        self.result.limited += int(cyc.safety_state == 1)
        if not np.all(np.isfinite(cyc.command)):
            raise RuntimeError(f"controller produced no safe command: {cyc.safety_reason}")
        res = self.task.step(cyc.command, cyc.gripper)
        self.shaped += res.reward
        self.obs = res.observation
        self.now += self.dt
        self._feed()
        self.result.steps += 1
        if res.terminated or res.truncated:
            self.done = True
            self.result.success, self.result.terminated, self.result.truncated = (
                bool(res.success), bool(res.terminated), bool(res.truncated))

    def advance(self) -> np.ndarray | None:
        """Run until the next replan (return its raw observation) or the end (return None)."""
        while not self.done:
            self.period()
            if self.done:
                return None
            if self.needs_chunk:
                return self.raw_observation()
        return None


def controller_config(decoder_path: str | Path, head_path: str | Path | str = "", seed: int = 0,
                      **overrides: Any) -> ControllerConfig:
    """The runtime's defaults (policy_node.yaml) with execute_steps = 4 and no warm-up."""
    return ControllerConfig(decoder_path=str(decoder_path), head_path=str(head_path or ""),
                            execute_steps=EXECUTE_STEPS, seed=seed, warmup_runs=0, **overrides)


class ControllerEnv:
    """`ChunkEnv` over pick_place: one `step` = one chunk executed by the runtime's controller.

    Observations and chunks are raw units (wrap in `common.NormalizedEnv` for the agents). The
    reward is 1.0 when the task succeeds during the step (then the episode terminates), else 0;
    `info["shaped"]` carries the task's shaped reward summed over the step.

    Args:
        decoder_path: exported decoder .onnx: its manifest fixes the observation layout and the
            controller configures exactly as the node would (its ONNX session is not used here).
        profile: lps_sim randomisation profile.
    """

    action_dim, chunk_length = ACTION_DIM, CHUNK_LENGTH

    def __init__(self, decoder_path: str | Path, profile: str = "nominal", task: FrankaTask | None = None,
                 terminate_on_hold: bool = False, lift_bonus: float = 0.0) -> None:
        self.task = task if task is not None else make_pick_place()
        self.profile = profile
        if not 0.0 <= lift_bonus < 1.0:
            raise ValueError(f"`lift_bonus` must be in [0, 1) (success pays 1), got {lift_bonus}")
        # Base failures are mostly grasps that slip (the gripper closes a few cm too high); a
        # one-time reward when the cube first clears LIFT_HEIGHT puts a signal at the grasp
        # instead of 10-20 s later at the placement.
        self.lift_bonus = lift_bonus
        self._lift_paid = False
        # A hold resets chunk execution, so the controller asks for a new chunk one period later:
        # a policy stuck against a limit turns into thousands of 10 ms env steps. Ending the
        # episode there (reward 0) keeps env steps 0.4 s long and marks refused commands as failure.
        self.terminate_on_hold = terminate_on_hold
        self.controller = SteeringController(controller_config(decoder_path))
        self.controller.configure()
        manifest = self.controller.decoder.manifest
        self.observation_layout = tuple((e.name, e.source, e.size) for e in manifest.observation.entries)
        self.obs_dim = manifest.obs_dim
        self.slot = _ChunkSlot()
        self.controller.policy = self.slot  # the agent, not the ONNX session, chooses chunks
        self.episode = ControllerEpisode(self.task, self.controller)
        self._obs: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._obs = self.episode.reset(int(seed or 0), self.profile)
        self._lift_paid = False
        return self._obs.copy()

    def step(self, action_chunk: np.ndarray) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
        if self._obs is None or self.episode.done:
            raise RuntimeError("call reset() before step() (and after an episode ended)")
        chunk = np.asarray(action_chunk, dtype=np.float64)
        if chunk.shape != (CHUNK_LENGTH, ACTION_DIM):
            raise ValueError(f"`action_chunk` must have shape ({CHUNK_LENGTH}, {ACTION_DIM}), got {chunk.shape}")
        self.slot.chunk, self.slot.observation = chunk, self._obs
        ep = self.episode
        ep.shaped = 0.0
        holds_before = ep.result.holds
        nxt = ep.advance()
        if self.slot.chunk is not None:
            raise RuntimeError("the controller did not take the chunk (it was holding)")
        held = ep.result.holds > holds_before
        done = nxt is None
        if done:
            nxt = ep.raw_observation()
        self._obs = nxt
        r = ep.result
        reward = 1.0 if (done and r.success) else 0.0
        if self.lift_bonus and not self._lift_paid and self.cube_lifted():
            self._lift_paid = True
            reward += self.lift_bonus
        info = {"terminated": bool(done and r.terminated), "truncated": bool(done and r.truncated),
                "success": bool(done and r.success), "shaped": ep.shaped, "holds": r.holds, "held": held}
        if held and self.terminate_on_hold and not done:
            done = True
            info["terminated"] = True
            ep.done = True
        return nxt.copy(), reward, done, info

    def cube_lifted(self) -> bool:
        return float(self.task.object_position()[2]) - self.task.cube_half > LIFT_HEIGHT


# ---------------------------------------------------------------------------------------------
# Evaluation of exported models (the runtime path, ONNX Runtime)
# ---------------------------------------------------------------------------------------------
@dataclass
class EvalResult:
    head: str
    episodes: int
    successes: int
    wilson_low: float
    wilson_high: float
    mean_steps: float
    holds: int
    wall_s: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"success_rate": self.success_rate}


def controller_episode(decoder_path: str | Path, head_path: str | Path | str = "") -> ControllerEpisode:
    """Decoder (+ head) through the runtime's `SteeringController` on a fresh pick_place task; reseed
    `episode.controller.policy` per episode to draw that episode's noise."""
    controller = SteeringController(controller_config(decoder_path, head_path, seed=0))
    controller.configure()
    return ControllerEpisode(make_pick_place(), controller)


def evaluate(decoder_path: str | Path, head_path: str | Path | str = "", episodes: int = 100,
             profile: str = "nominal", seed: int = 100_000, progress: bool = True,
             label: str | None = None) -> EvalResult:
    """Success of decoder (+ head) over seeded episodes through `SteeringController` and ONNX Runtime.

    Episode k uses task seed `seed + k` and noise seed `seed + k`, so two heads meet the same
    scenes and a rerun gives the same numbers. The default seeds do not overlap the
    demonstrations' (0..) nor LP-DS training's.
    """
    episode = controller_episode(decoder_path, head_path)
    controller = episode.controller
    name = label or (Path(head_path).stem if head_path else "base")
    successes, steps, holds = 0, [], 0
    t0 = time.perf_counter()
    bar = tqdm(range(episodes), desc=f"eval {name}", disable=not progress, mininterval=1.0)
    for k in bar:
        controller.policy.reseed(seed + k)
        episode.reset(seed + k, profile)
        while not episode.done:
            episode.period()
        successes += int(episode.result.success)
        steps.append(episode.result.steps)
        holds += episode.result.holds
        bar.set_postfix(success=f"{successes / (k + 1):.2f}")
    lo, hi = wilson_interval(successes, episodes)
    return EvalResult(name, episodes, successes, float(lo), float(hi), float(np.mean(steps)), holds,
                      time.perf_counter() - t0)
