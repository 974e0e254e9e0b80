"""Randomisation profiles: sim-to-real gaps as YAML data, sampled from the episode's seed.

A profile (``lps_sim/profiles/<name>.yaml``) has up to seven sections; each key is optional and
defaults to "no change", so ``nominal.yaml`` is nearly empty. Ranges are ``[low, high]`` and are
sampled uniformly once per episode; ``*_std`` keys are Gaussian standard deviations.

```yaml
name: object_gap
description: heavier / lighter, slipperier, bigger / smaller objects
object:      {mass_scale: [0.5, 2.0], friction_scale: [0.5, 1.2], size_scale: [0.85, 1.15]}
actuator:    {kp_scale: [1, 1], kv_scale: [1, 1], gripper_kp_scale: [1, 1]}   # per arm joint
control:     {latency_steps: [0, 0]}   # commands applied k control periods late (int range)
observation: {joint_position_std: 0, joint_velocity_std: 0, gripper_width_std: 0,
              object_position_std: 0, target_position_std: 0}   # rad, rad/s, m
camera:      {position_std_m: 0, rotation_std_rad: 0,              # fixed "front" camera pose
              frame_drop_prob: 0, latency_s: [0, 0]}              # its frames (sim bridge)
lighting:    {diffuse_scale: [1, 1]}
```

``load_profile(name_or_path)`` validates everything (an unknown key raises ``ProfileError`` naming
it and listing the allowed ones). ``profile.apply(model, data, rng, targets)`` first restores the
nominal values captured in ``targets`` (``RandomizationTargets.capture``), then samples with the
given ``np.random.Generator`` (never the global RNG) and returns what it drew as
``SampledParams``; tasks use ``latency_steps`` and the observation stds from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np
import yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(ValueError):
    """A profile file is malformed; the message names the file, the key and what was expected."""


def _range(lo: float = 1.0, hi: float | None = None):
    return field(default_factory=lambda: (lo, lo if hi is None else hi))


@dataclass(frozen=True)
class ObjectGap:
    mass_scale: tuple[float, float] = _range()
    """Multiplier on the manipulated object's mass (and inertia)."""
    friction_scale: tuple[float, float] = _range()
    """Multiplier on the object's sliding friction coefficient."""
    size_scale: tuple[float, float] = _range()
    """Multiplier on every length of the object (geometry and inertia follow)."""


@dataclass(frozen=True)
class ActuatorGap:
    kp_scale: tuple[float, float] = _range()
    """Multiplier on each arm joint's position gain, drawn per joint."""
    kv_scale: tuple[float, float] = _range()
    """Multiplier on each arm joint's damping gain, drawn per joint."""
    gripper_kp_scale: tuple[float, float] = _range()
    """Multiplier on the gripper servo's gain (squeeze force)."""


@dataclass(frozen=True)
class ControlGap:
    latency_steps: tuple[int, int] = (0, 0)
    """Commands take effect this many control periods after they are sent (inclusive int range)."""


@dataclass(frozen=True)
class ObservationGap:
    joint_position_std: float = 0.0
    """Gaussian noise on measured arm joint positions, rad."""
    joint_velocity_std: float = 0.0
    """Gaussian noise on measured arm joint velocities, rad/s."""
    gripper_width_std: float = 0.0
    """Gaussian noise on the measured gripper width, m."""
    object_position_std: float = 0.0
    """Gaussian noise on the perceived object position, m (a pose estimator's error)."""
    target_position_std: float = 0.0
    """Gaussian noise on the perceived target position, m."""


@dataclass(frozen=True)
class CameraGap:
    position_std_m: float = 0.0
    """Gaussian offset of the fixed camera's position per episode, m (extrinsic calibration error)."""
    rotation_std_rad: float = 0.0
    """Gaussian rotation of the fixed camera per axis per episode, rad."""
    frame_drop_prob: float = 0.0
    """Probability that a camera frame is lost before it reaches perception (sim bridge)."""
    latency_s: tuple[float, float] = (0.0, 0.0)
    """Delay from a frame's exposure (its stamp) to its delivery, drawn per episode, s (sim bridge)."""


@dataclass(frozen=True)
class LightingGap:
    diffuse_scale: tuple[float, float] = _range()
    """Multiplier on every light's diffuse intensity."""


