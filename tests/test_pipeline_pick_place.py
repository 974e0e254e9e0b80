"""The pick_place learning pipeline on the real MuJoCo task, with tiny budgets (seconds each).

Demonstrations from the scripted expert, a base decoder trained for a few steps, ONNX export with
a manifest the runtime accepts, LP-DS for a few env steps through the controller-driven env, and
the check that matters most: the training env executes a chunk exactly like the runtime's
`SteeringController` does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
from lps_sim.tasks import make_task
from lps_steering.core.controller import SteeringController
from lps_steering.core.kinematics import tcp_position
from lps_steering.core.manifest import ManifestError, load_manifest, sha256_file
from lps_steering.core.observation import ObservationAssembler
from lps_steering.core.policy import SteeredPolicy, load_model
from lps_train import dsrl, lpds, meanflow
from lps_train.checkpoints import load_decoder
from lps_train.cli import _load_demos, main
from lps_train.envs import NormalizedEnv
from lps_train.nets import project_to_sphere
from lps_train.normalization import Normalization
from lps_train.pick_place.dataset import load_dataset
from lps_train.pick_place.demos import collect, run_demo_episode
from lps_train.pick_place.env import ControllerEnv, ControllerEpisode, controller_config
from lps_train.pick_place.layout import (
    OBSERVATION_LAYOUT,
    OBSERVATION_LAYOUTS,
    make_pick_place,
    observation_vector,
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Two clean demonstrations -> a tiny MeanFlow decoder -> decoder.onnx + manifest."""
    root = tmp_path_factory.mktemp("pipeline")
    demos = root / "demos.npz"
    assert main(["collect", "--task", "pick_place", "--episodes", "2", "--quality", "clean", "--seed", "3",
                 "--out", str(demos)]) == 0
    ckpt = root / "meanflow.pt"
    assert main(["train-base", "--demos", str(demos), "--decoder", "meanflow", "--meanflow.steps", "15",
                 "--meanflow.hidden", "32", "--meanflow.layers", "2", "--out", str(ckpt)]) == 0
    onnx = root / "models" / "decoder.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(onnx)]) == 0
    return {"root": root, "demos": demos, "ckpt": ckpt, "onnx": onnx}


def test_dataset_rows_rebuild_the_commands_the_robot_was_sent(pipeline):
    data = load_dataset(pipeline["demos"])
    n = len(data["observations"])
    assert data["observations"].shape == (n, 17) and data["actions"].shape == (n, 8, 8)
    assert data["layout"]["quality"] == "clean" and data["layout"]["execute_steps"] == 4
    # Re-run episode 0 (seed 3): deltas + the row's arm joints give back the filtered commands.
    demo = run_demo_episode(make_pick_place(), 3, "clean")
    rows = data["episode_ids"] == 0
    assert rows.sum() == len(demo.observations)
    obs, acts = data["observations"][rows], data["actions"][rows]
    np.testing.assert_allclose(acts[:, 0, :7] + obs[:, :7], demo.executed[:, :7], atol=1e-5)
    np.testing.assert_allclose(acts[:-1, 1, :7] + obs[:-1, :7], demo.executed[1:, :7], atol=1e-5)
    np.testing.assert_allclose(acts[:, 0, 7], demo.executed[:, 7], atol=1e-7)
    # tcp_position is the core's forward kinematics of the arm joints, as the runtime computes it.
    np.testing.assert_allclose(obs[10, 8:11], tcp_position(obs[10, :7].astype(np.float64)), atol=1e-5)
    np.testing.assert_allclose(data["next_observations"][rows][:-4], obs[4:], atol=0)
    # The expert succeeded through the safety filter, holding at most a period or two: its grasp
    # stays above the runtime's workspace floor. Exactly the last env step (4 rows) carries reward
    # and done.
    assert demo.success and data["episode_success"][0] and demo.holds <= 2
    assert obs[:, 10].min() > controller_config("x.onnx").workspace_min[2]
    assert data["rewards"][rows].sum() == 4 and data["rewards"][rows][-4:].sum() == 4
    assert np.array_equal(data["dones"][rows], data["rewards"][rows])


