"""training/checks/ogbench_cube_single.py on a tiny budget: the package's oracle regenerates play data,
each task's relabelled copy trains LPS and DSRL-NA (one frozen decoder shared by the tasks), and the
exported ONNX decoder + heads are evaluated with BC beside them in the single-task envs through SteeredPolicy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[1] / "training" / "checks" / "ogbench_cube_single.py"


@pytest.mark.slow
def test_the_benchmark_command_regenerates_trains_and_evaluates(tmp_path):
    out = tmp_path / "cube"
    command = [sys.executable, "-W", "ignore", str(CHECK), "--out", str(out), "--play-episodes", "2",
               "--episode-steps", "30", "--workers", "1", "--tasks", "1", "2", "--seeds", "0",
               "--train-steps", "4", "--eval-every", "4", "--eval-episodes", "1",
               "--decoder-training", "frozen", "--decoder-steps", "4", "--algos", "lps", "dsrl", "--dsrl-hidden", "16"]
    r = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["generation"]["rows"] == 60 and res["generation"]["env_steps_per_s_per_process"] > 0
    assert [(run["task"], run["seed"]) for run in res["runs"]] == [(1, 0), (2, 0)]
    for run in res["runs"]:
        assert [c["step"] for c in run["curve"]] == [4]
        assert set(run["curve"][0]) == {"step", "lps", "bc", "dsrl"}
        for label in ("lps", "bc", "dsrl"):
            final = run["final"][label]
            assert final["episodes"] == 1 and final["env"] == f"cube-single-singletask-task{run['task']}-v0"
        assert run["steps_per_s"] > 0
    # The first task fits the decoder; the second reuses it (the play data is the same for every task).
    assert res["runs"][0]["decoder_from"] == "fitted here"
    assert res["runs"][1]["decoder_from"] == str(out / "runs" / "task1_s0" / "decoder.pt")
    assert 0.0 <= res["mean_lps_success"] <= 1.0 and 0.0 <= res["mean_dsrl_success"] <= 1.0
    assert res["command"].endswith("--dsrl-hidden 16")
    assert (out / "curves.png").stat().st_size > 5000
    for task in (1, 2):
        assert (out / "runs" / f"task{task}_s0" / "heads" / "lps.json").is_file()
        # DSRL steered the LPS run's decoder: its manifest names that decoder's hash.
        dsrl_head = json.loads((out / "runs" / f"task{task}_s0" / "dsrl" / "heads" / "dsrl.json").read_text())
        dec = json.loads((out / "runs" / f"task{task}_s0" / "dsrl" / "decoder.json").read_text())
        assert dsrl_head["decoder_sha256"] == dec["onnx_sha256"] and dsrl_head["noise_input"]

    # The same command with a larger budget continues each LPS run from its last update, curve and all.
    command[command.index("--train-steps") + 1] = "8"
    r = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("continuing at update 4 of 8") == 2
    res = json.loads((out / "results.json").read_text())
    for run in res["runs"]:
        assert [c["step"] for c in run["curve"]] == [4, 8]
        assert all({"lps", "bc"} <= set(c) for c in run["curve"])

    # DSRL-NA alone through the decoder that run fitted: no new fit, no LPS, the same evaluations.
    solo = tmp_path / "solo"
    (solo / "data").mkdir(parents=True)
    (solo / "data" / "play.npz").write_bytes((out / "data" / "play.npz").read_bytes())
    shared = out / "runs" / "task1_s0" / "decoder.pt"
    base = command[:command.index("--decoder-training")]
    base[base.index("--out") + 1] = str(solo)
    base[base.index("--tasks") + 1: base.index("--seeds")] = ["2"]
    r = subprocess.run([*base, "--decoder-training", "frozen", "--decoder-checkpoint", str(shared),
                        "--algos", "dsrl", "dsrl", "--dsrl-hidden", "16"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((solo / "results.json").read_text())
    (run,) = res["runs"]
    assert run["decoder_from"] == str(shared) and "lps" not in run["final"] and "mean_lps_success" not in res
    assert set(run["curve"][0]) == {"step", "dsrl", "bc"} and [c["step"] for c in run["curve"]] == [8]
    assert res["settings"]["decoder_steps"] == 0 and run["steps_per_s"] > 0
    assert not (solo / "runs" / "task2_s0" / "decoder.onnx").exists()
    logged = (solo / "runs" / "task2_s0" / "dsrl" / "train.csv").read_text()
    assert "losses/qw" in logged and "losses/meanflow" not in logged  # DSRL trained, no decoder fitted
    solo_dec = json.loads((solo / "runs" / "task2_s0" / "dsrl" / "decoder.json").read_text())
    first_dec = json.loads((out / "runs" / "task2_s0" / "dsrl" / "decoder.json").read_text())
    assert solo_dec["onnx_sha256"] == first_dec["onnx_sha256"]


@pytest.mark.parametrize("extra, message", [
    (["--algos", "dsrl", "--decoder-training", "frozen"], "name it with --decoder-checkpoint"),
    (["--algos", "dsrl", "dsrl", "--decoder-training", "frozen"], "name it with --decoder-checkpoint"),
    (["--algos", "lps", "dsrl"], "add --decoder-training frozen"),
    (["--decoder-checkpoint", "x.pt"], "add --decoder-training frozen"),
])
def test_the_benchmark_command_refuses_heads_without_a_frozen_decoder(tmp_path, extra, message):
    r = subprocess.run([sys.executable, "-W", "ignore", str(CHECK), "--out", str(tmp_path / "cube"), *extra],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr
    assert not (tmp_path / "cube").exists()