@dataclass(frozen=True)
class Profile:
    name: str = "nominal"
    description: str = ""
    object: ObjectGap = field(default_factory=ObjectGap)
    actuator: ActuatorGap = field(default_factory=ActuatorGap)
    control: ControlGap = field(default_factory=ControlGap)
    observation: ObservationGap = field(default_factory=ObservationGap)
    camera: CameraGap = field(default_factory=CameraGap)
    lighting: LightingGap = field(default_factory=LightingGap)

    def apply(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator,
              targets: RandomizationTargets) -> SampledParams:
        """Restore nominal values, then draw this episode's values and write them into ``model``.

        ``data`` serves as scratch for ``mj_setConst``; the caller sets the state afterwards.
        """
        targets.restore(model)

        def uni(r: tuple[float, float], size: int | None = None):
            return rng.uniform(r[0], r[1], size=size)

        mass = float(uni(self.object.mass_scale))
        friction = float(uni(self.object.friction_scale))
        size = float(uni(self.object.size_scale))
        for b in targets.object_bodies:
            model.body_mass[b] = targets.body_mass[b] * mass
            model.body_inertia[b] = targets.body_inertia[b] * mass * size**2
            model.body_ipos[b] = targets.body_ipos[b] * size
        for g in targets.object_geoms:
            model.geom_size[g] = targets.geom_size[g] * size
            model.geom_pos[g] = targets.geom_pos[g] * size
            model.geom_rbound[g] = targets.geom_rbound[g] * size
            model.geom_aabb[g] = targets.geom_aabb[g] * size
            model.geom_friction[g, 0] = targets.geom_friction[g, 0] * friction

        kp = uni(self.actuator.kp_scale, len(targets.arm_actuators))
        kv = uni(self.actuator.kv_scale, len(targets.arm_actuators))
        for i, a in enumerate(targets.arm_actuators):
            model.actuator_gainprm[a, 0] = targets.gainprm[a, 0] * kp[i]
            model.actuator_biasprm[a, 1] = targets.biasprm[a, 1] * kp[i]
            model.actuator_biasprm[a, 2] = targets.biasprm[a, 2] * kv[i]
        gkp = float(uni(self.actuator.gripper_kp_scale))
        g = targets.gripper_actuator
        model.actuator_gainprm[g, 0] = targets.gainprm[g, 0] * gkp
        model.actuator_biasprm[g, 1] = targets.biasprm[g, 1] * gkp

        lo, hi = self.control.latency_steps
        latency = int(rng.integers(lo, hi + 1))

        cam_offset = rng.normal(0.0, self.camera.position_std_m, 3) if self.camera.position_std_m > 0 else np.zeros(3)
        cam_rot = rng.normal(0.0, self.camera.rotation_std_rad, 3) if self.camera.rotation_std_rad > 0 else np.zeros(3)
        if targets.camera >= 0:
            model.cam_pos[targets.camera] = targets.cam_pos + cam_offset
            dq = np.zeros(4)
            mujoco.mju_axisAngle2Quat(dq, cam_rot / max(np.linalg.norm(cam_rot), 1e-12), np.linalg.norm(cam_rot))
            quat = np.zeros(4)
            # World-frame rotation of the camera: dq * q.
            mujoco.mju_mulQuat(quat, dq, targets.cam_quat)
            model.cam_quat[targets.camera] = quat
        # Drawn only when set, so that the profiles without it keep their episodes.
        cam_latency = float(uni(self.camera.latency_s)) if self.camera.latency_s[1] > 0 else 0.0
        light = float(uni(self.lighting.diffuse_scale))
        model.light_diffuse[:] = targets.light_diffuse * light
        # Masses changed: the constraint solver's per-body inverse weights must follow, or a heavier
        # object gets contacts sized for the old mass (a 2x cube was flung out of the hand).
        mujoco.mj_setConst(model, data)
        return SampledParams(profile=self.name, mass_scale=mass, friction_scale=friction, size_scale=size,
                             kp_scale=kp, kv_scale=kv, gripper_kp_scale=gkp, latency_steps=latency,
                             camera_offset_m=cam_offset, camera_rotation_rad=cam_rot, light_scale=light,
                             observation=self.observation, camera=self.camera, camera_latency_s=cam_latency)


@dataclass(frozen=True)
class SampledParams:
    """What one episode drew from its profile (logged with the episode)."""

    profile: str
    mass_scale: float
    friction_scale: float
    size_scale: float
    kp_scale: np.ndarray
    kv_scale: np.ndarray
    gripper_kp_scale: float
    latency_steps: int
    camera_offset_m: np.ndarray
    camera_rotation_rad: np.ndarray
    light_scale: float
    observation: ObservationGap
    camera: CameraGap = field(default_factory=CameraGap)
    camera_latency_s: float = 0.0