def test_lps_reads_the_demonstrators_next_action_at_the_rows_next_state(pipeline):
    """Demonstration rows are one policy step apart and s' is `execute_steps` rows on: the next
    action of a SARSA target is that row's, and an LPS run with it goes through the CLI."""
    d, _, _ = _load_demos(str(pipeline["demos"]), next_actions=True)
    data = load_dataset(pipeline["demos"])
    rows = np.flatnonzero(data["episode_ids"] == 0)
    np.testing.assert_array_equal(d["next_actions"][rows[:-4]], data["actions"][rows[4:]])
    np.testing.assert_array_equal(d["next_actions"][rows[-4:]], data["actions"][rows[-4:]])  # s' ends the episode
    out = pipeline["root"] / "lps_data_target.pt"
    assert main(["train-head", "--algo", "lps", "--decoder", str(pipeline["ckpt"]), "--demos", str(pipeline["demos"]),
                 "--lps.steps", "3", "--lps.hidden", "16", "--lps.critic-layers", "1", "--lps.actor-layers", "1",
                 "--lps.batch-size", "8", "--lps.critic-target", "data", "--lps.reward-shift", "-1",
                 "--out", str(out)]) == 0
    # The exported head's manifest names the data it learnt from and each file's SHA-256.
    onnx = pipeline["root"] / "lps_data_target.onnx"
    assert main(["export", "--checkpoint", str(out), "--decoder-onnx", str(pipeline["onnx"]), "--out", str(onnx)]) == 0
    metrics = load_manifest(onnx).provenance.metrics
    assert metrics["demos"] == str(pipeline["demos"])
    assert metrics["demos_sha256"] == [hashlib.sha256(pipeline["demos"].read_bytes()).hexdigest()]


def test_lps_heads_saved_along_its_training_export_and_the_last_is_the_final_head(pipeline):
    out = pipeline["root"] / "lps_along.pt"
    args = ["train-head", "--algo", "lps", "--decoder", str(pipeline["ckpt"]), "--demos", str(pipeline["demos"]),
            "--lps.steps", "6", "--lps.hidden", "16", "--lps.critic-layers", "1", "--lps.actor-layers", "1",
            "--lps.batch-size", "8", "--out", str(out)]
    assert main([*args, "--save-head-every", "2"]) == 0
    saved = {u: torch.load(out.with_name(f"lps_along_u{u}.pt"), weights_only=False) for u in (2, 4, 6)}
    assert sorted(p.name for p in out.parent.glob("lps_along_u*.pt")) == [f"lps_along_u{u}.pt" for u in (2, 4, 6)]
    final = torch.load(out, weights_only=False)
    obs = torch.randn(5, final["head"].net[0].in_features)
    with torch.no_grad():
        assert torch.equal(saved[6]["head"](obs), final["head"](obs))
        assert not torch.equal(saved[2]["head"](obs), final["head"](obs))  # the saved heads differ along training
    assert saved[2]["command"] == final["command"] and saved[2]["demos_sha256"] == final["demos_sha256"]
    # A saved head is a checkpoint like the final one: it exports with its manifest.
    onnx = pipeline["root"] / "lps_along_u2.onnx"
    assert main(["export", "--checkpoint", str(out.with_name("lps_along_u2.pt")), "--decoder-onnx",
                 str(pipeline["onnx"]), "--out", str(onnx)]) == 0
    metrics = load_manifest(onnx).provenance.metrics
    assert metrics["demos"] == str(pipeline["demos"]) and metrics["train_updates"] == 2
    assert saved[6]["updates"] == 6 and "updates" not in final
    # Without the option nothing but the head is written, and with it the online heads refuse it.
    plain = pipeline["root"] / "lps_plain.pt"
    assert main([*args[:-1], str(plain)]) == 0
    assert not list(out.parent.glob("lps_plain_u*.pt"))
    with pytest.raises(SystemExit, match="save-head-every"):
        main(["train-head", "--algo", "lpds", "--decoder", str(pipeline["ckpt"]), "--env", "four_modes:unequal",
              "--save-head-every", "2", "--out", str(pipeline["root"] / "x.pt")])


def test_dataset_observation_equals_the_assembler_of_the_exported_manifest(pipeline):
    m = load_manifest(pipeline["onnx"])
    asm = ObservationAssembler(m, max_age_s=1.0)
    task = make_task("pick_place")
    obs = task.reset(5, "nominal")
    for s in asm.required_sources:
        asm.update(s, obs[s], 0.0)
    np.testing.assert_allclose(asm.assemble(0.0), observation_vector(obs), atol=1e-12)


def test_load_dataset_names_a_missing_field(tmp_path, pipeline):
    with np.load(pipeline["demos"]) as z:
        kept = {k: z[k] for k in z.files if k != "dones"}
    bad = tmp_path / "bad.npz"
    np.savez(bad, **kept)
    with pytest.raises(ValueError, match="dones"):
        load_dataset(bad)


