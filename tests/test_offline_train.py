"""Offline LPS from the trajectory format, end to end on a tiny budget: recordings of the stack's
topics -> dataset -> decoder + head -> ONNX + manifests the runtime validates -> SteeredPolicy; the
reference's joint update keeps each loss on its own parameters; OGBench data trains and runs in the
benchmark's environment through the same SteeredPolicy."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from lps_steering.core.manifest import ManifestError, load_manifest
from lps_steering.core.policy import SteeredPolicy, load_model
from lps_train import lps, meanflow
from lps_train.cli import main
from lps_train.meanflow import MeanFlowConfig, MeanFlowDecoder
from lps_train.offline import format as fmt
from lps_train.offline import ogbench
from lps_train.offline.chunks import ChunkDataset
from lps_train.offline.export import load_unchecked
from offline_fixtures import write_ogbench_npz, write_stack_mcap

TINY = ["--lps.steps", "30", "--lps.batch-size", "16", "--lps.hidden", "32", "--lps.critic-layers", "2",
        "--lps.actor-layers", "1", "--lps.log-every", "10", "--meanflow.hidden", "32", "--meanflow.layers", "2"]


def test_recordings_train_into_models_the_runtime_loads_and_steers(tmp_path):
    files = []
    for i in range(3):
        write_stack_mcap(tmp_path / f"ep{i}.mcap", seconds=1.2, done_at=0.9, success=i != 1, seed=i)
        files.append(str(tmp_path / f"ep{i}.mcap"))
    assert main(["convert", "--source", "mcap", "--input", *files, "--out", str(tmp_path / "ds")]) == 0
    assert main(["train-offline", "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "run"),
                 "--chunk-length", "4", *TINY]) == 0
    # The runtime's own loader validates the manifests (layout, hashes, decoder binding).
    decoder = load_model(tmp_path / "run" / "decoder.onnx", "decoder")
    head = load_model(tmp_path / "run" / "heads" / "lps.onnx", "head")
    m = decoder.manifest
    assert (m.chunk_length, m.action_dim, m.policy_rate_hz, m.robot) == (4, 8, 10.0, "fr3")
    assert [e.source for e in m.observation.entries][0] == "arm_joint_positions"
    assert head.manifest.decoder_sha256 == decoder.sha256
    assert load_manifest(tmp_path / "run" / "heads" / "lps.onnx").provenance.metrics["gradient_steps"] == 30
    data = fmt.load(tmp_path / "ds")
    steered, base = SteeredPolicy(decoder, head, seed=0), SteeredPolicy(decoder, None, seed=0)
    out = steered.infer(data.observations[0].astype(np.float32))
    assert out.actions.shape == (4, 8) and np.isfinite(out.actions).all()
    assert math.isclose(out.latent_norm, math.sqrt(32), rel_tol=1e-5)
    # The head picks its latent from the observation; the base draws it: their chunks differ.
    assert not np.allclose(out.actions, base.infer(data.observations[0].astype(np.float32)).actions)
    rows = [line.split(",") for line in (tmp_path / "run" / "train.csv").read_text().splitlines()[1:]]
    assert [int(step) for key, step, _ in rows if key == "losses/q"] == [10, 20, 30]


def _chunks(h=3, seed=0) -> ChunkDataset:
    rng = np.random.default_rng(seed)
    n = 40
    data = fmt.Trajectories(observation=(fmt.Entry("s", 4),), action=(fmt.Entry("a", 2),),
                            observations=rng.normal(size=(n, 4)), actions=rng.normal(size=(n, 2)),
                            rewards=rng.normal(size=n), terminals=np.zeros(n, bool), episode_lengths=[n],
                            final_observations=rng.normal(size=(1, 4)), success=[False], timeouts=[True])
    return ChunkDataset(data, h, 0.99)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_the_joint_update_keeps_each_loss_on_its_own_parameters():
    data = _chunks()
    cfg = lps.LPSConfig(hidden=16, critic_layers=2, actor_layers=1, batch_size=8)
    dec_cfg = MeanFlowConfig(hidden=16, layers=2, ema_decay=0.0)
    torch.manual_seed(0)
    agent = lps.JointLPSAgent(cfg, MeanFlowDecoder(4, 2, 3, dec_cfg), dec_cfg)
    batch = data.sample(8, np.random.default_rng(0))
    dec, q, actor = _params(agent.decoder), _params(agent.q), _params(agent.actor)
    agent.update_actor(batch)
    assert _changed(actor, agent.actor)
    assert not _changed(dec, agent.decoder) and not _changed(q, agent.q)
    agent.update_decoder(batch)
    assert _changed(dec, agent.decoder) and not _changed(q, agent.q)
    # A zero discount leaves the TD target at the chunk's reward: the batch's gamma^H is what is used.
    batch["discounts"] = torch.zeros(8)
    with torch.no_grad():
        qs = agent.q(batch["obs"], batch["actions"])
    info = agent.update_critic(batch)
    assert info["losses/q"] == pytest.approx(float(((qs - batch["rewards"]) ** 2).mean(1).sum()), rel=1e-5)


def test_sarsa_targets_come_from_the_datas_next_chunk_and_never_from_the_actor():
    data = _chunks()
    dec_cfg = MeanFlowConfig(hidden=16, layers=2)
    batch = data.sample(8, np.random.default_rng(1))
    decoder = MeanFlowDecoder(4, 2, 3, dec_cfg)

    def critic_after_one_update(target: str, actor_seed: int) -> list[torch.Tensor]:
        torch.manual_seed(0)
        agent = lps.LPSAgent(lps.LPSConfig(hidden=16, critic_layers=2, actor_layers=1, critic_target=target), decoder)
        torch.manual_seed(actor_seed)
        for p in agent.actor.parameters():
            torch.nn.init.normal_(p)
        agent.update_critic(batch)
        return _params(agent.q)

    def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    from_data = critic_after_one_update("data", 1)
    assert same(from_data, critic_after_one_update("data", 2))
    assert not same(critic_after_one_update("policy", 1), critic_after_one_update("policy", 2))
    # The data's target is the next chunk's: another next chunk, another update.
    batch["next_actions"] = batch["next_actions"] + 1.0
    assert not same(from_data, critic_after_one_update("data", 1))


def test_action_bounds_clamp_what_the_critics_and_the_actor_read():
    dec_cfg = MeanFlowConfig(hidden=16, layers=2)
    torch.manual_seed(0)
    decoder = MeanFlowDecoder(4, 2, 3, dec_cfg)
    with torch.no_grad():
        decoder.net.body[-1].bias.fill_(5.0)  # every decoded action far above the bound
    cfg = lps.LPSConfig(hidden=16, critic_layers=2, actor_layers=1)
    bounded = lps.LPSAgent(cfg, decoder, action_bounds=(np.array([-1.0, -2.0]), np.array([1.0, 0.5])))
    s, w = torch.zeros(8, 4), decoder.sample_latent(8)
    a = bounded.decode(s, w)
    assert torch.equal(a[..., 0], torch.ones(8, 3)) and torch.equal(a[..., 1], torch.full((8, 3), 0.5))
    assert (lps.LPSAgent(cfg, decoder).decode(s, w) > 1.0).all()


def test_a_frozen_decoder_stays_fixed_and_a_foreign_one_is_refused(tmp_path):
    data = _chunks()
    cfg = lps.LPSConfig(hidden=16, critic_layers=2, actor_layers=1, batch_size=8, steps=5, log_every=5)
    dec_cfg = MeanFlowConfig(hidden=16, layers=2)
    decoder = MeanFlowDecoder(4, 2, 3, dec_cfg)
    before = _params(decoder)
    agent, _ = lps.train_from_chunks(cfg, dec_cfg, data, "frozen", decoder=decoder, progress=False)
    assert agent.decoder is decoder and not _changed(before, decoder)
    with pytest.raises(ValueError, match="differ from the data's"):
        lps.train_from_chunks(cfg, dec_cfg, _chunks(h=2), "frozen", decoder=decoder, progress=False)
    with pytest.raises(ValueError, match="must be 'frozen'"):
        lps.train_from_chunks(cfg, dec_cfg, data, "joint", decoder=decoder, progress=False)


class _Killed(Exception):
    """Stands in for the process dying mid-run (a session's end, a device's time limit)."""


def _state(agent) -> dict[str, list[torch.Tensor]]:
    return {n: _params(getattr(agent, n)) for n in ("decoder", "actor", "q", "q_target")}


@pytest.mark.parametrize("decoder_training", ["joint", "frozen"])
def test_an_interrupted_run_continues_from_its_checkpoint_to_the_uninterrupted_result(tmp_path, monkeypatch,
                                                                                     decoder_training):
    data = _chunks()
    cfg = lps.LPSConfig(hidden=16, critic_layers=2, actor_layers=1, batch_size=8, steps=12, log_every=2,
                        eval_every=7)
    dec_cfg = MeanFlowConfig(hidden=16, layers=2, steps=1)

    def run(eval_fn, **kw):
        return lps.train_from_chunks(cfg, dec_cfg, data, decoder_training, decoder_steps=6, progress=False,
                                     eval_fn=eval_fn, **kw)

    def evaluate(step, agent):
        return {"eval/actor_norm": float(sum(p.norm() for p in agent.actor.parameters()))}

    def dies(step, agent):
        raise _Killed

    straight, straight_log = run(evaluate)
    ckpt = tmp_path / "resume.pt"
    with pytest.raises(_Killed):  # at update 7, three updates after the checkpoint at 4
        run(dies, checkpoint=ckpt, checkpoint_every=4)
    assert torch.load(ckpt, weights_only=False)["step"] == 4
    # A restart from scratch would end in the same place (same seeds): count what the continuation does.
    cls = lps.JointLPSAgent if decoder_training == "joint" else lps.LPSAgent
    updates, update = [], cls.update
    monkeypatch.setattr(cls, "update", lambda self, b: updates.append(1) or update(self, b))
    monkeypatch.setattr(meanflow, "train", lambda *a, **k: pytest.fail("the fitted decoder was fitted again"))
    resumed, resumed_log = run(evaluate, checkpoint=ckpt, checkpoint_every=4)
    assert len(updates) == 8
    a, b = _state(straight), _state(resumed)
    for name in a:
        assert all(torch.equal(x, y) for x, y in zip(a[name], b[name], strict=True)), name
    assert dict(resumed_log.history) == dict(straight_log.history)
    assert [s for s, _ in resumed_log.history["eval/actor_norm"]] == [7]


def test_a_finished_run_goes_on_with_more_steps_and_refuses_other_settings(tmp_path):
    data = _chunks()
    cfg = lps.LPSConfig(hidden=16, critic_layers=2, actor_layers=1, batch_size=8, steps=6, log_every=3)
    dec_cfg = MeanFlowConfig(hidden=16, layers=2)
    ckpt = tmp_path / "resume.pt"

    def run(c, **kw):
        return lps.train_from_chunks(c, dec_cfg, data, "joint", progress=False, **kw)[0]

    run(cfg, checkpoint=ckpt, checkpoint_every=3)
    longer = dataclasses.replace(cfg, steps=9)
    went_on, straight = run(longer, checkpoint=ckpt, checkpoint_every=3), run(longer)
    assert torch.load(ckpt, weights_only=False)["step"] == 9
    assert all(torch.equal(x, y) for x, y in zip(_params(went_on.actor), _params(straight.actor), strict=True))
    with pytest.raises(ValueError, match=r"other settings \(lps\.critic_lr\)"):
        run(dataclasses.replace(longer, critic_lr=1e-3), checkpoint=ckpt, checkpoint_every=3)
    with pytest.raises(ValueError, match="beyond the 6"):
        run(cfg, checkpoint=ckpt, checkpoint_every=3)


def test_train_offline_started_again_continues_its_run(tmp_path, capsys):
    for i in range(2):
        write_stack_mcap(tmp_path / f"ep{i}.mcap", seconds=1.2, done_at=0.9, success=i == 0, seed=i)
    assert main(["convert", "--source", "mcap", "--input", str(tmp_path / "ep0.mcap"), str(tmp_path / "ep1.mcap"),
                 "--out", str(tmp_path / "ds")]) == 0
    args = ["train-offline", "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "run"), "--chunk-length", "4",
            "--checkpoint-every", "10", *TINY]
    assert main(args) == 0
    assert main([*args, "--lps.steps", "40"]) == 0
    assert "continuing at update 30 of 40" in capsys.readouterr().out
    rows = [line.split(",") for line in (tmp_path / "run" / "train.csv").read_text().splitlines()[1:]]
    assert [int(step) for key, step, _ in rows if key == "losses/q"] == [10, 20, 30, 40]
    assert load_manifest(tmp_path / "run" / "heads" / "lps.onnx").provenance.metrics["gradient_steps"] == 40
    with pytest.raises(SystemExit, match="other settings"):
        main([*args, "--lps.steps", "40", "--lps.actor-lr", "1e-3"])


def test_ogbench_data_trains_and_runs_in_the_benchmarks_env(tmp_path):
    write_ogbench_npz(tmp_path / "play.npz", lengths=(12, 9))
    fmt.save(ogbench.convert_npz(tmp_path / "play.npz", "cube-single-singletask-task2-v0",
                                 goals=np.array([[0.45, 0.1, 0.02]])), tmp_path / "ds")
    assert main(["train-offline", "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "run"),
                 "--no-normalize", "--decoder-training", "frozen", "--decoder-steps", "10", *TINY]) == 0
    # OGBench's UR5e state is not the robot stack's observation vocabulary: the runtime refuses it,
    # and the benchmark evaluates the same files through the same SteeredPolicy.
    with pytest.raises(ManifestError, match="`robot` must be one of"):
        load_model(tmp_path / "run" / "decoder.onnx", "decoder")
    decoder = load_unchecked(tmp_path / "run" / "decoder.onnx", "decoder")
    head = load_unchecked(tmp_path / "run" / "heads" / "lps.onnx", "head")
    r = ogbench.evaluate(SteeredPolicy(decoder, head, seed=0), "cube-single-singletask-task2-v0", 1, seed=7)
    assert r["episodes"] == 1 and r["successes"] in (0, 1)
    cfg = json.loads((tmp_path / "run" / "train_offline.config.json").read_text())
    assert cfg["config"]["decoder_training"] == "frozen" and cfg["command"].startswith("lps-train train-offline")
    # A decoder fitted for other observations' statistics is refused by name.
    assert main(["convert", "--source", "ogbench", "--input", str(tmp_path / "play.npz"),
                 "--out", str(tmp_path / "ds2")]) == 0
    with pytest.raises(SystemExit, match="normalisation is not this dataset's"):
        main(["train-offline", "--dataset", str(tmp_path / "ds2"), "--out", str(tmp_path / "run2"),
              "--decoder-training", "frozen", "--decoder-checkpoint", str(tmp_path / "run" / "decoder.pt"), *TINY])


def test_offline_dsrl_na_trains_from_recordings_into_a_sampling_head_the_runtime_runs(tmp_path):
    files = []
    for i in range(2):
        write_stack_mcap(tmp_path / f"ep{i}.mcap", seconds=1.2, done_at=0.9, success=i == 0, seed=i)
        files.append(str(tmp_path / f"ep{i}.mcap"))
    assert main(["convert", "--source", "mcap", "--input", *files, "--out", str(tmp_path / "ds")]) == 0
    dsrl_tiny = ["--dsrl.hidden", "32", "--dsrl.critic-layers", "2", "--dsrl.actor-layers", "1",
                 "--dsrl.batch-size", "16", "--dsrl.utd", "4", "--dsrl.distill-steps", "2", "--dsrl.log-every", "8",
                 "--meanflow.hidden", "32", "--meanflow.layers", "2"]
    with pytest.raises(SystemExit, match="--decoder-training frozen"):
        main(["train-offline", "--algo", "dsrl", "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "no"),
              *dsrl_tiny])
    assert main(["train-offline", "--algo", "dsrl", "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "run"),
                 "--chunk-length", "4", "--decoder-training", "frozen", "--decoder-steps", "10",
                 "--dsrl-steps", "24", *dsrl_tiny]) == 0
    decoder = load_model(tmp_path / "run" / "decoder.onnx", "decoder")
    head = load_model(tmp_path / "run" / "heads" / "dsrl.onnx", "head")
    m = head.manifest
    assert m.head_type == "dsrl" and m.noise_input and m.latent_projection == "sphere"
    assert m.provenance.metrics["gradient_steps"] == 24 + 10
    obs = fmt.load(tmp_path / "ds").observations[0].astype(np.float32)
    policy = SteeredPolicy(decoder, head, seed=0)
    a, b = policy.infer(obs), policy.infer(obs)
    assert math.isclose(a.latent_norm, math.sqrt(32), rel_tol=1e-5)  # projected onto the decoder's sphere
    assert not np.allclose(a.latent, b.latent)  # the sampling head draws fresh noise each inference