@dataclass
class RandomizationTargets:
    """Which model elements a profile may change, with their nominal values (captured once)."""

    object_bodies: list[int]
    object_geoms: list[int]
    arm_actuators: list[int]
    gripper_actuator: int
    camera: int
    body_mass: np.ndarray
    body_inertia: np.ndarray
    body_ipos: np.ndarray
    geom_size: np.ndarray
    geom_pos: np.ndarray
    geom_rbound: np.ndarray
    geom_aabb: np.ndarray
    geom_friction: np.ndarray
    gainprm: np.ndarray
    biasprm: np.ndarray
    cam_pos: np.ndarray
    cam_quat: np.ndarray
    light_diffuse: np.ndarray

    @classmethod
    def capture(cls, model: mujoco.MjModel, object_bodies: list[int], arm_actuators: list[int],
                gripper_actuator: int, camera: int) -> RandomizationTargets:
        geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] in set(object_bodies)]
        return cls(
            object_bodies=list(object_bodies), object_geoms=geoms, arm_actuators=list(arm_actuators),
            gripper_actuator=gripper_actuator, camera=camera,
            body_mass=model.body_mass.copy(), body_inertia=model.body_inertia.copy(),
            body_ipos=model.body_ipos.copy(), geom_size=model.geom_size.copy(), geom_pos=model.geom_pos.copy(),
            geom_rbound=model.geom_rbound.copy(), geom_aabb=model.geom_aabb.copy(),
            geom_friction=model.geom_friction.copy(), gainprm=model.actuator_gainprm.copy(),
            biasprm=model.actuator_biasprm.copy(),
            cam_pos=model.cam_pos[camera].copy() if camera >= 0 else np.zeros(3),
            cam_quat=model.cam_quat[camera].copy() if camera >= 0 else np.array([1.0, 0, 0, 0]),
            light_diffuse=model.light_diffuse.copy(),
        )

    def restore(self, model: mujoco.MjModel) -> None:
        model.body_mass[:] = self.body_mass
        model.body_inertia[:] = self.body_inertia
        model.body_ipos[:] = self.body_ipos
        model.geom_size[:] = self.geom_size
        model.geom_pos[:] = self.geom_pos
        model.geom_rbound[:] = self.geom_rbound
        model.geom_aabb[:] = self.geom_aabb
        model.geom_friction[:] = self.geom_friction
        model.actuator_gainprm[:] = self.gainprm
        model.actuator_biasprm[:] = self.biasprm
        if self.camera >= 0:
            model.cam_pos[self.camera] = self.cam_pos
            model.cam_quat[self.camera] = self.cam_quat
        model.light_diffuse[:] = self.light_diffuse


# ---------------------------------------------------------------------------------------------
# Loading and validation
_SECTIONS = {"object": ObjectGap, "actuator": ActuatorGap, "control": ControlGap,
             "observation": ObservationGap, "camera": CameraGap, "lighting": LightingGap}


def available_profiles() -> list[str]:
    """Names of the profiles shipped in ``lps_sim/profiles/``."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _number(where: str, value, integer: bool = False) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not np.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise ProfileError(f"{where}: expected {kind}, got {value!r}")
    return value


def _parse_section(where: str, cls: type, raw) -> object:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise ProfileError(f"{where}.{key}: unknown key; allowed keys: {', '.join(fields)}")
        here = f"{where}.{key}"
        if key == "latency_steps":
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise ProfileError(f"{here}: expected [low, high] integers, got {value!r}")
            lo, hi = (_number(here, v, integer=True) for v in value)
            if lo < 0 or hi < lo:
                raise ProfileError(f"{here}: expected 0 <= low <= high, got {value!r}")
            values[key] = (lo, hi)
        elif key == "frame_drop_prob":
            v = float(_number(here, value))
            if not 0.0 <= v < 1.0:
                raise ProfileError(f"{here}: expected a probability in [0, 1), got {value!r}")
            values[key] = v
        elif key == "latency_s":
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise ProfileError(f"{here}: expected [low, high] seconds, got {value!r}")
            lo, hi = (float(_number(here, v)) for v in value)
            if lo < 0 or hi < lo or hi > 1.0:
                raise ProfileError(f"{here}: expected 0 <= low <= high <= 1 s, got {value!r}")
            values[key] = (lo, hi)
        elif key.endswith("_std") or key.endswith("_std_m") or key.endswith("_std_rad"):
            v = _number(here, value)
            if v < 0:
                raise ProfileError(f"{here}: expected a standard deviation >= 0, got {value!r}")
            values[key] = float(v)
        else:
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise ProfileError(f"{here}: expected a range [low, high], got {value!r}")
            lo, hi = (float(_number(here, v)) for v in value)
            if lo <= 0 or hi < lo:
                raise ProfileError(f"{here}: expected a range of scales 0 < low <= high, got {value!r}")
            values[key] = (lo, hi)
    return cls(**values)


def parse_profile(raw: dict, source: str = "<profile>") -> Profile:
    """Validate a profile given as a mapping (what ``yaml.safe_load`` returns)."""
    if not isinstance(raw, dict):
        raise ProfileError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    allowed = ["name", "description", *_SECTIONS]
    for key in raw:
        if key not in allowed:
            raise ProfileError(f"{source}: `{key}`: unknown key; allowed keys: {', '.join(allowed)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{source}: `name`: expected a non-empty string, got {name!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ProfileError(f"{source}: `description`: expected a string, got {description!r}")
    sections = {key: _parse_section(f"{source}: `{key}`", cls, raw.get(key)) for key, cls in _SECTIONS.items()}
    return Profile(name=name, description=description, **sections)


def load_profile(name_or_path: str | Path | Profile | None = None) -> Profile:
    """A shipped profile by name (``"nominal"``), a YAML path, or a ``Profile`` (returned as is).

    Raises:
        ProfileError: unknown name, unreadable file, or invalid content (message names the key).
    """
    if name_or_path is None:
        name_or_path = "nominal"
    if isinstance(name_or_path, Profile):
        return name_or_path
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ProfileError(f"Profile '{name_or_path}' not found. Available profiles: "
                               f"{', '.join(available_profiles())}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ProfileError(f"{path}: cannot read profile: {err}") from err
    return parse_profile(raw, source=path.name)
