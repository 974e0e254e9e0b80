"""``FrankaTask``: what every task shares; the API the ROS bridge node and the training code use.

Task API (no ROS, no torch; ``lps_sim.bridge_node`` and ``lps_train`` build on exactly this):

```python
task = make_task("pick_place", robot="fr3")        # lps_sim.tasks.make_task; overrides = config fields
obs = task.reset(seed=3, profile="nominal")         # dict keyed by manifest source names
res = task.step(q_target, gripper_width)            # ONE control period (default 0.01 s, 5 substeps)
res.observation, res.reward, res.terminated, res.truncated, res.success, res.info
task.observation()           # the last observation (same dict as res.observation), copies
task.observation_spec()      # {source: ObservationSpec(shape, dtype, units)}
task.success()               # bool, from the current physics state
task.joint_state()           # (names[9], positions[9], velocities[9], efforts[9]) for joint_states
task.time                    # simulated seconds since reset
task.model, task.data, task.ids, task.config, task.sampled (the profile draw of this episode)
task.render(camera="front", height, width, depth=False)   # RGB uint8 [H, W, 3] or depth m [H, W]
```

``q_target`` is 7 joint position targets in rad (franka_ros2's position command interface), and
``gripper_width`` the commanded finger width in metres (0 .. 0.08). Bad commands (wrong shape,
non-finite) raise ``ValueError`` naming the field; targets outside the joint limits are clipped by
the servos' control ranges, as the real controller would refuse them (the runtime's safety filter
keeps them inside long before that).

Observations (``OBSERVATION_SOURCES``): the runtime's vocabulary, with the sizes and units of
``lps_steering.core.manifest.OBSERVATION_SOURCES`` / ``OBSERVATION_UNITS``; positions in the world
frame = robot base frame. Observation noise of the active profile is
drawn once per step from the episode's seed, so the same seed gives the same observations.

Rewards: each task returns *unweighted* terms; ``step`` scales them with ``config.reward_scales``
and sums them (``reward_type="shaped"``), or returns 1.0 on success else 0.0 (``"sparse"``). Raw
terms are in ``info["reward_terms"]``. An episode terminates on success, on NaN/Inf in the state
(``info["nan"]``), or when the object leaves the table; it is truncated at ``episode_limit_s``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field

import mujoco
import numpy as np
from lps_steering.core.manifest import OBSERVATION_SOURCES as _SOURCE_SIZES
from lps_steering.core.manifest import OBSERVATION_UNITS
from lps_steering.core.robot import ARM_DOF

from lps_sim import scene as sc
from lps_sim.randomization import Profile, RandomizationTargets, SampledParams, load_profile

_BAD_STATE_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                       mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADCTRL)
# The runtime's observation vocabulary (sources, sizes, units), in its order.
OBSERVATION_SOURCES = tuple(_SOURCE_SIZES)


@dataclass(frozen=True)
class ObservationSpec:
    shape: tuple[int, ...]
    dtype: str
    units: str


@dataclass
class TaskConfig:
    """Fields every task has; tasks subclass it and add their own (and their reward scales)."""

    robot: str = "fr3"
    """"fr3" or "panda": joint names only; the kinematics are the Panda model's."""
    control_period_s: float = 0.01
    """One ``step``: the runtime streams joint targets at this period (100 Hz)."""
    episode_limit_s: float = 20.0
    """Episodes are truncated after this much simulated time."""
    reward_type: str = "shaped"
    """"shaped": scaled sum of the task's terms; "sparse": 1 on success, else 0."""
    init_joint_noise: float = 0.02
    """Std of the Gaussian offset (rad) added to the home posture at reset."""
    settle_s: float = 0.1
    """Physics time simulated at reset with the arm held, so objects come to rest."""
    wrist_camera: bool = False
    """Add a camera on the hand (costs one more render per frame when used)."""

    def __post_init__(self) -> None:
        if self.robot not in sc.ROBOTS:
            raise ValueError(f"`robot` must be one of {sc.ROBOTS}, got {self.robot!r}")
        if self.reward_type not in ("shaped", "sparse"):
            raise ValueError(f"`reward_type` must be 'shaped' or 'sparse', got {self.reward_type!r}")
        ratio = self.control_period_s / sc.TIMESTEP
        if self.control_period_s <= 0 or abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(f"`control_period_s` must be a positive multiple of the physics timestep "
                             f"({sc.TIMESTEP} s), got {self.control_period_s}")
        if self.episode_limit_s <= 0:
            raise ValueError(f"`episode_limit_s` must be > 0, got {self.episode_limit_s}")


@dataclass
class StepResult:
    observation: dict[str, np.ndarray]
    reward: float
    terminated: bool
    truncated: bool
    success: bool
    info: dict = field(default_factory=dict)


