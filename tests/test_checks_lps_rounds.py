"""training/checks/lps_rounds.py: per-round results built from real evaluate JSONs and rollout files."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

CHECK = Path(__file__).resolve().parents[1] / "training" / "checks" / "lps_rounds.py"


def _evaluation(path: Path, results: list[tuple[str, int, int]], seed: int = 100000) -> str:
    path.write_text(json.dumps({"seed": seed, "results": [{"head": h, "episodes": n, "successes": k}
                                                          for h, k, n in results]}))
    return str(path)


def _rollouts(path: Path, successes: list[bool]) -> str:
    np.savez(path, episode_success=np.array(successes))
    return str(path)


def _run(tmp_path: Path, *rounds: list[str]) -> subprocess.CompletedProcess:
    manifest = tmp_path / "decoder.json"
    manifest.write_text(json.dumps({"provenance": {"metrics": {"eval_nominal": {"successes": 50, "episodes": 100}}}}))
    args = [a for r in rounds for a in ("--round", *r)]
    return subprocess.run([sys.executable, str(CHECK), *args, "--base-manifest", str(manifest),
                           "--out", str(tmp_path / "out" / "rounds")], capture_output=True, text=True, timeout=120)


def test_rounds_sum_split_evaluations_and_read_rollout_success(tmp_path):
    first = _evaluation(tmp_path / "a.json", [("h1.onnx", 9, 40)])
    rest = _evaluation(tmp_path / "b.json", [("none", 80, 160), ("h1.onnx", 100, 160)], seed=100040)
    r = _run(tmp_path, ["0", "1", f"{first},{rest}", _rollouts(tmp_path / "r1.npz", [True, False, False, False])],
             ["0", "2", _evaluation(tmp_path / "c.json", [("h2.onnx", 30, 40)]), "-"])
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "out" / "rounds.json").read_text())
    assert out["base"] == [50, 100]
    one, two = out["rounds"]
    assert (one["eval_successes"], one["eval_episodes"], one["rollout_rate"]) == (109, 200, 0.25)
    assert one["eval_wilson"][0] < 109 / 200 < one["eval_wilson"][1]
    assert two["rollout_rate"] is None and two["eval_rate"] == 0.75
    assert "109/200 (54.5%" in r.stdout
    assert (tmp_path / "out" / "rounds.png").stat().st_size > 0


def test_an_evaluation_of_several_heads_is_refused(tmp_path):
    both = _evaluation(tmp_path / "a.json", [("h1.onnx", 9, 40), ("h2.onnx", 12, 40)])
    r = _run(tmp_path, ["0", "1", both, "-"])
    assert r.returncode != 0 and "expected exactly one evaluated head" in r.stderr


def test_evaluations_of_different_heads_or_the_same_seeds_are_not_summed(tmp_path):
    first = _evaluation(tmp_path / "a.json", [("runs/h1.onnx", 9, 40)])
    other = _evaluation(tmp_path / "b.json", [("runs/h2.onnx", 12, 40)], seed=100040)
    r = _run(tmp_path, ["0", "1", f"{first},{other}", "-"])
    assert r.returncode != 0 and "name different heads" in r.stderr
    again = _evaluation(tmp_path / "c.json", [("runs/h1.onnx", 30, 160)], seed=100020)
    r = _run(tmp_path, ["0", "1", f"{first},{again}", "-"])
    assert r.returncode != 0 and "overlap" in r.stderr
    r = _run(tmp_path, ["zero", "1", first, "-"])
    assert r.returncode != 0 and "non-negative integers" in r.stderr
    r = _run(tmp_path, ["0", "1", first, str(tmp_path / "missing.npz")])
    assert r.returncode != 0 and "does not exist" in r.stderr