def test_exported_decoder_manifest_is_valid_and_matches_torch(pipeline):
    model = load_model(pipeline["onnx"], "decoder", warmup_runs=1)
    m = model.manifest
    assert m.decoder_type == "meanflow" and m.latent_geometry == "sphere"
    assert (m.chunk_length, m.action_dim, m.latent_dim, m.obs_dim) == (8, 8, 64, 17)
    assert [e.source for e in m.observation.entries] == [s for _, s, _ in OBSERVATION_LAYOUT]
    assert [e.mode for e in m.action.entries] == ["joint_position_delta", "gripper_width"]
    assert m.provenance.metrics["parity_max_abs_err"] <= 1e-4
    assert m.provenance.metrics["parity_inputs"] == 1000
    assert "train-base" in m.provenance.metrics["train_command"] and m.provenance.commit is not None
    # Raw-unit inference through the core equals the torch decoder with the checkpoint's statistics.
    dec = meanflow.build_from_checkpoint(torch.load(pipeline["ckpt"], weights_only=False))
    norm = Normalization.from_dict(torch.load(pipeline["ckpt"], weights_only=False)["normalization"])
    policy = SteeredPolicy(model, seed=4)
    raw = load_dataset(pipeline["demos"])["observations"][7].astype(np.float64)
    out = policy.infer(raw)
    with torch.no_grad():
        ref = dec(torch.from_numpy(norm.normalize_obs(raw))[None], torch.from_numpy(out.latent)[None])[0].numpy()
    np.testing.assert_allclose(out.actions, norm.unnormalize_actions(ref), atol=1e-4)


def _recording(task):
    """Wrap task.step so every command sent to the sim is recorded."""
    sent = []
    step = task.step

    def record(q, g):
        sent.append(np.concatenate([np.asarray(q, float), [float(g)]]))
        return step(q, g)

    task.step = record
    return sent


def test_controller_env_executes_chunks_exactly_like_the_steering_controller(pipeline):
    seed, periods = 11, 250
    # A: the runtime path: SteeringController with its own ONNX policy, stepping the task.
    task_a = make_task("pick_place")
    sent_a = _recording(task_a)
    ctrl = SteeringController(controller_config(pipeline["onnx"], seed=seed))
    ctrl.configure()
    ep = ControllerEpisode(task_a, ctrl)
    ep.reset(seed)
    while ep.result.steps < periods and not ep.done:
        ep.period()
    # B: the training env, fed chunks by an identical policy (same decoder, same noise seed).
    task_b = make_task("pick_place")
    sent_b = _recording(task_b)
    env = ControllerEnv(pipeline["onnx"], task=task_b)
    policy = SteeredPolicy(load_model(pipeline["onnx"], "decoder", warmup_runs=0), seed=seed)
    obs = env.reset(seed)
    while len(sent_b) < periods:
        obs, _, done, _ = env.step(policy.infer(obs).actions.copy())
        if done:
            break
    a, b = np.array(sent_a[:periods]), np.array(sent_b[:periods])
    assert len(a) == len(b) == periods
    np.testing.assert_array_equal(a, b)
    assert ctrl.chunk_count >= periods // 40  # a replan every execute_steps = 4 actions (0.4 s)


def test_controller_env_refuses_a_misshapen_chunk_and_step_before_reset(pipeline):
    env = ControllerEnv(pipeline["onnx"])
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((8, 8)))
    env.reset(1)
    with pytest.raises(ValueError, match="action_chunk"):
        env.step(np.zeros((4, 8)))


def test_lpds_runs_a_few_env_steps_on_pick_place_and_exports_a_matching_head(pipeline, tmp_path):
    dec_ckpt = torch.load(pipeline["ckpt"], weights_only=False)
    dec = meanflow.build_from_checkpoint(dec_ckpt)
    norm = Normalization.from_dict(dec_ckpt["normalization"])
    env = NormalizedEnv(ControllerEnv(pipeline["onnx"]), norm)
    cfg = lpds.LPDSConfig(total_steps=24, learning_starts=8, batch_size=8, hidden=32, log_every=8)
    agent, log = lpds.train(cfg, env, dec, progress=False)
    # The residual moved off zero (it was trained) and the dual variable is tracked.
    assert torch.count_nonzero(agent.actor(torch.zeros(1, 17))) > 0
    assert len(log.series("lagrange/alpha")[0]) == 2
    # Base noise on the sphere, like the runtime's: the latents fed to the decoder have norm ~ 8.
    assert abs(log.series("latent/norm")[1][0] - 8.0) < 1.0
    onnx = _export_head(pipeline, agent.actor, tmp_path, cfg.delta)
    ctrl = SteeringController(controller_config(pipeline["onnx"], onnx))
    ctrl.configure()  # validates the head against the decoder's hash and layouts
    assert ctrl.head_type == "lpds" and ctrl.trust_region_delta == pytest.approx(0.35)