class FrankaTask:
    """Base class: scene, ids, stepping, observations, reward plumbing. Subclasses add objects.

    Subclasses implement ``default_config()``, ``_add_objects(spec)``, ``_post_init_task()``,
    ``_randomize_objects(rng)``, ``object_position()``, ``target_position()``, ``success()``,
    ``_reward_terms()`` (a dict of unweighted terms that includes "success", 0 or 1) and may
    override ``_out_of_bounds()``.
    """

    name = "base"

    @classmethod
    def default_config(cls) -> TaskConfig:
        return TaskConfig()

    def __init__(self, config: TaskConfig | None = None) -> None:
        self.config = config if config is not None else self.default_config()
        spec = sc.build_scene_spec(self.config.robot, self.config.wrist_camera, self._add_objects)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._post_init()

    # -- set-up (names resolved once) -----------------------------------------------------------
    def _post_init(self) -> None:
        self.ids = sc.SceneIds.resolve(self.model, self.config.robot)
        self.substeps = round(self.config.control_period_s / self.model.opt.timestep)
        self.max_steps = round(self.config.episode_limit_s / self.config.control_period_s)
        self._post_init_task()
        self._rand_targets = RandomizationTargets.capture(
            self.model, self._object_bodies(), list(self.ids.arm_actuators), self.ids.gripper_actuator,
            self.ids.front_camera)
        self._joint_names = (*self.ids.arm_joint_names, *self.ids.finger_joint_names)
        self._qpos_idx = np.concatenate([self.ids.arm_qpos, self.ids.finger_qpos])
        self._dof_idx = np.concatenate([self.ids.arm_dof, self.ids.finger_dof])
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.sampled: SampledParams | None = None
        self._obs: dict[str, np.ndarray] = {}
        self._steps = 0
        self._t0 = 0.0

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        raise NotImplementedError

    def _post_init_task(self) -> None:
        raise NotImplementedError

    def _object_bodies(self) -> list[int]:
        """Bodies a profile's ``object`` section randomises."""
        raise NotImplementedError

    # -- episode --------------------------------------------------------------------------------
    def reset(self, seed: int, profile: str | Profile | None = None) -> dict[str, np.ndarray]:
        """Start an episode; everything random is drawn from ``seed`` (objects, profile, noise)."""
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(f"`seed` must be an integer, got {seed!r}")
        self.profile = load_profile(profile)
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 0])
        self._obs_rng = np.random.default_rng([self.seed, 1])
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self.sampled = self.profile.apply(m, d, rng, self._rand_targets)
        q0 = sc.HOME_QPOS + rng.normal(0.0, self.config.init_joint_noise, ARM_DOF)
        q0 = np.clip(q0, m.jnt_range[self._arm_joint_ids(), 0], m.jnt_range[self._arm_joint_ids(), 1])
        d.qpos[self.ids.arm_qpos] = q0
        d.qpos[self.ids.finger_qpos] = sc.GRIPPER_MAX_WIDTH / 2
        d.ctrl[self.ids.arm_actuators] = q0
        d.ctrl[self.ids.gripper_actuator] = sc.GRIPPER_MAX_WIDTH
        self._randomize_objects(rng)
        mujoco.mj_forward(m, d)
        for _ in range(round(self.config.settle_s / m.opt.timestep)):
            mujoco.mj_step(m, d)
        latency = self.sampled.latency_steps
        # Commands sent now take effect `latency` periods later; until then the arm holds q0.
        self._pending: deque = deque([(q0.copy(), sc.GRIPPER_MAX_WIDTH)] * latency, maxlen=latency + 1)
        self._steps = 0
        self._t0 = d.time
        self._last_command = (q0.copy(), sc.GRIPPER_MAX_WIDTH)
        self._obs = self._make_observation()
        return self.observation()

    def _arm_joint_ids(self) -> np.ndarray:
        return self.model.dof_jntid[self.ids.arm_dof]

    def _randomize_objects(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def step(self, q_target: np.ndarray, gripper_width: float) -> StepResult:
        """Apply one command and advance one control period (``substeps`` physics steps)."""
        if self.sampled is None:
            raise RuntimeError("call reset(seed) before step()")
        q = np.asarray(q_target, dtype=float)
        if q.shape != (ARM_DOF,):
            raise ValueError(f"`q_target` must have shape (7,), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"`q_target` must be finite, got {q}")
        g = float(np.asarray(gripper_width, dtype=float).reshape(-1)[0]) if np.size(gripper_width) == 1 else None
        if g is None or not np.isfinite(g):
            raise ValueError(f"`gripper_width` must be one finite number (m), got {gripper_width!r}")
        self._pending.append((q.copy(), g))
        q_apply, g_apply = self._pending.popleft()
        m, d = self.model, self.data
        d.ctrl[self.ids.arm_actuators] = q_apply
        d.ctrl[self.ids.gripper_actuator] = g_apply
        for _ in range(self.substeps):
            mujoco.mj_step(m, d)
        self._steps += 1
        self._last_command = (q, g)

        # mj_step resets the state by itself when it meets NaN/Inf (and counts a warning), so the
        # guard looks at both the state and those warning counters.
        bad = sum(int(d.warning[w].number) for w in _BAD_STATE_WARNINGS)
        nan = bad > 0 or not (np.all(np.isfinite(d.qpos)) and np.all(np.isfinite(d.qvel)))
        if nan:
            terms = {}
            success = False
        else:
            terms = self._reward_terms()  # includes the "success" term; contact checks run once
            success = bool(terms["success"])
        if self.config.reward_type == "sparse":
            reward = 1.0 if success else 0.0
        else:
            scales = self.config.reward_scales
            reward = float(sum(getattr(scales, k) * v for k, v in terms.items()))
        out = False if nan else self._out_of_bounds()
        terminated = bool(success or nan or out)
        truncated = bool(not terminated and self._steps >= self.max_steps)
        if not nan:
            self._obs = self._make_observation()
        info = {"reward_terms": terms, "nan": nan, "out_of_bounds": out, "step": self._steps,
                "time": self.time}
        return StepResult(self.observation(), reward, terminated, truncated, success, info)

    # -- observations -----------------------------------------------------------------------------
    @property
    def time(self) -> float:
        return float(self.data.time - self._t0)

    @property
    def steps(self) -> int:
        return self._steps

    def observation_spec(self) -> dict[str, ObservationSpec]:
        return {s: ObservationSpec((n,), "float64", OBSERVATION_UNITS[s]) for s, n in _SOURCE_SIZES.items()}

    def observation(self) -> dict[str, np.ndarray]:
        """The observation of the last reset/step (copies; noise already drawn)."""
        return {k: v.copy() for k, v in self._obs.items()}

    def _make_observation(self) -> dict[str, np.ndarray]:
        d, ids = self.data, self.ids
        noise = self.sampled.observation
        r = self._obs_rng
        # Drawn every step, even when a std is 0, so enabling one noise source does not shift the
        # random stream of the others.
        e = r.standard_normal(7 + 7 + 1 + 3 + 3)
        return {
            "arm_joint_positions": d.qpos[ids.arm_qpos] + noise.joint_position_std * e[0:7],
            "arm_joint_velocities": d.qvel[ids.arm_dof] + noise.joint_velocity_std * e[7:14],
            "gripper_width": np.array([d.qpos[ids.finger_qpos].sum() + noise.gripper_width_std * e[14]]),
            "tcp_position": d.site_xpos[ids.tcp_site].copy(),
            "object_position": self.object_position() + noise.object_position_std * e[15:18],
            "target_position": self.target_position() + noise.target_position_std * e[18:21],
        }

    def joint_state(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
        """Names, positions, velocities and efforts of the 9 joints (for sensor_msgs/JointState)."""
        d = self.data
        effort = d.qfrc_actuator[self._dof_idx]
        return self._joint_names, d.qpos[self._qpos_idx].copy(), d.qvel[self._dof_idx].copy(), effort.copy()

    def tcp_position(self) -> np.ndarray:
        return self.data.site_xpos[self.ids.tcp_site].copy()

    def object_position(self) -> np.ndarray:
        raise NotImplementedError

    def target_position(self) -> np.ndarray:
        raise NotImplementedError

    def success(self) -> bool:
        raise NotImplementedError

    def _reward_terms(self) -> dict[str, float]:
        raise NotImplementedError

    def _out_of_bounds(self) -> bool:
        """The object fell off the table (its centre below the table top)."""
        return bool(self.object_position()[2] < -0.05)

    # -- helpers for subclasses --------------------------------------------------------------------
    def _fingers_touch(self, geoms: frozenset[int]) -> bool:
        """Whether any finger geom is in contact with any of ``geoms``."""
        d, fingers = self.data, self.ids.finger_geoms
        for i in range(d.ncon):
            g1, g2 = d.contact.geom1[i], d.contact.geom2[i]
            if (g1 in fingers and g2 in geoms) or (g2 in fingers and g1 in geoms):
                return True
        return False

    # -- rendering -----------------------------------------------------------------------------------
    def render(self, camera: str = "front", height: int = 224, width: int = 224,
               depth: bool = False) -> np.ndarray:
        """RGB (uint8 [H, W, 3]) or depth (float32 metres along the optical axis, [H, W])."""
        cam = {"front": self.ids.front_camera, "wrist": self.ids.wrist_camera}.get(camera, -1)
        if cam < 0:
            raise ValueError(f"`camera` must be 'front' or, with wrist_camera=True, 'wrist'; got {camera!r}")
        key = (height, width)
        if key not in self._renderers:
            self._renderers[key] = sc.make_renderer(self.model, height, width)
        renderer = self._renderers[key]
        if depth:
            renderer.enable_depth_rendering()
        else:
            renderer.disable_depth_rendering()
        renderer.update_scene(self.data, camera=cam)
        sc.fast_render_settings(renderer)
        out = renderer.render()
        return out.astype(np.float32) if depth else out

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def apply_overrides(config: TaskConfig, overrides: dict) -> TaskConfig:
    """``dataclasses.replace`` that names an unknown field instead of a bare TypeError."""
    names = {f.name for f in dataclasses.fields(config)}
    for key in overrides:
        if key not in names:
            raise ValueError(f"unknown config field `{key}` for {type(config).__name__}; "
                             f"fields: {', '.join(sorted(names))}")
    return dataclasses.replace(config, **overrides)
