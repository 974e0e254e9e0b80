"""peg_ring: hang a ring with a handle over a vertical peg (the precision stand-in for mug hanging).

The ring (12 capsules on a circle) lies flat on the table with a flat tab sticking out radially,
the handle a gripper can hold; a peg stands upright somewhere else on the table. The ring must be
carried by its handle, centred over the peg within the clearance (ring inner radius minus peg
radius, about 2 cm) and lowered over it. ``object_position`` is the ring's centre,
``target_position`` the peg's foot on the table top (z = 0). Success: the ring's centre is within
the clearance of the peg axis, below ``success_height`` (so the peg passes through it), and no
finger touches the ring.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from lps_sim.tasks.base import FrankaTask, TaskConfig

RING_RADIUS = 0.04  # centre line of the tube
RING_TUBE = 0.007  # tube radius
RING_SEGMENTS = 12
HANDLE_LENGTH = 0.06  # radial length of the tab, beyond the tube
HANDLE_HALF_WIDTH = 0.01  # across the closing direction of the fingers -> 2 cm grip
HANDLE_HALF_HEIGHT = 0.012  # standing 2.4 cm off the table so the fingertips clear the top
PEG_RADIUS = 0.012
PEG_HEIGHT = 0.09
RING_DENSITY = 600.0
RING_X = (0.42, 0.58)
RING_Y = (-0.22, 0.22)
PEG_X = (0.40, 0.60)
PEG_Y = (-0.22, 0.22)
CLEARANCE = RING_RADIUS - RING_TUBE - PEG_RADIUS


@dataclass
class PegRingRewardScales:
    reach: float = 1.0
    """TCP goes to the handle: 1 - tanh(10 * distance)."""
    lift: float = 1.0
    """Ring held above the table (1 when 3 cm up)."""
    align: float = 2.0
    """Ring centre goes over the peg axis: 1 - tanh(20 * planar distance)."""
    insert: float = 2.0
    """Ring goes down the peg while aligned: fraction of the peg height passed."""
    success: float = 10.0
    """Ring around the peg, low, released."""


@dataclass
class PegRingConfig(TaskConfig):
    episode_limit_s: float = 18.0
    """A scripted expert needs about 10 s."""
    success_height: float = 0.04
    """The ring's centre must be below this height (m) with the peg through it."""
    min_separation: float = 0.2
    """Planar distance between the ring's centre and the peg at least this, m."""
    ring_yaw_range: float = np.pi
    """Ring yaw (direction of its handle) drawn from [-range, range], rad."""
    reward_scales: PegRingRewardScales = field(default_factory=PegRingRewardScales)
    """Weights of the reward terms (terms are unweighted in info["reward_terms"])."""