def _export_head(pipeline, actor, tmp_path, delta, head_type="lpds", config=None):
    head = tmp_path / f"{head_type}.pt"
    config = {"trust_region_delta": delta} if config is None else config
    torch.save({"head_type": head_type, "head": actor, "decoder": str(pipeline["ckpt"]), "task": "pick_place",
                "decoder_onnx": str(pipeline["onnx"]), "config": config,
                "command": "test", "train_wall_s": 0.0, "seed": 0}, head)
    onnx = tmp_path / "heads" / f"{head_type}.onnx"
    assert main(["export", "--checkpoint", str(head), "--out", str(onnx)]) == 0
    return onnx


def test_a_dsrl_head_runs_at_run_time_as_it_was_trained_sampling_and_on_the_sphere(pipeline, tmp_path):
    dec_ckpt = torch.load(pipeline["ckpt"], weights_only=False)
    dec = meanflow.build_from_checkpoint(dec_ckpt)
    norm = Normalization.from_dict(dec_ckpt["normalization"])
    env = NormalizedEnv(ControllerEnv(pipeline["onnx"]), norm)
    cfg = dsrl.DSRLConfig(total_steps=16, learning_starts=8, batch_size=8, hidden=32, log_every=8, utd=2,
                          distill_steps=2)
    agent, _ = dsrl.train(cfg, env, dec, progress=False)
    onnx = _export_head(pipeline, agent.actor, tmp_path, None, "dsrl", dataclasses.asdict(cfg))
    m = load_manifest(onnx)
    assert m.noise_input and m.latent_projection == "sphere"
    decoder, head = load_model(pipeline["onnx"], "decoder"), load_model(onnx, "head")
    policy = SteeredPolicy(decoder, head, seed=3)
    obs = np.concatenate([e.mean for e in m.observation.entries])  # normalises to zeros
    latents = np.stack([policy.infer(obs).latent for _ in range(4)])
    np.testing.assert_allclose(np.linalg.norm(latents, axis=1), 8.0, rtol=1e-5)
    assert np.abs(latents[0] - latents[1]).max() > 1e-3  # a fresh sample each inference
    # The same draw through the torch actor and the training projection gives the same latent.
    xi = np.random.default_rng(3).standard_normal((1, 64), dtype=np.float32)
    with torch.no_grad():
        w = project_to_sphere(agent.actor(torch.zeros(1, m.obs_dim), torch.from_numpy(xi)))
    np.testing.assert_allclose(latents[0], w[0].numpy(), atol=1e-4)


def test_head_manifest_pairs_only_with_its_decoder(pipeline, tmp_path):
    onnx = _export_head(pipeline, lpds.ResidualActor(17, 64, 16, 1), tmp_path, 0.35)
    other = tmp_path / "decoder.onnx"
    assert main(["train-base", "--demos", str(pipeline["demos"]), "--meanflow.steps", "3", "--meanflow.hidden", "32",
                 "--meanflow.layers", "2", "--meanflow.seed", "9", "--out", str(tmp_path / "other.pt")]) == 0
    assert main(["export", "--checkpoint", str(tmp_path / "other.pt"), "--out", str(other)]) == 0
    ctrl = SteeringController(controller_config(other, onnx))
    with pytest.raises(ManifestError, match="decoder_sha256"):
        ctrl.configure()


def test_evaluate_records_wilson_interval_in_the_manifest(pipeline, capsys):
    out = pipeline["root"] / "eval.json"
    assert main(["evaluate", "--decoder", str(pipeline["onnx"]), "--head", "none", "--episodes", "1",
                 "--seed", "100000", "--record", "--out", str(out)]) == 0
    res = json.loads(out.read_text())["results"][0]
    assert res["episodes"] == 1 and 0.0 <= res["wilson_low"] <= res["success_rate"] <= res["wilson_high"] <= 1.0
    m = load_manifest(pipeline["onnx"])  # still valid (sha of the .onnx unchanged) after recording
    assert m.provenance.metrics["eval_nominal"]["successes"] == res["successes"]
    assert len(res["outcomes"]) == 1 and res["outcomes"].count("1") == res["successes"]
    assert "95% Wilson" in capsys.readouterr().out


