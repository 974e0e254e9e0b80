"""The one Franka scene builder every task shares (MuJoCo ``MjSpec``, no XML of our own).

``build_scene_spec(robot, ...)`` starts from MuJoCo Menagerie's Panda (see ``lps_sim.assets``) and
turns it into the lps-franka scene:

- joints renamed to franka_ros2's ``<robot>_joint1..7`` and ``<robot>_finger_joint1/2``;
- seven position servos, ``ctrl`` = joint angle target in rad (Menagerie's gains), which is how
  franka_ros2's joint *position* command interface behaves to a client streaming targets;
- one gripper servo whose ``ctrl`` is the commanded finger *width* in metres (0 .. 0.08), like
  ``franka_gripper``'s move/grasp width;
- a TCP site on the hand at z = 0.1034 m (Franka's default flange-to-TCP offset for the hand);
- a table whose top is the plane z = 0 with the robot base on it, a floor below, lights;
- a fixed ``front`` camera looking at the table (the RealSense stand-in) and, optionally, a
  ``wrist`` camera on the hand;
- contact settings under which grasps hold (elliptic friction cones, ``impratio`` 10), 2 ms steps.

The robot name ("fr3" or "panda") changes names only: the kinematics and dynamics are the Panda
model's either way (FR3's link lengths are the same as the Panda's; its joint limits differ a little
and are enforced by ``lps_steering.core.safety``, not by this model).

``SceneIds.resolve(model, robot)`` looks every name up once after compiling (MuJoCo Playground's
``_post_init`` style); the control loop then only indexes arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np
from lps_steering.core.robot import ROBOTS, arm_joint_names, finger_joint_names

from lps_sim.assets import franka_model_dir

# Menagerie's "home" keyframe: elbow bent, hand pointing down over the table.
HOME_QPOS = np.array([0.0, 0.0, 0.0, -1.57079, 0.0, 1.57079, -0.7853])
# Position-servo gains per joint (Menagerie's), and franka's torque limits.
ARM_KP = np.array([4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0])
ARM_KV = np.array([450.0, 450.0, 350.0, 350.0, 200.0, 200.0, 200.0])
ARM_FORCE_LIMIT = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
# Gripper servo on the mean finger opening; stiff enough to squeeze a small part with ~10 N.
GRIPPER_KP = 1000.0
GRIPPER_KV = 30.0
GRIPPER_FORCE_LIMIT = 40.0
GRIPPER_MAX_WIDTH = 0.08
TCP_OFFSET = 0.1034
TIMESTEP = 0.002
# Table: its top is z = 0; the robot base stands on it near the back edge.
TABLE_HALF = np.array([0.6, 0.75, 0.02])
TABLE_CENTER = np.array([0.35, 0.0, -TABLE_HALF[2]])
FLOOR_Z = -0.75
# Fixed camera, RealSense-like placement: in front of the robot, looking back down at the table.
FRONT_CAMERA_POS = np.array([1.25, 0.0, 0.65])
FRONT_CAMERA_LOOKAT = np.array([0.5, 0.0, 0.0])
FRONT_CAMERA_FOVY = 42.0  # D435 colour stream vertical field of view, degrees (69 x 42)
WRIST_CAMERA_POS = np.array([0.05, 0.0, 0.04])  # on the hand, beside the fingers


def lookat_xyaxes(pos: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> list[float]:
    """MuJoCo camera ``xyaxes`` for a camera at ``pos`` looking at ``target`` (camera looks along -z)."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    x = np.cross(forward, up)
    x /= np.linalg.norm(x)
    y = np.cross(x, forward)
    return [*x, *y]


def front_camera_optical_pose() -> list[float]:
    """The front camera's optical frame (x right, y down, z forward) in the robot base frame (the
    world here), [x, y, z, qx, qy, qz, qw]: an exact hand-eye calibration of the nominal scene."""
    xyaxes = np.asarray(lookat_xyaxes(FRONT_CAMERA_POS, FRONT_CAMERA_LOOKAT))
    x, y = xyaxes[:3], xyaxes[3:]
    # MuJoCo's camera frame looks along -z with y up; the optical frame flips y and z.
    rot = np.stack([x, -y, -np.cross(x, y)], axis=1)
    wxyz = np.empty(4)
    mujoco.mju_mat2Quat(wxyz, rot.reshape(-1))
    return [*map(float, FRONT_CAMERA_POS), *map(float, wxyz[1:]), float(wxyz[0])]


