"""Scripted experts: success, determinism, multimodality, quality knobs (real physics)."""

import numpy as np
import pytest
from lps_sim.experts import EXPERT_PRESETS, ExpertConfig, make_expert, run_expert_episode
from lps_sim.tasks import TASKS, make_task

SEEDS = range(5)


@pytest.fixture(scope="module", params=sorted(TASKS))
def task(request):
    t = make_task(request.param)
    yield t
    t.close()


def test_expert_succeeds_on_every_seed(task):
    results = [run_expert_episode(task, seed) for seed in SEEDS]
    assert [r.success for r in results] == [True] * len(SEEDS), [r.phases[-1] for r in results]
    for r in results:
        assert r.terminated and not r.truncated
        assert r.rewards[-1] >= task.config.reward_scales.success  # the success term was paid


def test_trajectory_is_recorded_at_the_policy_rate(task):
    traj = run_expert_episode(task, 7)
    n = len(traj)
    assert traj.q_targets.shape == (n, 7) and traj.gripper.shape == (n,) and traj.rewards.shape == (n,)
    for name, spec in task.observation_spec().items():
        assert traj.observations[name].shape == (n, *spec.shape)
    # Ten 100 Hz commands per 10 Hz target, except possibly the last (the episode ends mid-way).
    assert 10 * (n - 1) < task.steps <= 10 * n
    # Consecutive targets are small moves: the expert never jumps.
    assert np.abs(np.diff(traj.q_targets, axis=0)).max() < 0.2


def test_same_seed_same_trajectory_bitwise(task):
    noisy = EXPERT_PRESETS["noisy"]
    a = run_expert_episode(task, 3, "sim2real", noisy)
    b = run_expert_episode(task, 3, "sim2real", noisy)
    np.testing.assert_array_equal(a.q_targets, b.q_targets)
    np.testing.assert_array_equal(a.gripper, b.gripper)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    for k in a.observations:
        np.testing.assert_array_equal(a.observations[k], b.observations[k])
    c = run_expert_episode(task, 4, "sim2real", noisy)
    assert len(c) != len(a) or not np.array_equal(c.q_targets, a.q_targets)


def test_global_numpy_rng_is_untouched(task):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    run_expert_episode(task, 1, "sim2real", "noisy")
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_pick_place_demonstrations_are_multimodal():
    task = make_task("pick_place")
    grasp_classes, sides = set(), set()
    for seed in range(12):
        task.reset(seed)
        expert = make_expert(task, "clean", 10.0, seed)
        rel = (expert.grasp_yaw - task.object_yaw()) % np.pi
        grasp_classes.add(int(round(rel / (np.pi / 2))) % 2)  # 0: one face pair, 1: the other
        sides.add(expert.arc_side)
    assert grasp_classes == {0, 1}
    assert sides == {-1.0, 1.0}
    task.close()


def test_noise_knobs_change_the_demonstration():
    task = make_task("pick_place")
    clean = run_expert_episode(task, 2, expert="clean")
    noisy = run_expert_episode(task, 2, expert=ExpertConfig(action_noise=0.01, hesitation_prob=0.3))
    assert len(noisy) > len(clean)  # hesitation costs time
    # Action noise makes consecutive targets rougher (second differences).
    rough = [np.abs(np.diff(t.q_targets, 2, axis=0)).mean() for t in (clean, noisy)]
    assert rough[1] > 2 * rough[0]
    task.close()


def test_imprecision_can_make_the_expert_fail():
    task = make_task("peg_ring", episode_limit_s=9.0)
    results = [run_expert_episode(task, s, expert=ExpertConfig(imprecision=0.05)).success for s in range(3)]
    assert not all(results)
    task.close()