def test_heads_are_compared_with_the_base_seed_by_seed():
    from lps_train.pick_place.evaluation import EvalResult, paired_with_base

    def result(head: str, outcomes: str) -> EvalResult:
        return EvalResult(head, len(outcomes), outcomes.count("1"), 0.0, 1.0, 0.0, 0, 0.0, outcomes)

    base = result("none", "1100" * 25)                  # 50 of 100
    better = result("lps", "1110" * 25)                  # wins 25 seeds the base lost, loses none
    c = paired_with_base(base, better)
    assert (c["both"], c["only_head"], c["only_base"], c["neither"]) == (50, 25, 0, 25)
    assert c["difference"] == pytest.approx(0.25) and c["ci_low"] > 0 and c["separated"]
    # Same rate, other seeds: a difference of 0 that pairing cannot call a gain.
    shuffled = result("x", "0011" * 25)
    c = paired_with_base(base, shuffled)
    assert c["difference"] == 0 and c["only_head"] == c["only_base"] == 50 and not c["separated"]
    with pytest.raises(ValueError, match="the same episodes"):
        paired_with_base(base, result("short", "1" * 10))


def test_a_held_chunk_ends_the_env_step_and_with_terminate_on_hold_the_episode(pipeline):
    bad = np.full((8, 8), np.nan)  # the safety filter refuses non-finite commands: HOLD
    env = ControllerEnv(pipeline["onnx"])
    env.reset(2)
    _, reward, done, info = env.step(bad)
    # A chunk starts at its start point (the measured arm), so the first period is fine; the
    # second is refused, and the controller replans right after a hold: a 2-period env step.
    assert info["held"] and not done and reward == 0.0 and env.episode.result.steps == 2
    strict = ControllerEnv(pipeline["onnx"], terminate_on_hold=True)
    strict.reset(2)
    _, reward, done, info = strict.step(bad)
    assert done and info["terminated"] and not info["success"] and reward == 0.0
    with pytest.raises(RuntimeError, match="reset"):
        strict.step(np.zeros((8, 8)))


def test_policy_rollouts_form_a_dataset_of_the_chunks_the_policy_chose(pipeline, tmp_path):
    out = tmp_path / "rollouts.npz"
    assert main(["collect", "--task", "pick_place", "--policy", str(pipeline["onnx"]), "--episodes", "1",
                 "--seed", "4", "--out", str(out)]) == 0
    data = load_dataset(out)
    n = len(data["observations"])
    assert n > 10 and data["layout"]["quality"] == "rollouts"
    # Rows chain: each row's next observation is the next row's observation.
    np.testing.assert_array_equal(data["next_observations"][:-1], data["observations"][1:])
    assert data["dones"][:-1].sum() == 0 and data["rewards"][:-1].sum() == 0
    assert data["rewards"][-1] == float(data["episode_success"][0])
    # Row 0 is the frozen policy's own first chunk for that seed (noise seed = task seed).
    policy = SteeredPolicy(load_model(pipeline["onnx"], "decoder", warmup_runs=0), seed=4)
    np.testing.assert_allclose(data["actions"][0], policy.infer(data["observations"][0].astype(np.float64)).actions,
                               atol=1e-5)


def test_rollouts_with_terminate_on_hold_end_at_the_first_refused_chunk(pipeline, tmp_path, monkeypatch):
    """From its third chunk on the policy emits NaN, which the SafetyFilter refuses: with
    --terminate-on-hold that chunk is the episode's last row, a terminal failure."""
    original = SteeredPolicy.infer
    calls = {"n": 0}

    def failing(self, observation, images=None):
        out = original(self, observation, images)
        calls["n"] += 1
        if calls["n"] >= 3:
            out.actions = np.full_like(out.actions, np.nan)
        return out

    monkeypatch.setattr(SteeredPolicy, "infer", failing)
    out = tmp_path / "held.npz"
    assert main(["collect", "--task", "pick_place", "--policy", str(pipeline["onnx"]), "--episodes", "1",
                 "--seed", "4", "--terminate-on-hold", "--out", str(out)]) == 0
    data = load_dataset(out)
    assert len(data["observations"]) == 3 and data["layout"]["terminate_on_hold"] is True
    assert data["dones"].tolist() == [0.0, 0.0, 1.0] and data["rewards"].sum() == 0.0
    assert not data["episode_success"][0]
    with pytest.raises(SystemExit, match="--terminate-on-hold is for --task pick_place --policy"):
        main(["collect", "--task", "pick_place", "--episodes", "1", "--terminate-on-hold", "--out", str(out)])