def _check_robot(robot: str) -> None:
    if robot not in ROBOTS:
        raise ValueError(f"`robot` must be one of {ROBOTS}, got {robot!r}")


def build_scene_spec(robot: str = "fr3", wrist_camera: bool = False,
                     add_objects: Callable[[mujoco.MjSpec], None] | None = None) -> mujoco.MjSpec:
    """The Franka scene as an uncompiled ``MjSpec``; ``add_objects(spec)`` lets a task add its parts.

    Raises:
        ValueError: ``robot`` is not "fr3" or "panda".
        lps_sim.assets.AssetsMissingError: the model files have not been fetched (`make setup`).
    """
    _check_robot(robot)
    spec = mujoco.MjSpec.from_file(str(franka_model_dir() / "panda.xml"))
    spec.modelname = f"lps_{robot}"
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    # Pyramidal cones let a carried cube slip out (notes: 8/20 placements); elliptic + impratio 10
    # held 20/20.
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.visual.global_.offwidth = 1280
    spec.visual.global_.offheight = 960

    # Menagerie's actuators and finger tendon name the old joint names; rebuild them after renaming.
    for actuator in list(spec.actuators):
        spec.delete(actuator)
    for tendon in list(spec.tendons):
        spec.delete(tendon)
    for key in list(spec.keys):
        spec.delete(key)
    for joint in spec.joints:
        joint.name = f"{robot}_{joint.name}"
    for equality in spec.equalities:
        equality.name1 = f"{robot}_{equality.name1}"
        equality.name2 = f"{robot}_{equality.name2}"
    for light in list(spec.lights):
        spec.delete(light)

    for i, name in enumerate(arm_joint_names(robot)):
        joint = spec.joint(name)
        act = spec.add_actuator(name=f"{name}_position", target=joint.name,
                                trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=ARM_KP[i], kv=ARM_KV[i])
        act.ctrlrange = joint.range
        act.forcerange = [-ARM_FORCE_LIMIT[i], ARM_FORCE_LIMIT[i]]
    split = spec.add_tendon(name=f"{robot}_finger_split")
    for finger in finger_joint_names(robot):
        split.wrap_joint(finger, 0.5)
    grip = spec.add_actuator(name=f"{robot}_gripper_width", target=split.name,
                             trntype=mujoco.mjtTrn.mjTRN_TENDON)
    # ctrl is the total width; the tendon is the mean finger opening (width / 2).
    grip.gaintype = mujoco.mjtGain.mjGAIN_FIXED
    grip.biastype = mujoco.mjtBias.mjBIAS_AFFINE
    grip.gainprm[0] = GRIPPER_KP / 2.0
    grip.biasprm[:3] = [0.0, -GRIPPER_KP, -GRIPPER_KV]
    grip.ctrlrange = [0.0, GRIPPER_MAX_WIDTH]
    grip.forcerange = [-GRIPPER_FORCE_LIMIT, GRIPPER_FORCE_LIMIT]

    # franka's own controller compensates gravity under every command interface; so does the model.
    for body in spec.bodies:
        if body.name.startswith("link") or body.name in ("hand", "left_finger", "right_finger"):
            body.gravcomp = 1.0
    hand = spec.body("hand")
    hand.add_site(name="tcp", pos=[0.0, 0.0, TCP_OFFSET], size=[0.005, 0, 0], rgba=[1, 0, 0, 0.5], group=4)

    world = spec.worldbody
    world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=TABLE_HALF, pos=TABLE_CENTER,
                   rgba=[0.55, 0.45, 0.35, 1.0], friction=[1.0, 0.005, 0.0001])
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.05], pos=[0, 0, FLOOR_Z],
                   rgba=[0.3, 0.32, 0.35, 1.0], contype=0, conaffinity=0)
    world.add_light(name="key", pos=[0.6, -0.6, 1.8], dir=[-0.1, 0.3, -1.0], diffuse=[0.7, 0.7, 0.7],
                    specular=[0.1, 0.1, 0.1], castshadow=False)
    world.add_light(name="fill", pos=[-0.3, 0.8, 1.5], dir=[0.4, -0.4, -1.0], diffuse=[0.3, 0.3, 0.3],
                    specular=[0.0, 0.0, 0.0], castshadow=False)
    spec.visual.headlight.ambient = [0.25, 0.25, 0.25]
    spec.visual.headlight.diffuse = [0.4, 0.4, 0.4]
    world.add_camera(name="front", pos=FRONT_CAMERA_POS, fovy=FRONT_CAMERA_FOVY,
                     xyaxes=lookat_xyaxes(FRONT_CAMERA_POS, FRONT_CAMERA_LOOKAT))
    if wrist_camera:
        # Looks along the hand's approach axis (hand +z), image "up" towards the hand's +x.
        hand.add_camera(name="wrist", pos=WRIST_CAMERA_POS, fovy=FRONT_CAMERA_FOVY,
                        xyaxes=[0.0, -1.0, 0.0, -1.0, 0.0, 0.0])
    if add_objects is not None:
        add_objects(spec)
    return spec


