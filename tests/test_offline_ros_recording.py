"""A dataset recorded from the sim stack through ROS trains end to end: the eval stack (sim bridge in
lock-step, policy node with the tiny decoder) runs episodes driven over DDS, the evaluator's MCAP
recorder writes them (with the topics the converter reads), and they convert, train on a tiny budget
and export models the runtime loads and steers with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from lps_steering.core.policy import SteeredPolicy, load_model
from lps_steering.evaluation import EvalConfig
from lps_steering.evaluation.ros_client import EvaluationClient
from lps_steering.evaluation.runner import stop_gracefully
from lps_train.cli import main
from lps_train.offline import format as fmt

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_models):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_DOMAIN_ID", str(100 + os.getpid() % 50))
        log = tmp_path_factory.mktemp("stack") / "launch_stack.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "launch_stack.py"), "eval", f"decoder:={tiny_models.decoder}",
                 "--grace", "15"], stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            deadline = time.monotonic() + 120.0
            while not re.search(r"policy_node", log.read_text()) and proc.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(log.read_text()[-3000:])
                time.sleep(0.2)
            yield proc
        finally:
            stop_gracefully(proc, 40.0)


def test_episodes_recorded_through_ros_convert_and_train(stack, tiny_models, tmp_path):
    config = EvalConfig(heads={"base": "none"}, profiles=["nominal"], episodes=3, seed=11, episode_timeout_s=1.5,
                        out_dir=str(tmp_path / "eval"), record_mcap=True)
    files = []
    with EvaluationClient(config) as client:
        client.prepare(120.0)
        dt = client.command_period()
        client.set_head(config.head_path("base"))
        for seed in (11, 12, 13):
            path = tmp_path / "mcap" / f"base_{seed}.mcap"
            record = client.run_episode("base", "nominal", seed, dt, path)
            assert record.termination == "timeout"
            files.append(str(path))
    assert main(["convert", "--source", "mcap", "--input", *files, "--decoder-onnx", str(tiny_models.decoder),
                 "--out", str(tmp_path / "ds")]) == 0
    data = fmt.load(tmp_path / "ds")
    # About 1.5 s of sim time at the tiny decoder's 10 Hz (the recorder runs a few control periods past
    # the evaluator's limit), every episode a time-out.
    assert data.num_episodes == 3 and all(14 <= n <= 17 for n in data.episode_lengths), data.episode_lengths
    assert not data.success.any() and data.timeouts.all()
    assert [e.source for e in data.observation] == ["arm_joint_positions", "gripper_width", "object_position"]
    # The base moved the arm: the recorded commands are not the measured joints.
    assert np.abs(data.actions[:, :7]).max() > 1e-4 and np.isfinite(data.actions).all()
    assert main(["train-offline", "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "run"),
                 "--chunk-length", "4", "--lps.steps", "20", "--lps.batch-size", "16", "--lps.hidden", "32",
                 "--lps.critic-layers", "2", "--lps.actor-layers", "1", "--lps.log-every", "10",
                 "--meanflow.hidden", "32", "--meanflow.layers", "2"]) == 0
    decoder = load_model(tmp_path / "run" / "decoder.onnx", "decoder")
    head = load_model(tmp_path / "run" / "heads" / "lps.onnx", "head")
    out = SteeredPolicy(decoder, head).infer(data.observations[0].astype(np.float32))
    assert out.actions.shape == (4, 8) and np.isfinite(out.actions).all()
