"""Scripted experts: TCP waypoints -> damped-least-squares IK -> joint targets at the policy rate.

An expert is queried at the POLICY rate (10 Hz by default) with the task's observation and returns
the next 7 joint position targets and a gripper width; ``run_expert_episode`` interpolates those
targets linearly to the command rate (100 Hz) and steps the task, like the runtime's chunk
executor does with a policy's actions.

The expert keeps its own commanded joint vector and solves IK on a private ``MjData`` (kinematics
only), so its targets are a smooth reference that does not inherit the servo's tracking lag; it
moves to the next waypoint only when the measured TCP has arrived (or after a timeout).
Experts read privileged state (object yaw, handle pose) from the task; policies do not get it.

Multimodality: pick_place grasps the cube along either of the two face pairs within reach of the
wrist (random per episode) and carries it over an arc bulging to the left or to the right;
peg_ring also picks the side of its arc at random.

Demonstration quality (``ExpertConfig``): ``action_noise`` (Gaussian on each joint target, rad),
``hesitation_prob`` / ``max_pause_steps`` (random pauses, during which ``dither`` jitters the TCP),
``imprecision`` (per-episode Gaussian error of the grasp and place points, m), ``early_close_prob``
(operators who close above the cube) and ``drop_prob`` (operators who let it go while carrying it).
``EXPERT_PRESETS``
has "clean" and "noisy"; everything random comes from the episode seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import mujoco
import numpy as np

from lps_sim import scene as sc
from lps_sim.randomization import Profile
from lps_sim.tasks.base import FrankaTask
from lps_sim.tasks.peg_ring import PegRing
from lps_sim.tasks.pick_place import PickPlace

# Hand orientation at yaw 0: pointing down, fingers closing along world x (the home posture's).
_R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass
class ExpertConfig:
    speed: float = 0.3
    """TCP speed between waypoints in free space, m/s."""
    slow_speed: float = 0.12
    """TCP speed for the last few centimetres down to a grasp or a placement, m/s."""
    yaw_speed: float = 1.5
    """Hand yaw rate, rad/s."""
    arrive_tol: float = 0.008
    """Measured TCP within this distance of a waypoint counts as arrived, m."""
    waypoint_timeout_s: float = 2.0
    """Move on anyway after waiting this long at a waypoint."""
    action_noise: float = 0.0
    """Std of Gaussian noise on every joint target sent, rad (not fed back into the plan)."""
    hesitation_prob: float = 0.0
    """Chance per policy step of starting a pause."""
    max_pause_steps: int = 5
    """A pause lasts 1..max_pause_steps policy steps."""
    dither: float = 0.0
    """Std of TCP jitter while pausing, m."""
    imprecision: float = 0.0
    """Std of the per-episode planar error of grasp and place points, m."""
    early_close_prob: float = 0.0
    """Chance per episode that the operator is careless at the grasp: stops its descent and closes
    the gripper `early_close` above the grasp point (a multi-operator dataset, as robomimic's MH)."""
    early_close: float = 0.02
    """How far above the grasp point a careless operator closes the gripper, m."""
    drop_prob: float = 0.0
    """Chance per episode that the operator lets the cube go while carrying it: the fingers open at
    the arc's middle or above the target, and the operator goes on through the placement with an
    empty hand (lifted-then-dropped failures, which careless grasps never make)."""
    settle_steps: int = 0
    """Policy steps the operator waits at the grasp point, fingers open, before closing them."""
    ik_damping: float = 0.05
    """Damping of the least-squares IK step."""
    ik_iterations: int = 4
    """IK iterations per query."""

    def __post_init__(self) -> None:
        for name in ("speed", "slow_speed", "yaw_speed", "arrive_tol", "waypoint_timeout_s", "ik_damping"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}")
        for name in ("action_noise", "dither", "imprecision", "early_close"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        for name in ("hesitation_prob", "early_close_prob", "drop_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)}")
        if self.settle_steps < 0:
            raise ValueError(f"`settle_steps` must be >= 0, got {self.settle_steps}")
        if self.max_pause_steps < 1 or self.ik_iterations < 1:
            raise ValueError("`max_pause_steps` and `ik_iterations` must be >= 1, got "
                             f"{self.max_pause_steps} and {self.ik_iterations}")


EXPERT_PRESETS: dict[str, ExpertConfig] = {
    "clean": ExpertConfig(),
    # Sloppy operator: jittery targets, frequent hesitation, grasp/place points off by ~1 cm.
    "noisy": ExpertConfig(action_noise=0.01, hesitation_prob=0.15, max_pause_steps=6, dither=0.01,
                          imprecision=0.008),
}


@dataclass
class Waypoint:
    name: str
    position: np.ndarray
    yaw: float
    gripper: float
    slow: bool = False
    dwell: int = 0  # policy steps to wait after arriving (gripper closing / opening)


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class DlsIk:
    """Damped-least-squares IK for the TCP site (position + orientation) on a private MjData."""

    def __init__(self, model: mujoco.MjModel, ids: sc.SceneIds, damping: float, iterations: int) -> None:
        self.model, self.ids = model, ids
        self.data = mujoco.MjData(model)
        self.damping, self.iterations = damping, iterations
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        jnt = model.dof_jntid[ids.arm_dof]
        self._lo = model.jnt_range[jnt, 0] + 0.02
        self._hi = model.jnt_range[jnt, 1] - 0.02

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        d.qpos[self.ids.arm_qpos] = q
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)
        return d.site_xpos[self.ids.tcp_site].copy(), d.site_xmat[self.ids.tcp_site].reshape(3, 3).copy()

    def solve(self, q: np.ndarray, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        q = q.copy()
        lam2 = self.damping**2
        for _ in range(self.iterations):
            p, r = self.forward(q)
            err_rot = 0.5 * sum(np.cross(r[:, i], rotation[:, i]) for i in range(3))
            err = np.concatenate([position - p, err_rot])
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.ids.tcp_site)
            jac = np.vstack([self._jacp[:, self.ids.arm_dof], self._jacr[:, self.ids.arm_dof]])
            jjt = jac @ jac.T + lam2 * np.eye(6)
            pinv = jac.T @ np.linalg.solve(jjt, np.eye(6))
            # The null space pulls towards the home posture so the elbow does not drift.
            dq = pinv @ err + (np.eye(7) - pinv @ jac) @ (0.1 * (sc.HOME_QPOS - q))
            q = np.clip(q + dq, self._lo, self._hi)
        return q


class ScriptedExpert:
    """Base expert: waypoint following, pauses and noise; subclasses plan the waypoints."""

    def __init__(self, task: FrankaTask, config: ExpertConfig, policy_rate_hz: float, seed: int) -> None:
        self.task, self.config = task, config
        self.dt = 1.0 / policy_rate_hz
        self.rng = np.random.default_rng([seed, 2])
        self.ik = DlsIk(task.model, task.ids, config.ik_damping, config.ik_iterations)
        obs = task.observation()
        self.q_cmd = obs["arm_joint_positions"].copy()
        self.p_cmd, rot = self.ik.forward(self.q_cmd)
        self.yaw_cmd = float(np.arctan2(rot[1, 1], rot[0, 1]))  # closing axis (hand y) direction
        self.gripper = sc.GRIPPER_MAX_WIDTH
        self.grasp_error = self.rng.normal(0.0, config.imprecision, 2)
        self.place_error = self.rng.normal(0.0, config.imprecision, 2)
        self.arc_side = float(self.rng.choice([-1.0, 1.0]))
        # A stream of its own: drawing the operator must not change episodes of other configs.
        self.careless = bool(np.random.default_rng([seed, 3]).random() < config.early_close_prob)
        self.close_offset = np.array([0.0, 0.0, config.early_close if self.careless else 0.0])
        drop_rng = np.random.default_rng([seed, 4])
        self.drops = bool(drop_rng.random() < config.drop_prob)
        self.drop_at = str(drop_rng.choice(["carry", "above_target"])) if self.drops else ""
        self.waypoints: list[Waypoint] = self.plan_grasp()
        self.stage = "grasp"
        self.index = 0
        self.wait = 0
        self.dwell = 0
        self.pause = 0
        self.phase_log: list[str] = []

    # -- planning (subclasses) ----------------------------------------------------------------------
    def plan_grasp(self) -> list[Waypoint]:
        raise NotImplementedError

    def grasp_approach(self, p: np.ndarray, above_name: str) -> list[Waypoint]:
        """Above `p`, 4 cm above it, down to it (plus a careless operator's offset; a careful one
        settles there), then close: the approach every grasp of these tasks shares."""
        grasp = p + self.close_offset
        return [
            Waypoint(above_name, p + [0, 0, 0.12], self.grasp_yaw, sc.GRIPPER_MAX_WIDTH),
            Waypoint("pre_grasp", p + [0, 0, 0.04], self.grasp_yaw, sc.GRIPPER_MAX_WIDTH),
            Waypoint("descend", grasp, self.grasp_yaw, sc.GRIPPER_MAX_WIDTH, slow=True,
                     dwell=self.config.settle_steps),
            Waypoint("close", grasp, self.grasp_yaw, 0.0, dwell=5),
        ]

    def plan_place(self) -> list[Waypoint]:
        raise NotImplementedError

    def carry_arc(self, start: np.ndarray, end: np.ndarray, height: float, yaw: float, gripper: float) -> list[Waypoint]:
        """Up, over an arc bulging to ``arc_side`` of the straight line, to above ``end``."""
        mid = 0.5 * (start[:2] + end[:2])
        along = end[:2] - start[:2]
        normal = np.array([-along[1], along[0]]) / max(np.linalg.norm(along), 1e-6)
        via = mid + self.arc_side * 0.08 * normal
        arc = [
            Waypoint("lift", np.array([*start[:2], height]), yaw, gripper),
            Waypoint("carry", np.array([*via, height + 0.03]), yaw, gripper),
            Waypoint("above_target", np.array([*end[:2], height]), yaw, gripper),
        ]
        for wp in arc:
            if wp.name == self.drop_at:
                wp.gripper = sc.GRIPPER_MAX_WIDTH
        return arc

    # -- acting -------------------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        return self.waypoints[self.index].name if self.index < len(self.waypoints) else "done"

    def act(self, observation: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
        """The next joint targets [7] (rad) and gripper width (m), one policy period ahead."""
        cfg = self.config
        self.phase_log.append(self.phase)
        if self.pause == 0 and self.rng.random() < cfg.hesitation_prob:
            self.pause = int(self.rng.integers(1, cfg.max_pause_steps + 1))
        target_p = self.p_cmd
        if self.pause > 0:
            self.pause -= 1
            jitter = self.rng.normal(0.0, cfg.dither, 3) if cfg.dither > 0 else np.zeros(3)
            q = self.ik.solve(self.q_cmd, self.p_cmd + jitter, _rot_z(self.yaw_cmd) @ _R_DOWN)
            return self._noisy(q), self.gripper
        if self.index < len(self.waypoints):
            wp = self.waypoints[self.index]
            self.gripper = wp.gripper
            step = (cfg.slow_speed if wp.slow else cfg.speed) * self.dt
            delta = wp.position - self.p_cmd
            dist = np.linalg.norm(delta)
            target_p = wp.position if dist <= step else self.p_cmd + delta * (step / dist)
            dyaw = _wrap(wp.yaw - self.yaw_cmd)
            max_dyaw = cfg.yaw_speed * self.dt
            self.yaw_cmd = self.yaw_cmd + float(np.clip(dyaw, -max_dyaw, max_dyaw))
            self.p_cmd = target_p
            self._advance(observation, wp, dist <= step and abs(dyaw) <= max_dyaw)
        self.q_cmd = self.ik.solve(self.q_cmd, self.p_cmd, _rot_z(self.yaw_cmd) @ _R_DOWN)
        return self._noisy(self.q_cmd), self.gripper

    def _advance(self, observation: dict[str, np.ndarray], wp: Waypoint, commanded_there: bool) -> None:
        if not commanded_there:
            return
        arrived = np.linalg.norm(observation["tcp_position"] - wp.position) < self.config.arrive_tol
        self.wait += 1
        if not arrived and self.wait * self.dt < self.config.waypoint_timeout_s:
            return
        if self.dwell < wp.dwell:
            self.dwell += 1
            return
        self.index += 1
        self.wait = self.dwell = 0
        if self.index == len(self.waypoints) and self.stage == "grasp":
            self.stage = "place"
            self.waypoints = self.waypoints + self.plan_place()

    def _noisy(self, q: np.ndarray) -> np.ndarray:
        if self.config.action_noise > 0:
            return q + self.rng.normal(0.0, self.config.action_noise, 7)
        return q.copy()


class PickPlaceExpert(ScriptedExpert):
    task: PickPlace

    def plan_grasp(self) -> list[Waypoint]:
        t = self.task
        cube = t.object_position()
        yaw0 = t.object_yaw()
        # Four face pairs are symmetric; keep the grasp yaws the wrist reaches comfortably.
        options = [_wrap(yaw0 + k * np.pi / 2) for k in range(4)]
        options = [y for y in options if abs(y) <= np.pi / 2 + 1e-6]
        self.grasp_yaw = float(self.rng.choice(options))
        return self.grasp_approach(np.array([*(cube[:2] + self.grasp_error), cube[2]]), "above_cube")

    def plan_place(self) -> list[Waypoint]:
        t = self.task
        tcp = t.tcp_position()
        # Where the cube sits in the hand, measured now: place the cube, not the TCP, on the zone.
        offset = tcp[:2] - t.object_position()[:2]
        goal = t.target_position()[:2] + offset + self.place_error
        height = 0.15
        place_z = t.cube_half + 0.008 + (tcp[2] - t.object_position()[2])
        return [
            *self.carry_arc(tcp, np.array([*goal, 0.0]), height, self.grasp_yaw, 0.0),
            Waypoint("lower", np.array([*goal, place_z + 0.04]), self.grasp_yaw, 0.0),
            Waypoint("place", np.array([*goal, place_z]), self.grasp_yaw, 0.0, slow=True),
            Waypoint("release", np.array([*goal, place_z]), self.grasp_yaw, sc.GRIPPER_MAX_WIDTH, dwell=3),
            Waypoint("retreat", np.array([*goal, place_z + 0.1]), self.grasp_yaw, sc.GRIPPER_MAX_WIDTH),
        ]


class PegRingExpert(ScriptedExpert):
    task: PegRing

    def plan_grasp(self) -> list[Waypoint]:
        t = self.task
        handle = t.handle_position()
        # Fingers close across the handle: closing axis perpendicular to the handle's direction.
        self.grasp_yaw = _wrap(t.object_yaw() + np.pi / 2)
        if abs(self.grasp_yaw) > np.pi / 2:
            self.grasp_yaw = _wrap(self.grasp_yaw + np.pi)
        return self.grasp_approach(np.array([*(handle[:2] + self.grasp_error), handle[2] + 0.002]),
                                   "above_handle")

    def plan_place(self) -> list[Waypoint]:
        t = self.task
        tcp = t.tcp_position()
        ring = t.object_position()
        offset = tcp - ring  # the ring's centre relative to the TCP, held fixed while carried
        peg = t.target_position()
        goal = peg[:2] + offset[:2] + self.place_error
        carry_z = t.peg_height + 0.06 + offset[2]
        over_z = t.peg_height + 0.015 + offset[2]
        down_z = 0.015 + offset[2]
        return [
            *self.carry_arc(tcp, np.array([*goal, 0.0]), carry_z, self.grasp_yaw, 0.0),
            Waypoint("over_peg", np.array([*goal, over_z]), self.grasp_yaw, 0.0, slow=True),
            Waypoint("slide_down", np.array([*goal, down_z]), self.grasp_yaw, 0.0, slow=True),
            Waypoint("release", np.array([*goal, down_z]), self.grasp_yaw, sc.GRIPPER_MAX_WIDTH, dwell=3),
            Waypoint("retreat", np.array([*goal, down_z + 0.1]), self.grasp_yaw, sc.GRIPPER_MAX_WIDTH),
        ]


EXPERTS: dict[str, type[ScriptedExpert]] = {"pick_place": PickPlaceExpert, "peg_ring": PegRingExpert}


def make_expert(task: FrankaTask, config: ExpertConfig | str = "clean", policy_rate_hz: float = 10.0,
                seed: int = 0) -> ScriptedExpert:
    """The expert for ``task`` (call after ``task.reset``), with a config or a preset name."""
    if isinstance(config, str):
        if config not in EXPERT_PRESETS:
            raise ValueError(f"expert preset '{config}' not found. Available: {', '.join(EXPERT_PRESETS)}")
        config = EXPERT_PRESETS[config]
    if task.name not in EXPERTS:
        raise ValueError(f"no scripted expert for task '{task.name}'. Available: {', '.join(EXPERTS)}")
    return EXPERTS[task.name](task, config, policy_rate_hz, seed)


@dataclass
class Trajectory:
    """One expert episode at the policy rate: observation t, then the action chosen from it."""

    task: str
    seed: int
    profile: str
    expert: dict
    policy_rate_hz: float
    observations: dict[str, np.ndarray]  # source -> [T, size]
    q_targets: np.ndarray  # [T, 7] rad
    gripper: np.ndarray  # [T] m
    rewards: np.ndarray  # [T] summed over the command steps of each policy step
    phases: list[str] = field(default_factory=list)
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    sim_time: float = 0.0

    def __len__(self) -> int:
        return len(self.gripper)


def run_expert_episode(task: FrankaTask, seed: int, profile: str | Profile | None = None,
                       expert: ExpertConfig | str = "clean", policy_rate_hz: float = 10.0) -> Trajectory:
    """Reset ``task`` with ``seed``/``profile``, run its scripted expert to the end, return the record.

    Targets come at ``policy_rate_hz`` and are interpolated linearly from the previous target to the
    command rate of the task (``1 / config.control_period_s``).
    """
    ratio = 1.0 / (policy_rate_hz * task.config.control_period_s)
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(f"`policy_rate_hz` ({policy_rate_hz}) must divide the command rate "
                         f"({1.0 / task.config.control_period_s:g} Hz)")
    n = round(ratio)
    obs = task.reset(seed, profile)
    agent = make_expert(task, expert, policy_rate_hz, seed)
    prev_q = obs["arm_joint_positions"].copy()
    observations: dict[str, list[np.ndarray]] = {k: [] for k in obs}
    q_targets, grippers, rewards = [], [], []
    result = None
    while True:
        q, g = agent.act(obs)
        for k, v in obs.items():
            observations[k].append(v)
        q_targets.append(q)
        grippers.append(g)
        total = 0.0
        for k in range(n):
            result = task.step(prev_q + (k + 1) / n * (q - prev_q), g)
            total += result.reward
            if result.terminated or result.truncated:
                break
        rewards.append(total)
        prev_q = q
        obs = result.observation
        if result.terminated or result.truncated:
            break
    cfg = expert if isinstance(expert, ExpertConfig) else EXPERT_PRESETS[expert]
    return Trajectory(
        task=task.name, seed=seed, profile=task.profile.name, expert=asdict(cfg), policy_rate_hz=policy_rate_hz,
        observations={k: np.asarray(v) for k, v in observations.items()},
        q_targets=np.asarray(q_targets), gripper=np.asarray(grippers), rewards=np.asarray(rewards),
        phases=agent.phase_log, success=bool(result.success), terminated=bool(result.terminated),
        truncated=bool(result.truncated), sim_time=task.time)