def test_lift_bonus_is_paid_once_when_the_cube_first_clears_two_centimetres(pipeline):
    import mujoco

    env = ControllerEnv(pipeline["onnx"], lift_bonus=0.3)
    env.reset(5)
    assert not env.cube_lifted()
    hold = np.zeros((8, 8))
    hold[:, 7] = 0.08
    _, reward, _, _ = env.step(hold)
    assert reward == 0.0  # the cube rests on the table
    task = env.task
    # Carry the cube up by hand (a weld would do the same): it is now 5 cm above the table.
    adr = task._cube_qpos
    task.data.qpos[adr + 2] = task.cube_half + 0.05
    task.data.qvel[task._cube_dof:task._cube_dof + 6] = 0.0
    task.model.opt.gravity[:] = 0.0  # keep it there for the step
    mujoco.mj_forward(task.model, task.data)
    _, reward, _, _ = env.step(hold)
    assert reward == pytest.approx(0.3)
    _, reward, _, _ = env.step(hold)
    assert reward == 0.0  # once per episode
    with pytest.raises(ValueError, match="`lift_bonus` must be in"):
        ControllerEnv(pipeline["onnx"], lift_bonus=1.0)


def test_collect_set_overrides_the_quality_settings_and_records_them(pipeline, tmp_path):
    out = tmp_path / "careless.npz"
    assert main(["collect", "--task", "pick_place", "--episodes", "1", "--quality", "clean", "--seed", "3",
                 "--expert.early-close-prob", "1", "--expert.early-close", "0.03", "--out", str(out)]) == 0
    data = load_dataset(out)
    expert = data["layout"]["expert"]
    assert data["layout"]["quality"] == "clean"
    assert (expert["early_close_prob"], expert["early_close"]) == (1.0, 0.03)
    assert load_dataset(pipeline["demos"])["episode_success"][0]  # seed 3, `clean` as it is
    assert not data["episode_success"][0]  # the same seed with the careless close
    with pytest.raises(SystemExit):  # an unknown setting is refused by the parser, nothing runs
        main(["collect", "--task", "pick_place", "--episodes", "1", "--quality", "clean", "--expert.bogus", "1",
              "--out", str(tmp_path / "x.npz")])
    assert not (tmp_path / "x.npz").exists()


def test_a_velocity_layout_runs_from_demonstrations_to_the_runtime(pipeline, tmp_path):
    """`collect --observation state_velocity`: the joint velocities ride along from the dataset
    through training and export into the manifest, and the runtime's assembler builds the same
    24 values the demonstrations recorded."""
    demos, ckpt, onnx = tmp_path / "vel.npz", tmp_path / "vel.pt", tmp_path / "vel.onnx"
    assert main(["collect", "--task", "pick_place", "--episodes", "1", "--quality", "clean", "--seed", "3",
                 "--observation", "state_velocity", "--out", str(demos)]) == 0
    data = load_dataset(demos)
    base = load_dataset(pipeline["demos"])
    rows = base["episode_ids"] == 0  # the same seed in the default layout
    assert data["observations"].shape == (rows.sum(), 24)
    np.testing.assert_array_equal(data["observations"][:, :17], base["observations"][rows])
    velocities = data["observations"][:, 17:]
    assert np.abs(velocities).max() > 0.05  # the arm moves: not a zero-filled column
    assert [e["source"] for e in data["layout"]["observation"]][-1] == "arm_joint_velocities"
    assert main(["train-base", "--demos", str(demos), "--decoder", "meanflow", "--meanflow.steps", "5",
                 "--meanflow.hidden", "32", "--meanflow.layers", "2", "--out", str(ckpt)]) == 0
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(onnx)]) == 0
    m = load_manifest(onnx)
    assert [e.source for e in m.observation.entries][-1] == "arm_joint_velocities" and m.obs_dim == 24
    env = ControllerEnv(onnx)
    assert env.obs_dim == 24
    task = make_task("pick_place")
    obs = task.reset(3, "nominal")
    first = env.reset(3)
    np.testing.assert_allclose(first, observation_vector(obs, OBSERVATION_LAYOUTS["state_velocity"]),
                               atol=1e-12)
    np.testing.assert_allclose(first, data["observations"][0], atol=1e-5)
    # An offline head on demonstrations of the other layout is refused by name.
    with pytest.raises(SystemExit, match="observations have 17 values, the decoder takes 24"):
        main(["train-head", "--algo", "lps", "--decoder", str(ckpt), "--demos", str(pipeline["demos"]),
              "--lps.steps", "1", "--out", str(tmp_path / "lps.pt")])
    with pytest.raises(ValueError, match="observation layout must be one of"):
        collect(1, "clean", observation="images")
    # A base decoder is fitted on one layout: two datasets that disagree are refused, not stacked.
    with pytest.raises(SystemExit, match="observation layout"):
        main(["train-base", "--demos", str(pipeline["demos"]), str(demos), "--meanflow.steps", "1",
              "--meanflow.hidden", "32", "--meanflow.layers", "2", "--out", str(tmp_path / "mixed.pt")])