def test_a_careless_operator_closes_early_and_loses_the_cube():
    task = make_task("pick_place")
    careful = run_expert_episode(task, 1, expert="clean")
    careless_cfg = ExpertConfig(early_close_prob=1.0, early_close=0.03)
    careless = run_expert_episode(task, 1, expert=careless_cfg)
    assert careful.success and not careless.success
    # The hand closed high: the first closing command came with the TCP well above the careful one.
    z = [t.observations["tcp_position"][np.argmax(t.gripper < 0.01), 2] for t in (careful, careless)]
    assert z[1] > z[0] + 0.02
    task.close()


def test_an_operator_who_drops_the_cube_lifts_it_first_and_fails():
    task = make_task("pick_place")
    careful = run_expert_episode(task, 2, expert="clean")
    dropped = run_expert_episode(task, 2, expert=ExpertConfig(drop_prob=1.0))
    assert careful.success and not dropped.success
    # The same grasp: the cube left the table in the hand, then the fingers opened in the air.
    cube_z = dropped.observations["object_position"][:, 2]
    lifted = np.flatnonzero(cube_z > cube_z[0] + 0.05)
    assert lifted.size, cube_z.max()
    opened = np.flatnonzero(dropped.gripper[lifted[0]:] > 0.07)
    assert opened.size and cube_z[lifted[0] + opened[0]] > cube_z[0] + 0.05
    assert cube_z[-1] < cube_z[0] + 0.01  # back down on the table (or the floor), not placed
    task.close()


def test_dropping_operators_are_drawn_per_episode_without_touching_other_draws():
    task = make_task("pick_place")
    drops = []
    for seed in range(12):
        task.reset(seed)
        a, b = make_expert(task, "clean", 10.0, seed), make_expert(task, ExpertConfig(drop_prob=0.5), 10.0, seed)
        assert (a.grasp_yaw, a.arc_side, *a.grasp_error, a.careless) == (b.grasp_yaw, b.arc_side, *b.grasp_error,
                                                                         b.careless)
        assert not a.drops
        drops.append(b.drops)
    assert 0 < sum(drops) < len(drops)
    task.close()


def test_settle_steps_wait_at_the_grasp_point_with_open_fingers():
    task = make_task("pick_place")
    plain = run_expert_episode(task, 4, expert="clean")
    settled = run_expert_episode(task, 4, expert=ExpertConfig(settle_steps=3))
    assert plain.success and settled.success
    assert settled.phases.count("descend") == plain.phases.count("descend") + 3
    # The fingers were still commanded open during the wait.
    last_descend = len(settled.phases) - 1 - settled.phases[::-1].index("descend")
    assert settled.gripper[last_descend] > 0.07
    task.close()


def test_operators_are_drawn_per_episode_without_touching_other_draws():
    task = make_task("pick_place")
    mixed = ExpertConfig(early_close_prob=0.5)
    drawn = []
    for seed in range(12):
        task.reset(seed)
        a, b = make_expert(task, "clean", 10.0, seed), make_expert(task, mixed, 10.0, seed)
        assert (a.grasp_yaw, a.arc_side, *a.grasp_error) == (b.grasp_yaw, b.arc_side, *b.grasp_error)
        assert not a.careless
        drawn.append(b.careless)
    assert 0 < sum(drawn) < len(drawn)
    task.close()


def test_bad_expert_settings_are_refused():
    with pytest.raises(ValueError, match="`hesitation_prob` must be in"):
        ExpertConfig(hesitation_prob=1.5)
    with pytest.raises(ValueError, match="`action_noise` must be >= 0"):
        ExpertConfig(action_noise=-0.1)
    with pytest.raises(ValueError, match="`early_close_prob` must be in"):
        ExpertConfig(early_close_prob=-0.1)
    with pytest.raises(ValueError, match="`settle_steps` must be >= 0"):
        ExpertConfig(settle_steps=-1)
    task = make_task("pick_place")
    with pytest.raises(ValueError, match="expert preset 'perfect' not found"):
        run_expert_episode(task, 0, expert="perfect")
    with pytest.raises(ValueError, match="`policy_rate_hz`"):
        run_expert_episode(task, 0, policy_rate_hz=30.0)
    task.close()