@dataclass(frozen=True)
class SceneIds:
    """Every index the control loop needs, resolved once after compiling."""

    robot: str
    arm_qpos: np.ndarray  # [7] qpos addresses of the arm joints
    arm_dof: np.ndarray  # [7] qvel addresses
    finger_qpos: np.ndarray  # [2]
    finger_dof: np.ndarray  # [2]
    arm_actuators: np.ndarray  # [7]
    gripper_actuator: int
    tcp_site: int
    hand_body: int
    finger_geoms: frozenset[int]  # every collision geom of both fingers (release checks)
    table_geom: int
    front_camera: int
    wrist_camera: int  # -1 when the scene has none
    arm_joint_names: tuple[str, ...]
    finger_joint_names: tuple[str, ...]

    @classmethod
    def resolve(cls, model: mujoco.MjModel, robot: str) -> SceneIds:
        _check_robot(robot)

        def jid(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

        arm_names = tuple(arm_joint_names(robot))
        finger_names = tuple(finger_joint_names(robot))
        arm = [jid(n) for n in arm_names]
        fingers = [jid(n) for n in finger_names]
        finger_bodies = {mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in ("left_finger", "right_finger")}
        finger_geoms = frozenset(int(g) for g in range(model.ngeom)
                                 if model.geom_bodyid[g] in finger_bodies and model.geom_contype[g] != 0)
        return cls(
            robot=robot,
            arm_qpos=model.jnt_qposadr[arm].copy(),
            arm_dof=model.jnt_dofadr[arm].copy(),
            finger_qpos=model.jnt_qposadr[fingers].copy(),
            finger_dof=model.jnt_dofadr[fingers].copy(),
            arm_actuators=np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{n}_position")
                                    for n in arm_names]),
            gripper_actuator=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{robot}_gripper_width"),
            tcp_site=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "tcp"),
            hand_body=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "hand"),
            finger_geoms=finger_geoms,
            table_geom=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "table"),
            front_camera=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "front"),
            wrist_camera=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "wrist"),
            arm_joint_names=arm_names,
            finger_joint_names=finger_names,
        )


def fast_render_settings(renderer: mujoco.Renderer) -> None:
    """Shadows, reflections and anti-aliasing off: 3-5 fps becomes ~60 fps on CPU rendering (notes)."""
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


def make_renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    """An offscreen renderer with the fast settings (``vis.quality.offsamples`` 0 = no MSAA)."""
    model.vis.quality.offsamples = 0
    renderer = mujoco.Renderer(model, height=height, width=width)
    fast_render_settings(renderer)
    return renderer