def test_train_base_concatenates_datasets_of_one_layout(pipeline, tmp_path):
    """Several collections of one operator (disjoint seed ranges) fit one decoder; its recorded row
    count and normalisation cover all of them."""
    more = tmp_path / "more.npz"
    assert main(["collect", "--task", "pick_place", "--episodes", "1", "--quality", "clean", "--seed", "11",
                 "--out", str(more)]) == 0
    ckpt = tmp_path / "both.pt"
    assert main(["train-base", "--demos", str(pipeline["demos"]), str(more), "--meanflow.steps", "2",
                 "--meanflow.hidden", "32", "--meanflow.layers", "2", "--out", str(ckpt)]) == 0
    a, b = load_dataset(pipeline["demos"]), load_dataset(more)
    both = np.concatenate([a["observations"], b["observations"]])
    _, norm, made = load_decoder(ckpt)
    assert made["extra"]["rows"] == len(both)
    assert str(more) in made["extra"]["demos"]
    np.testing.assert_allclose(norm.obs_mean, both.mean(0), rtol=1e-5, atol=1e-6)


def test_import_decoder_rebuilds_the_exported_weights_from_another_run(pipeline, tmp_path):
    """A base retrained with another seed (here without normalisation) has the exported one's
    architecture but other weights and statistics; the imported checkpoint carries the .onnx's
    weights and manifest normalisation, so torch reproduces ONNX Runtime. A head trained on it exports
    only against that .onnx; a template of another architecture is refused by name."""
    other = tmp_path / "other.pt"
    assert main(["train-base", "--demos", str(pipeline["demos"]), "--meanflow.steps", "3", "--meanflow.hidden", "32",
                 "--meanflow.layers", "2", "--meanflow.seed", "5", "--no-normalize", "--out", str(other)]) == 0
    out = tmp_path / "imported.pt"
    assert main(["import-decoder", "--onnx", str(pipeline["onnx"]), "--like", str(other), "--out", str(out)]) == 0
    imported, norm, ckpt = load_decoder(out)
    retrained, _, _ = load_decoder(other)
    shipped = load_model(pipeline["onnx"], "decoder")
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((64, 17)).astype(np.float32)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    ort_out = shipped.session.run(None, {"observation": obs, "latent": w})[0]
    with torch.no_grad():
        mine = imported(torch.from_numpy(obs), torch.from_numpy(w)).numpy()
        theirs = retrained(torch.from_numpy(obs), torch.from_numpy(w)).numpy()
    np.testing.assert_allclose(mine, ort_out, atol=1e-4)
    assert np.abs(theirs - ort_out).max() > 1e-2  # the template's own weights were really replaced
    _, exported_norm, _ = load_decoder(pipeline["ckpt"])
    for field in ("obs_mean", "obs_std", "act_mean", "act_std"):  # the template's are zeros and ones
        np.testing.assert_allclose(getattr(norm, field), getattr(exported_norm, field), rtol=1e-6, atol=1e-9)
    assert ckpt["extra"]["onnx_sha256"] == load_manifest(pipeline["onnx"]).onnx_sha256

    head = tmp_path / "lps.pt"
    torch.save({"head_type": "lps", "head": torch.nn.Linear(17, 64), "decoder": str(out), "task": "pick_place",
                "config": {}, "command": "test", "train_wall_s": 0.0, "seed": 0}, head)
    other_onnx = tmp_path / "other.onnx"
    assert main(["export", "--checkpoint", str(other), "--out", str(other_onnx)]) == 0
    with pytest.raises(SystemExit, match="is not that of the decoder the head was trained on"):
        main(["export", "--checkpoint", str(head), "--decoder-onnx", str(other_onnx), "--out", str(tmp_path / "h.onnx")])
    assert main(["export", "--checkpoint", str(head), "--decoder-onnx", str(pipeline["onnx"]),
                 "--out", str(tmp_path / "h.onnx")]) == 0
    # Trained through an imported decoder: the training recorded is the .onnx's, not the template's.
    made = load_manifest(tmp_path / "h.onnx").provenance.metrics
    assert made["decoder_imported_from"] == str(pipeline["onnx"])
    assert made["decoder_train_command"] == load_manifest(pipeline["onnx"]).provenance.metrics["train_command"]
    assert "--meanflow.steps 15" in made["decoder_train_command"]
    # A head trained through a decoder of its own run is checked against the .onnx numerically:
    # another training run's .onnx of the same architecture is refused, its own is recorded.
    own = tmp_path / "own_head.pt"
    torch.save({"head_type": "lps", "head": torch.nn.Linear(17, 64), "decoder": str(pipeline["ckpt"]),
                "task": "pick_place", "config": {}, "command": "test", "train_wall_s": 0.0, "seed": 0}, own)
    with pytest.raises(SystemExit, match="not the decoder the head was trained through"):
        main(["export", "--checkpoint", str(own), "--decoder-onnx", str(other_onnx), "--out", str(tmp_path / "o.onnx")])
    assert main(["export", "--checkpoint", str(own), "--decoder-onnx", str(pipeline["onnx"]),
                 "--out", str(tmp_path / "o.onnx")]) == 0
    metrics = load_manifest(tmp_path / "o.onnx").provenance.metrics
    assert metrics["decoder_parity_max_abs_err"] <= 1e-4
    assert metrics["decoder_demos_sha256"] == [sha256_file(pipeline["demos"])]
    assert metrics["decoder_config"]["hidden"] == 32 and metrics["decoder_config"]["steps"] == 15

    wide = tmp_path / "wide.pt"
    assert main(["train-base", "--demos", str(pipeline["demos"]), "--meanflow.steps", "1", "--meanflow.hidden", "48",
                 "--meanflow.layers", "2", "--out", str(wide)]) == 0
    with pytest.raises(SystemExit, match="do not match the template"):
        main(["import-decoder", "--onnx", str(pipeline["onnx"]), "--like", str(wide), "--out", str(tmp_path / "x.pt")])