class PegRing(FrankaTask):
    name = "peg_ring"

    @classmethod
    def default_config(cls) -> PegRingConfig:
        return PegRingConfig()

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        ring = spec.worldbody.add_body(name="ring", pos=[0.5, 0.0, RING_TUBE])
        ring.add_freejoint(name="ring_free")
        rgba = [0.15, 0.35, 0.85, 1.0]
        half_seg = RING_RADIUS * np.sin(np.pi / RING_SEGMENTS) + 0.3 * RING_TUBE
        for i in range(RING_SEGMENTS):
            a = 2 * np.pi * (i + 0.5) / RING_SEGMENTS
            mid = RING_RADIUS * np.cos(np.pi / RING_SEGMENTS) * np.array([np.cos(a), np.sin(a), 0.0])
            tangent = np.array([-np.sin(a), np.cos(a), 0.0])
            ring.add_geom(name=f"ring_{i}", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                          fromto=[*(mid - half_seg * tangent), *(mid + half_seg * tangent)],
                          size=[RING_TUBE, 0, 0], density=RING_DENSITY, rgba=rgba)
        ring.add_geom(name="ring_handle", type=mujoco.mjtGeom.mjGEOM_BOX,
                      pos=[RING_RADIUS + HANDLE_LENGTH / 2, 0.0, HANDLE_HALF_HEIGHT - RING_TUBE],
                      size=[HANDLE_LENGTH / 2, HANDLE_HALF_WIDTH, HANDLE_HALF_HEIGHT],
                      density=RING_DENSITY, rgba=[0.1, 0.25, 0.7, 1.0])
        peg = spec.worldbody.add_body(name="peg", pos=[0.5, 0.2, 0.0], mocap=True)
        peg.add_geom(name="peg", type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, PEG_HEIGHT / 2],
                     size=[PEG_RADIUS, PEG_HEIGHT / 2, 0], rgba=[0.6, 0.6, 0.6, 1.0])
        peg.add_geom(name="peg_foot", type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, 0.001],
                     size=[0.07, 0.001, 0], rgba=[0.2, 0.7, 0.3, 0.5], contype=0, conaffinity=0)

    def _post_init_task(self) -> None:
        m = self.model
        self._ring_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "ring")
        self._ring_geoms = frozenset(g for g in range(m.ngeom) if m.geom_bodyid[g] == self._ring_body)
        self._handle_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "ring_handle")
        joint = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "ring_free")
        self._ring_qpos = m.jnt_qposadr[joint]
        self._ring_dof = m.jnt_dofadr[joint]
        self._peg_mocap = m.body_mocapid[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "peg")]

    def _object_bodies(self) -> list[int]:
        return [self._ring_body]

    def _randomize_objects(self, rng: np.random.Generator) -> None:
        ring_xy = np.array([rng.uniform(*RING_X), rng.uniform(*RING_Y)])
        peg_xy = ring_xy
        for _ in range(100):
            peg_xy = np.array([rng.uniform(*PEG_X), rng.uniform(*PEG_Y)])
            if np.linalg.norm(peg_xy - ring_xy) >= self.config.min_separation:
                break
        yaw = rng.uniform(-self.config.ring_yaw_range, self.config.ring_yaw_range)
        # The ring's frame is its centre at tube height: resting, that is one tube radius up (the
        # handle's bottom is level with the tube's, whatever a profile's size scale).
        d = self.data
        d.qpos[self._ring_qpos:self._ring_qpos + 3] = [*ring_xy, self._tube_radius()]
        d.qpos[self._ring_qpos + 3:self._ring_qpos + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        d.qvel[self._ring_dof:self._ring_dof + 6] = 0.0
        d.mocap_pos[self._peg_mocap] = [*peg_xy, 0.0]

    def _tube_radius(self) -> float:
        return float(self.model.geom_size[next(iter(sorted(self._ring_geoms))), 0])

    # -- state ------------------------------------------------------------------------------------
    def object_position(self) -> np.ndarray:
        return self.data.xpos[self._ring_body].copy()

    def object_yaw(self) -> float:
        """Direction of the handle about world z, rad (privileged: for scripted experts)."""
        w, x, y, z = self.data.xquat[self._ring_body]
        return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))

    def handle_position(self) -> np.ndarray:
        """Centre of the handle tab in the world (privileged: for scripted experts)."""
        return self.data.geom_xpos[self._handle_geom].copy()

    def target_position(self) -> np.ndarray:
        return self.data.mocap_pos[self._peg_mocap].copy()

    @property
    def peg_height(self) -> float:
        return PEG_HEIGHT

    def ring_released(self) -> bool:
        return not self._fingers_touch(self._ring_geoms)

    def success(self) -> bool:
        p = self.data.xpos[self._ring_body]
        around = np.linalg.norm(p[:2] - self.target_position()[:2]) < CLEARANCE + 0.002
        low = p[2] < self.config.success_height
        return bool(around and low and self.ring_released())

    def _reward_terms(self) -> dict[str, float]:
        p = self.data.xpos[self._ring_body]
        tcp = self.data.site_xpos[self.ids.tcp_site]
        planar = np.linalg.norm(p[:2] - self.target_position()[:2])
        aligned = planar < CLEARANCE
        return {
            "reach": float(1.0 - np.tanh(10.0 * np.linalg.norm(tcp - self.handle_position()))),
            "lift": float(np.clip((p[2] - RING_TUBE) / 0.03, 0.0, 1.0)),
            "align": float(1.0 - np.tanh(20.0 * planar)),
            "insert": float(aligned * np.clip((PEG_HEIGHT - p[2]) / PEG_HEIGHT, 0.0, 1.0)),
            "success": float(self.success()),
        }

    def _out_of_bounds(self) -> bool:
        return bool(self.object_position()[2] < -0.05)
