"""`lps-train`'s typed settings: the presets are the shipped runs, `--help` documents every setting,
a run's command parses back into its settings, and the LPS round rule keeps the best round."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest
from lps_train.cli import as_command, main, parse
from lps_train.configs import PRESETS_COLLECT, PRESETS_TRAIN_BASE, PRESETS_TRAIN_HEAD, TrainHead
from lps_train.dsrl import DSRLConfig
from lps_train.lpds import LPDSConfig
from lps_train.lps import LPSConfig
from lps_train.meanflow import MeanFlowConfig
from lps_train.rounds import choose_round

MODELS = Path(__file__).resolve().parents[1] / "models" / "pick_place"
HEADS = {"shipped-lpds": "heads/lpds.json", "offline-lps": "heads/lps.json", "shipped-lps": "heads/lps_rounds.json",
         "paper-lpds": "heads/lpds_paper.json"}
DECODERS = {"shipped-meanflow": "decoder.json", "shipped-flow": "flow/decoder.json"}


def _metrics(manifest: str) -> dict:
    return json.loads((MODELS / manifest).read_text())["provenance"]["metrics"]


@pytest.mark.parametrize("preset", sorted(HEADS))
def test_a_head_preset_reproduces_the_shipped_manifests_config(preset):
    recorded = parse("train-head", ["--preset", preset]).recorded_config()
    shipped = _metrics(HEADS[preset])["config"]
    # Settings a shipped manifest may not record, with the value its run had: one intra-op torch
    # thread (what `seed_everything` sets by default); LP-DS latents composed unprojected (the
    # shipped LP-DS run came before `project`; its manifest has no `latent_projection`).
    made_with = {"torch_threads": 1, "project": False}
    unrecorded = {k: recorded.pop(k) for k in set(recorded) - set(shipped)}
    assert {k: made_with.get(k, "not allowed") for k in unrecorded} == unrecorded
    assert recorded == shipped


def _old_style_flags(command: str) -> dict[str, str]:
    """`--name value` and `--set k=v` pairs of a recorded `lps-train train-base` command."""
    tokens, flags = shlex.split(command), {}
    for i, tok in enumerate(tokens):
        if tok == "--set":
            k, _, v = tokens[i + 1].partition("=")
            flags[k] = v
        elif tok.startswith("--") and i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            flags[tok[2:]] = tokens[i + 1]
    return flags


@pytest.mark.parametrize("preset", sorted(DECODERS))
def test_a_decoder_preset_reproduces_the_shipped_decoders_training_command(preset):
    # Decoder manifests record the training command, not a config dict: every setting it names
    # must be the preset's, and every other one the dataclass default.
    cfg = parse("train-base", ["--preset", preset])
    flags = _old_style_flags(_metrics(DECODERS[preset])["train_command"])
    assert cfg.decoder == flags.pop("decoder")
    assert cfg.demos == (flags.pop("demos"),) == (_metrics(DECODERS[preset])["demos"],) and cfg.out == flags.pop("out")
    assert cfg.demos == (parse("collect", ["--preset", "shipped-demos"]).out,)
    algo = cfg.algo_config()
    default = type(algo)()
    for f in dataclasses.fields(algo):
        expected = type(getattr(default, f.name))(flags.pop(f.name)) if f.name in flags else getattr(default, f.name)
        assert getattr(algo, f.name) == expected, f.name
    assert flags == {}


def test_the_shipped_lps_head_learnt_from_scripted_operators_only():
    # heads/lps.onnx is the strictly offline head: each of its datasets is a collect preset of
    # scripted operators (no `--policy`: no environment step of a learned policy), and its
    # manifest names those files and their hashes.
    by_out = {c.out: c for c in PRESETS_COLLECT.values()}
    demos = PRESETS_TRAIN_HEAD["offline-lps"].demos
    assert [by_out[d].policy for d in demos] == [""] * len(demos)
    shipped = _metrics(HEADS["offline-lps"])
    assert shipped["demos"].split() == list(demos)
    assert len(shipped["demos_sha256"]) == len(demos) and all(len(h) == 64 for h in shipped["demos_sha256"])
    # The rollout-augmented head is the other one: its data holds its first round's own rollouts.
    rounds = _metrics(HEADS["shipped-lps"])["train_command"]
    assert "rollouts_lps_round1" in rounds, rounds


def test_every_hyperparameter_is_listed_with_its_meaning(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train-head", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for prefix, cls in (("lps", LPSConfig), ("lpds", LPDSConfig), ("dsrl", DSRLConfig)):
        for f in dataclasses.fields(cls):
            assert f"--{prefix}.{f.name.replace('_', '-')}" in text
    assert "trust-region radius" in text and "action critics in the ensemble" in text
    assert "shipped-lps" in text


def test_options_beside_a_preset_override_single_fields_only():
    cfg = parse("train-head", ["--preset", "shipped-lps", "--lps.seed", "0", "--out", "x.pt"])
    shipped = PRESETS_TRAIN_HEAD["shipped-lps"]
    assert cfg.lps == dataclasses.replace(shipped.lps, seed=0) and cfg.out == "x.pt"
    assert cfg.demos == shipped.demos and cfg.critic_features == "tcp-target"
    with pytest.raises(SystemExit, match="--preset must be one of"):
        parse("train-head", ["--preset", "shipped-nothing"])


@pytest.mark.parametrize("name, cfg", [
    ("train-head", dataclasses.replace(PRESETS_TRAIN_HEAD["shipped-lps"], demos=("a.npz", "b c.npz"), out="r2.pt",
                                       lps=dataclasses.replace(PRESETS_TRAIN_HEAD["shipped-lps"].lps, seed=7,
                                                               normalize_q_loss=False))),
    ("train-head", TrainHead(algo="dsrl", decoder="d.pt", env="four_modes:unequal", out="h.pt",
                             terminate_on_hold=True)),
    ("train-base", dataclasses.replace(PRESETS_TRAIN_BASE["shipped-meanflow"],
                                       meanflow=MeanFlowConfig(steps=3, loss_space="x"))),
])
def test_a_recorded_command_parses_back_into_its_settings(name, cfg):
    command = as_command(name, cfg)
    assert parse(name, shlex.split(command)[2:]) == cfg


def test_collect_quality_sets_the_expert_and_fields_override_it():
    cfg = parse("collect", ["--quality", "careful", "--expert.early-close-prob", "0.15"])
    assert cfg.expert.settle_steps == 3 and cfg.expert.early_close_prob == 0.15
    shipped = parse("collect", ["--preset", "shipped-demos"])
    assert (shipped.quality, shipped.expert.early_close_prob, shipped.expert.early_close) == ("careful", 0.15, 0.03)
    with pytest.raises(SystemExit, match="`quality` must be one of"):
        parse("collect", ["--quality", "reckless"])


def _rounds(rates: list[float], max_rounds: int = 6):
    trained: list[tuple[str, ...]] = []

    def train(index, data):
        trained.append(data)
        return f"r{index}.pt"

    def roll_out(index, checkpoint):
        assert checkpoint == f"r{index}.pt"
        return f"roll{index}.npz", rates[index - 1]

    rounds, best = choose_round(["demos.npz", "base.npz"], max_rounds, train, roll_out)
    return rounds, best, trained


def test_rounds_stop_at_the_first_round_that_does_not_beat_the_best_and_keep_the_best():
    rounds, best, trained = _rounds([0.10, 0.60, 0.55, 0.90])
    assert [r.index for r in rounds] == [1, 2, 3] and best == 2
    # Each round trains on everything so far plus the rollouts of the rounds that improved.
    assert trained == [("demos.npz", "base.npz"), ("demos.npz", "base.npz", "roll1.npz"),
                       ("demos.npz", "base.npz", "roll1.npz", "roll2.npz")]


def test_a_tie_stops_the_rounds_and_the_cap_ends_an_improving_run():
    assert _rounds([0.4, 0.4, 0.9])[1] == 1
    rounds, best, _ = _rounds([0.1, 0.2, 0.3], max_rounds=3)
    assert best == 3 and len(rounds) == 3
    with pytest.raises(ValueError, match="max_rounds"):
        choose_round([], 0, lambda i, d: "", lambda i, c: ("", 0.0))
