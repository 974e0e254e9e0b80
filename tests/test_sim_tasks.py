"""Task API: registry, configs, observations, rewards, termination (real MuJoCo)."""

import numpy as np
import pytest
from lps_sim.tasks import OBSERVATION_SOURCES, TASKS, make_task


@pytest.fixture(scope="module", params=sorted(TASKS))
def task(request):
    t = make_task(request.param)
    yield t
    t.close()


def test_unknown_task_lists_the_available_ones():
    with pytest.raises(KeyError, match="Task 'stack' not found. Available tasks: peg_ring, pick_place"):
        make_task("stack")


def test_unknown_override_names_the_field():
    with pytest.raises(ValueError, match="unknown config field `episode_limit`"):
        make_task("pick_place", episode_limit=3.0)


def test_bad_override_values_are_refused():
    with pytest.raises(ValueError, match="`control_period_s` must be a positive multiple"):
        make_task("pick_place", control_period_s=0.003)
    with pytest.raises(ValueError, match="`reward_type`"):
        make_task("pick_place", reward_type="dense")


def test_observation_has_the_manifest_sources_with_the_spec_shapes(task):
    obs = task.reset(seed=0)
    spec = task.observation_spec()
    assert tuple(obs) == OBSERVATION_SOURCES == tuple(spec)
    for name, value in obs.items():
        assert value.shape == spec[name].shape, name
        assert np.all(np.isfinite(value))
    np.testing.assert_allclose(obs["tcp_position"], task.tcp_position())
    np.testing.assert_allclose(obs["object_position"], task.object_position())


def test_reset_randomises_objects_by_seed(task):
    a = task.reset(seed=10)
    b = task.reset(seed=11)
    a2 = task.reset(seed=10)
    assert not np.allclose(a["object_position"], b["object_position"])
    assert not np.allclose(a["target_position"], b["target_position"])
    for k in a:
        np.testing.assert_array_equal(a[k], a2[k])
    assert np.linalg.norm(a["object_position"][:2] - a["target_position"][:2]) >= task.config.min_separation


def test_observation_returns_copies(task):
    obs = task.reset(seed=1)
    obs["arm_joint_positions"][:] = 99.0
    assert task.observation()["arm_joint_positions"][0] != 99.0


def test_shaped_reward_is_the_scaled_sum_of_the_raw_terms(task):
    obs = task.reset(seed=2)
    res = task.step(obs["arm_joint_positions"], 0.08)
    terms = res.info["reward_terms"]
    scales = task.config.reward_scales
    assert set(terms) == {f for f in vars(scales)}
    assert res.reward == pytest.approx(sum(getattr(scales, k) * v for k, v in terms.items()))
    assert terms["success"] == 0.0 and not res.success


def test_reach_term_grows_as_the_tcp_approaches_the_object(task):
    obs = task.reset(seed=3)
    far = task.step(obs["arm_joint_positions"], 0.08).info["reward_terms"]["reach"]
    # Put the arm state itself near the object via a few IK-free steps: move the object instead.
    import mujoco
    body = task._object_bodies()[0]
    jnt = task.model.body_jntadr[body]
    adr = task.model.jnt_qposadr[jnt]
    tcp = task.tcp_position()
    task.data.qpos[adr:adr + 3] = tcp - [0, 0, 0.03]
    mujoco.mj_forward(task.model, task.data)
    near = task._reward_terms()["reach"]
    assert near > far + 0.3


def test_sparse_reward_is_zero_without_success():
    t = make_task("pick_place", reward_type="sparse")
    obs = t.reset(seed=0)
    res = t.step(obs["arm_joint_positions"], 0.08)
    assert res.reward == 0.0
    t.close()


def test_episode_is_truncated_at_the_limit():
    t = make_task("pick_place", episode_limit_s=0.05)
    obs = t.reset(seed=0)
    results = [t.step(obs["arm_joint_positions"], 0.08) for _ in range(5)]
    assert [r.truncated for r in results] == [False] * 4 + [True]
    assert not any(r.terminated for r in results)
    t.close()


def test_object_placed_in_the_target_released_counts_as_success():
    import mujoco
    t = make_task("pick_place")
    obs = t.reset(seed=4)
    adr = t._cube_qpos
    t.data.qpos[adr:adr + 3] = [*obs["target_position"][:2], t.cube_half]
    t.data.qpos[adr + 3:adr + 7] = [1, 0, 0, 0]
    mujoco.mj_forward(t.model, t.data)
    res = t.step(obs["arm_joint_positions"], 0.08)
    assert res.success and res.terminated
    # 3 cm outside the zone is not.
    obs = t.reset(seed=4)
    t.data.qpos[adr:adr + 3] = [obs["target_position"][0] + t.config.target_radius + 0.03,
                                obs["target_position"][1], t.cube_half]
    mujoco.mj_forward(t.model, t.data)
    assert not t.step(obs["arm_joint_positions"], 0.08).success
    t.close()


def test_ring_beside_the_peg_is_not_success_but_around_it_is():
    import mujoco
    from lps_sim.tasks.peg_ring import RING_TUBE
    t = make_task("peg_ring")
    obs = t.reset(seed=5)
    adr = t.model.jnt_qposadr[t.model.body_jntadr[t._ring_body]]
    peg = obs["target_position"]
    t.data.qpos[adr:adr + 3] = [peg[0] + 0.15, peg[1], RING_TUBE]
    mujoco.mj_forward(t.model, t.data)
    assert not t.step(obs["arm_joint_positions"], 0.08).success
    t.data.qpos[adr:adr + 3] = [peg[0], peg[1], RING_TUBE + 0.005]
    t.data.qvel[:] = 0
    mujoco.mj_forward(t.model, t.data)
    for _ in range(20):
        res = t.step(obs["arm_joint_positions"], 0.08)
        if res.terminated:
            break
    assert res.success
    t.close()


def test_joint_state_has_nine_franka_named_joints(task):
    task.reset(seed=6)
    names, q, v, e = task.joint_state()
    assert len(names) == 9 and names[0] == "fr3_joint1" and names[-1] == "fr3_finger_joint2"
    assert q.shape == v.shape == e.shape == (9,)