@pytest.mark.slow
def test_lps_rounds_train_on_their_own_rollouts_and_keep_the_best_round(pipeline, tmp_path):
    """Two rounds with one rollout episode each: round 1 is kept unless round 2's rollouts succeed
    more often, round 2 trains on round 1's rollouts, and the kept checkpoint is copied to --out."""
    work, data, out = tmp_path / "runs", tmp_path / "data", tmp_path / "lps.pt"
    assert main(["lps-rounds", "--head.decoder", str(pipeline["ckpt"]), "--head.demos", str(pipeline["demos"]),
                 "--head.critic-features", "none", "--head.lps.steps", "2", "--head.lps.hidden", "16",
                 "--head.lps.critic-layers", "1", "--head.lps.actor-layers", "1", "--head.lps.batch-size", "8",
                 "--head.lps.critics", "2", "--head.lps.seed", "3", "--decoder-onnx", str(pipeline["onnx"]),
                 "--max-rounds", "2", "--rollout-episodes", "1", "--work-dir", str(work), "--data-dir", str(data),
                 "--out", str(out)]) == 0
    rounds = json.loads(out.with_suffix(".rounds.json").read_text())
    rates = [r["rollout_success"] for r in rounds["rounds"]]
    assert len(rates) == 2 and rounds["kept_round"] == (2 if rates[1] > rates[0] else 1)
    kept = work / f"lps_s3_round{rounds['kept_round']}.pt"
    assert out.read_bytes() == kept.read_bytes()
    first_rollouts = str(data / "rollouts_lps_s3_round1.npz")
    assert rounds["rounds"][0]["data"] == [str(pipeline["demos"])]
    assert rounds["rounds"][1]["data"] == [str(pipeline["demos"]), first_rollouts]
    second = torch.load(work / "lps_s3_round2.pt", weights_only=False)
    assert second["command"].startswith("lps-train train-head --preset shipped-lps")
    assert first_rollouts in second["command"] and second["config"]["seed"] == 3
    assert load_manifest(work / "lps_s3_round2.onnx").head_type == "lps"
    assert json.loads(out.with_suffix(".config.json").read_text())["config"]["max_rounds"] == 2
