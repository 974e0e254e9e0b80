"""Four-mode toy env, its demonstrator, and the mode metrics used by the paper checks."""

import math

import numpy as np
import pytest
import torch
from lps_sim.four_modes import FourModes, FourModesConfig, collect_demos, goal_shares, make
from lps_train.entropy import knn_entropy
from lps_train.toy_setup import mode_metrics, toy_env


def test_reaching_a_goal_pays_its_reward_and_ends_the_episode():
    env = make("unequal")
    obs = env.reset(0)
    assert np.allclose(obs, 0.0)  # fixed start in this variant
    total, done, info = 0.0, False, {}
    while not done:
        _, r, done, info = env.step(np.tile([0.0, 1.0], (8, 1)))  # straight north: goal 1
        total += r
    assert info["goal"] == 1 and info["terminated"] and total == pytest.approx(0.9)


def test_time_limit_truncates_without_termination_and_penalty_applies():
    env = make("nearer")
    env.reset(0)
    rewards = [env.step(np.zeros((8, 2)))[1] for _ in range(env.cfg.max_env_steps - 1)]
    _, r, done, info = env.step(np.zeros((8, 2)))
    assert done and info["truncated"] and not info["terminated"] and info["goal"] == -1
    assert all(x == pytest.approx(-0.05) for x in rewards + [r])


def test_env_rejects_bad_chunks():
    env = FourModes()
    env.reset(0)
    with pytest.raises(ValueError, match=r"shape \(8, 2\)"):
        env.step(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full((8, 2), np.nan))
    with pytest.raises(ValueError, match="execute_steps"):
        FourModesConfig(execute_steps=9)
    with pytest.raises(ValueError, match="variant"):
        make("pentagon")


def test_commands_are_clipped_to_unit_speed_and_start_is_near_origin():
    env = FourModes()
    p0 = env.reset(3)
    assert np.abs(p0).max() <= 0.05
    p1, *_ = env.step(np.full((8, 2), 10.0))
    assert np.linalg.norm(p1 - p0) == pytest.approx(8 * 0.05, rel=1e-4)


def test_demonstrator_visits_all_four_goals():
    demos = collect_demos(FourModes(), 200, seed=1)
    ends = demos["dones"] > 0
    assert ends.sum() == 200  # every demonstration reaches a goal
    shares = goal_shares(demos["goals"][ends])
    assert shares.min() > 0.15, shares


def test_knn_entropy_matches_a_gaussian_and_orders_spread():
    rng = np.random.default_rng(0)
    for d, sigma in ((2, 1.0), (4, 0.5)):
        x = sigma * rng.standard_normal((2000, d))
        true = 0.5 * d * math.log(2 * math.pi * math.e * sigma**2)
        assert knn_entropy(x) == pytest.approx(true, abs=0.15)
    one_mode = 0.05 * rng.standard_normal((500, 2))
    four_modes = one_mode + np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])[rng.integers(0, 4, 500)]
    assert knn_entropy(four_modes) > knn_entropy(one_mode) + 1.0


def test_mode_metrics_tell_a_single_goal_policy_from_a_four_goal_one():
    env = make("symmetric")

    def scripted(goal_fn):
        def policy(obs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            goals = goal_fn(len(obs), gen)
            dirs = torch.tensor(env.goals, dtype=torch.float32)[goals] - obs
            dirs = dirs / dirs.norm(dim=-1, keepdim=True)
            return dirs[:, None, :].expand(-1, 8, -1) * 0.8
        return policy

    one = mode_metrics(env, scripted(lambda n, g: torch.zeros(n, dtype=torch.long)), episodes=40, entropy_samples=64)
    # A different goal per call: starts pick spread directions (episodes wander, which is fine).
    four = mode_metrics(env, scripted(lambda n, g: torch.randint(0, 4, (n,), generator=g)), episodes=40,
                        entropy_samples=64)
    assert one["modes/coverage"] == 1 and one["modes/share_goal0"] == 1.0
    assert four["modes/knn_action_entropy"] > one["modes/knn_action_entropy"] + 1.0


@pytest.mark.slow  # ~20 s of CPU: trains a base policy, an LP-DS head and a DSRL head
def test_paper_check_fast_version_writes_results_and_measures_the_constraint(tmp_path, load_check):
    check = load_check("four_modes_check")
    res = check.run("unequal", steps=400, deltas=[0.05], seed=0, eval_every=200, eval_episodes=20,
                    base_steps=300, progress=False, out=tmp_path)
    assert {"results.json", "modes_and_drift.png", "goal_shares.png", "dsrl.csv"} <= {p.name for p in tmp_path.iterdir()}
    runs = res["runs"]
    assert set(runs) == {"base", "lpds_delta0.05", "dsrl"}
    for r in runs.values():
        assert 0 <= r["final"]["modes/success"] <= 1 and 0 <= r["final"]["modes/coverage"] <= 4
    # LP-DS latents are eps + Delta with a small Delta: their norm stays near sqrt(d).
    assert abs(np.mean(runs["lpds_delta0.05"]["latent_norm"]) - res["sqrt_d"]) < 1.0
    assert np.isfinite(runs["lpds_delta0.05"]["delta_sq_last"])
    # DSRL learns from the authors' reward: 1 per executed action of the chunk (8) until the goal.
    assert toy_env("unequal").cfg.execute_steps == 8 and res["dsrl_config"]["reward_offset"] == 8
    # Another cost per step is a run of its own beside it; the runs not retrained are read back.
    again = check.run("unequal", steps=400, deltas=[0.05], seed=0, eval_every=200, eval_episodes=20,
                      base_steps=300, progress=False, out=tmp_path, methods=("dsrl",), dsrl_reward_offset=0.0)
    assert set(again["runs"]) == {"base", "lpds_delta0.05", "dsrl", "dsrl_reward_offset0"}
    assert again["runs"]["dsrl"] == runs["dsrl"] and again["runs"]["lpds_delta0.05"] == runs["lpds_delta0.05"]
    assert again["dsrl_config"]["reward_offset"] == 8 and again["dsrl_reward_offset0_config"]["reward_offset"] == 0
    assert (tmp_path / "dsrl_reward_offset0.csv").exists()
