"""Physics sanity of the MuJoCo Franka scene: real model, real stepping, no mocks."""

import mujoco
import numpy as np
import pytest
from lps_sim import assets
from lps_sim import scene as sc
from lps_sim.tasks import make_task


@pytest.fixture(scope="module")
def task():
    t = make_task("pick_place")
    yield t
    t.close()


def test_model_files_come_from_the_registry_package_with_licence():
    folder = assets.franka_model_dir()
    assert (folder / "panda.xml").is_file()
    assert "Apache" in (folder / "LICENSE").read_text()


def test_missing_assets_say_how_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setattr(assets, "assets_root", lambda: tmp_path)
    with pytest.raises(assets.AssetsMissingError, match="make setup"):
        assets.franka_model_dir()


@pytest.mark.parametrize("robot", ["fr3", "panda"])
def test_joint_names_follow_franka_ros2(robot):
    model = sc.build_scene_spec(robot).compile()
    names = [model.joint(i).name for i in range(model.njnt)]
    expected = [f"{robot}_joint{i}" for i in range(1, 8)] + [f"{robot}_finger_joint1", f"{robot}_finger_joint2"]
    assert names[:9] == expected
    ids = sc.SceneIds.resolve(model, robot)
    assert ids.arm_joint_names == tuple(expected[:7])
    assert min(ids.arm_actuators) >= 0 and ids.gripper_actuator >= 0 and ids.tcp_site >= 0


def test_unknown_robot_is_refused():
    with pytest.raises(ValueError, match="`robot` must be one of"):
        sc.build_scene_spec("ur5")


def test_scene_options_timestep_and_contacts():
    model = sc.build_scene_spec("fr3").compile()
    assert model.opt.timestep == pytest.approx(0.002)
    assert model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    assert model.opt.impratio == pytest.approx(10.0)


def test_tcp_site_is_0_1034_along_the_hand_axis(task):
    task.reset(seed=0)
    d, ids = task.data, task.ids
    hand_pos, hand_mat = d.xpos[ids.hand_body], d.xmat[ids.hand_body].reshape(3, 3)
    local = hand_mat.T @ (d.site_xpos[ids.tcp_site] - hand_pos)
    np.testing.assert_allclose(local, [0.0, 0.0, 0.1034], atol=1e-9)


def test_free_object_falls_under_gravity_and_lands_on_the_table(task):
    task.reset(seed=1)
    m, d = task.model, task.data
    qadr = task._cube_qpos
    d.qpos[qadr:qadr + 3] = [0.5, -0.3, 0.5]
    d.qvel[task._cube_dof:task._cube_dof + 6] = 0.0
    mujoco.mj_forward(m, d)
    z0 = d.qpos[qadr + 2]
    t = 0.2
    for _ in range(round(t / m.opt.timestep)):
        mujoco.mj_step(m, d)
    drop = z0 - d.qpos[qadr + 2]
    assert drop == pytest.approx(0.5 * 9.81 * t**2, rel=0.02)
    for _ in range(round(1.5 / m.opt.timestep)):
        mujoco.mj_step(m, d)
    assert d.qpos[qadr + 2] == pytest.approx(task.cube_half, abs=2e-3)


def test_position_control_holds_the_pose(task):
    obs = task.reset(seed=2)
    q0 = obs["arm_joint_positions"]
    worst = 0.0
    for _ in range(200):  # 2 s
        res = task.step(q0, 0.08)
        worst = max(worst, np.abs(res.observation["arm_joint_positions"] - q0).max())
    assert worst < 2e-3
    assert np.abs(res.observation["arm_joint_velocities"]).max() < 1e-2


def test_joint_target_step_is_tracked(task):
    obs = task.reset(seed=3)
    q = obs["arm_joint_positions"].copy()
    q[0] += 0.2
    q[3] += 0.1
    for _ in range(100):  # 1 s
        res = task.step(q, 0.08)
    np.testing.assert_allclose(res.observation["arm_joint_positions"], q, atol=5e-3)


def test_gripper_width_command_is_the_finger_width(task):
    task.reset(seed=4)
    q = task.observation()["arm_joint_positions"]
    for width in (0.06, 0.02):
        for _ in range(80):
            res = task.step(q, width)
        assert res.observation["gripper_width"][0] == pytest.approx(width, abs=1.5e-3)


def test_random_targets_keep_the_state_finite(task):
    task.reset(seed=5)
    rng = np.random.default_rng(0)
    jnt = task.model.dof_jntid[task.ids.arm_dof]
    lo, hi = task.model.jnt_range[jnt, 0], task.model.jnt_range[jnt, 1]
    for _ in range(30):
        q = rng.uniform(lo, hi)
        for _ in range(10):
            res = task.step(q, rng.uniform(0, 0.08))
        assert not res.info["nan"]
        assert all(np.all(np.isfinite(v)) for v in res.observation.values())


def test_nan_state_terminates_the_episode(task):
    obs = task.reset(seed=6)
    task.data.qvel[0] = np.nan
    res = task.step(obs["arm_joint_positions"], 0.08)
    assert res.terminated and res.info["nan"] and not res.success


@pytest.mark.parametrize("q, match", [
    (np.zeros(6), r"`q_target` must have shape \(7,\)"),
    (np.array([0, 0, 0, np.nan, 0, 0, 0.0]), "`q_target` must be finite"),
])
def test_bad_commands_are_refused_by_name(task, q, match):
    task.reset(seed=7)
    with pytest.raises(ValueError, match=match):
        task.step(q, 0.04)


def test_bad_gripper_command_is_refused(task):
    obs = task.reset(seed=7)
    with pytest.raises(ValueError, match="`gripper_width`"):
        task.step(obs["arm_joint_positions"], float("inf"))
