"""training/checks/trace_episodes.py: traces of real episodes through the runtime's controller, and
the phase each failure ended in."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lps_sim.tasks.pick_place import PickPlaceConfig
from lps_train.pick_place.env import LIFT_HEIGHT
from lps_train.pick_place.evaluation import evaluate

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "training" / "checks" / "trace_episodes.py"
DECODER = ROOT / "models" / "pick_place" / "decoder.onnx"


def test_a_traced_episode_follows_the_cube_and_gets_its_phase(tmp_path, load_check):
    out = tmp_path / "trace.json"
    r = subprocess.run([sys.executable, str(CHECK), "--decoder", str(DECODER), "--episodes", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert sum(res["phases"].values()) == 2 and out.with_suffix(".png").stat().st_size > 0
    assert res["close"] == load_check("trace_episodes").close_summary(res["episodes"]) and res["close"]["episodes"] == 2
    # The same seeds through lps-train's evaluation succeed as often.
    assert res["phases"]["success"] == evaluate(str(DECODER), "", 2, seed=100_000, progress=False).successes
    radius = PickPlaceConfig().target_radius
    for e in res["episodes"]:
        t, cube = np.asarray(e["t"]), np.asarray(e["cube"])
        assert np.all(np.diff(t) > 0) and len(e["tcp"]) == len(t) == len(e["zone_xy"])
        assert cube[0, 2] == pytest.approx(e["cube_half"], abs=2e-3)  # resting on the table at the start
        if e["success"]:  # a success ends with the cube in the zone, after it was lifted off the table
            assert np.linalg.norm(cube[-1, :2] - np.asarray(e["zone_xy"][-1])) < radius
            assert cube[:, 2].max() - e["cube_half"] > LIFT_HEIGHT


def test_phases_of_failures(load_check):
    mod = load_check("trace_episodes")

    def ep(lifts, holds=0, success=False):
        return {"success": success, "hold_periods": holds, "cube_half": 0.02,
                "cube": [[0.5, 0.0, 0.02 + z] for z in lifts]}

    assert mod.phase(ep([0, 0.1, 0], success=True)) == "success"
    assert mod.phase(ep([0, 0.1, 0.1], holds=3)) == "held"
    assert mod.phase(ep([0, 0.01, 0.0])) == "never_lifted"
    assert mod.phase(ep([0, 0.1, 0.0])) == "dropped"
    assert mod.phase(ep([0, 0.1, 0.09])) == "not_placed"


def test_the_close_point_is_where_the_width_first_drops_under_the_open_hand(load_check):
    mod = load_check("trace_episodes")
    ep = {"gripper": [0.08, 0.08, 0.065, 0.02, 0.08], "tcp": [[0.0, 0.0, 0.3]] * 2 + [[0.53, 0.04, 0.05]] * 3,
          "cube": [[0.5, 0.0, 0.0225]] * 5}
    horizontal, height = mod.close_point(ep)
    assert horizontal == pytest.approx(0.05) and height == pytest.approx(0.0275)
    assert mod.close_point(ep | {"gripper": [0.08] * 5}) is None
    summary = mod.close_summary([ep, ep | {"gripper": [0.08] * 5}])
    assert summary["episodes"] == 2 and summary["closed"] == 1
    assert summary["horizontal_cm"] == [5.0, 5.0, 5.0] and summary["height_cm"] == [2.75, 2.75, 2.75]
