"""pick_place: move a cube from a random pose on the table into a random target zone and let go.

``object_position`` is the cube's centre; ``target_position`` the centre of the target zone on the
table top (z = 0). Success: the cube rests inside the zone (centre within ``target_radius`` in the
plane, on the table, nearly still) and no finger touches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from lps_sim.tasks.base import FrankaTask, TaskConfig

CUBE_HALF = 0.0225  # 4.5 cm cube, within the Franka hand's 8 cm opening at any yaw
CUBE_DENSITY = 1000.0  # ~90 g
CUBE_X = (0.40, 0.60)
CUBE_Y = (-0.20, 0.20)
TARGET_X = (0.40, 0.62)
TARGET_Y = (-0.25, 0.25)


@dataclass
class PickPlaceRewardScales:
    reach: float = 1.0
    """TCP goes to the cube: 1 - tanh(10 * distance)."""
    lift: float = 1.0
    """Cube held above the table (1 when its bottom is 2 cm above the top)."""
    place: float = 2.0
    """Cube goes to the zone: 1 - tanh(10 * planar distance to the zone centre)."""
    success: float = 10.0
    """Cube resting in the zone and released."""


@dataclass
class PickPlaceConfig(TaskConfig):
    episode_limit_s: float = 25.0
    """The scripted expert needs about 7 s; streamed through the runtime's safety filter it needs
    8-13 s and behaviour-cloned policies more. Training, the Python evaluation and the ROS bridge
    all use this one limit."""
    target_radius: float = 0.05
    """Radius of the target zone, m."""
    min_separation: float = 0.15
    """Planar distance between the cube's start and the zone centre at least this, m."""
    cube_yaw_range: float = np.pi / 4
    """Cube yaw drawn from [-range, range], rad (the cube's 4-fold symmetry makes +-pi/4 complete)."""
    reward_scales: PickPlaceRewardScales = field(default_factory=PickPlaceRewardScales)
    """Weights of the reward terms (terms are unweighted in info["reward_terms"])."""


class PickPlace(FrankaTask):
    name = "pick_place"

    @classmethod
    def default_config(cls) -> PickPlaceConfig:
        return PickPlaceConfig()

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        cube = spec.worldbody.add_body(name="cube", pos=[0.5, 0.0, CUBE_HALF])
        cube.add_freejoint(name="cube_free")
        cube.add_geom(name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, density=CUBE_DENSITY,
                      rgba=[0.85, 0.2, 0.15, 1.0], friction=[1.0, 0.005, 0.0001])
        zone = spec.worldbody.add_body(name="target_zone", pos=[0.5, 0.2, 0.0], mocap=True)
        zone.add_geom(name="target_zone", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                      size=[self.config.target_radius, 0.0005, 0], rgba=[0.2, 0.7, 0.3, 0.6],
                      contype=0, conaffinity=0)

    def _post_init_task(self) -> None:
        m = self.model
        self._cube_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "cube")
        self._cube_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "cube")
        self._cube_geoms = frozenset([self._cube_geom])
        joint = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "cube_free")
        self._cube_qpos = m.jnt_qposadr[joint]
        self._cube_dof = m.jnt_dofadr[joint]
        self._zone_mocap = m.body_mocapid[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "target_zone")]

    def _object_bodies(self) -> list[int]:
        return [self._cube_body]

    @property
    def cube_half(self) -> float:
        """Half edge of the cube this episode (a profile may scale it)."""
        return float(self.model.geom_size[self._cube_geom, 0])

    def _randomize_objects(self, rng: np.random.Generator) -> None:
        cube_xy = np.array([rng.uniform(*CUBE_X), rng.uniform(*CUBE_Y)])
        target_xy = cube_xy
        for _ in range(100):  # rejection sampling; the region makes a hit within a few draws
            target_xy = np.array([rng.uniform(*TARGET_X), rng.uniform(*TARGET_Y)])
            if np.linalg.norm(target_xy - cube_xy) >= self.config.min_separation:
                break
        yaw = rng.uniform(-self.config.cube_yaw_range, self.config.cube_yaw_range)
        d = self.data
        d.qpos[self._cube_qpos:self._cube_qpos + 3] = [*cube_xy, self.cube_half]
        d.qpos[self._cube_qpos + 3:self._cube_qpos + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        d.qvel[self._cube_dof:self._cube_dof + 6] = 0.0
        d.mocap_pos[self._zone_mocap] = [*target_xy, 0.0]

    # -- state ----------------------------------------------------------------------------------------
    def object_position(self) -> np.ndarray:
        return self.data.xpos[self._cube_body].copy()

    def object_yaw(self) -> float:
        """Cube yaw about world z, rad (privileged: for scripted experts, not in the observation)."""
        w, x, y, z = self.data.xquat[self._cube_body]
        return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))

    def target_position(self) -> np.ndarray:
        return self.data.mocap_pos[self._zone_mocap].copy()

    def cube_released(self) -> bool:
        return not self._fingers_touch(self._cube_geoms)

    def success(self) -> bool:
        p = self.data.xpos[self._cube_body]
        in_zone = np.linalg.norm(p[:2] - self.target_position()[:2]) < self.config.target_radius
        resting = p[2] < self.cube_half + 0.01
        still = np.linalg.norm(self.data.qvel[self._cube_dof:self._cube_dof + 3]) < 0.05
        return bool(in_zone and resting and still and self.cube_released())

    def _reward_terms(self) -> dict[str, float]:
        p = self.data.xpos[self._cube_body]
        tcp = self.data.site_xpos[self.ids.tcp_site]
        lifted = (p[2] - self.cube_half) / 0.02
        return {
            "reach": float(1.0 - np.tanh(10.0 * np.linalg.norm(tcp - p))),
            "lift": float(np.clip(lifted, 0.0, 1.0)),
            "place": float(1.0 - np.tanh(10.0 * np.linalg.norm(p[:2] - self.target_position()[:2]))),
            "success": float(self.success()),
        }
