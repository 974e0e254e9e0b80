"""training/checks/lps_along_training.py: the table and plot of heads' success along their training,
from `lps-train evaluate` records of the same shape."""

import json
from pathlib import Path

import numpy as np
import pytest
from lps_steering.evaluation.stats import mcnemar_p
from lps_train.pick_place.evaluation import EvalResult, paired_with_base


def _result(head: str, outcomes: str) -> EvalResult:
    n = len(outcomes)
    return EvalResult(head, n, outcomes.count("1"), 0.0, 1.0, 0.0, 0, 0.0, outcomes)


def _record(folder: Path, seed: int, base: str, heads: dict[int, str], profile: str = "nominal") -> None:
    b = _result("none", base)
    heads = [_result(f"runs/x/lps_s{seed}_u{u}.onnx", o) for u, o in heads.items()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"eval_s{seed}.config.json").write_text("{}")  # what lps-train evaluate writes beside it
    (folder / f"eval_s{seed}.json").write_text(json.dumps({
        "profile": profile, "episodes": len(base), "seed": 100_000, "command": "lps-train evaluate",
        "results": [r.to_dict() for r in [b, *heads]],
        "paired_with_base": {h.head: paired_with_base(b, h) for h in heads}}))


def test_the_summary_reads_each_seed_along_its_saved_heads(tmp_path, capsys, load_check):
    rng = np.random.default_rng(0)
    base = "".join(rng.choice(["0", "1"], 60))

    def flipped(ones: int) -> str:
        return "1" * ones + "0" * (60 - ones)

    # Listed out of order: the summary sorts the saved heads by their update count.
    _record(tmp_path, 0, base, {2000: flipped(50), 1000: flipped(30), 3000: flipped(40)})
    _record(tmp_path, 3, base, {1000: flipped(10), 2000: flipped(12), 3000: flipped(5)})
    png = tmp_path / "along.png"
    out = load_check("lps_along_training").summarise([tmp_path], png)
    assert out["runs"][0]["updates"] == [1000, 2000, 3000] and out["runs"][0]["successes"] == [30, 50, 40]
    assert out["runs"][3]["successes"] == [10, 12, 5]
    # From the middle saved head (2,000) on: seed 0 moves 50 -> 40, seed 3 12 -> 5.
    assert out["within"] == pytest.approx((10 + 7) / 2)
    # Tested on the same episodes: seed 0's 50 -> 40 loses 10 episodes and wins none.
    assert out["move_p"][0] == pytest.approx(mcnemar_p(0, 10))
    assert out["between_last"] == 40 - 5
    assert out["mean_curve"] == pytest.approx([20, 31, 22.5])
    assert png.stat().st_size > 0
    text = capsys.readouterr().out
    # Seed 0 at 2,000 updates wins 50 of 60 against a base of about 30: separated above; seed 3's
    # 5 of 60 separated below.
    row0 = next(line for line in text.splitlines() if line.startswith("| 0 |"))
    row3 = next(line for line in text.splitlines() if line.startswith("| 3 |"))
    assert "50+" in row0 and row0.endswith("| 30-50 |")
    assert "5−" in row3


def test_the_summary_of_an_empty_folder_says_so(tmp_path, load_check):
    with pytest.raises(SystemExit, match="no eval_s"):
        load_check("lps_along_training").summarise([tmp_path], None)


def test_a_longer_run_of_a_seed_continues_its_row_and_other_episodes_are_refused(tmp_path, capsys, load_check):
    base = "10" * 20
    short, longer = tmp_path / "short", tmp_path / "long"
    _record(short, 0, base, {1000: "1" * 10 + "0" * 30, 2000: "1" * 20 + "0" * 20})
    _record(short, 1, base, {1000: "1" * 5 + "0" * 35, 2000: "1" * 15 + "0" * 25})
    _record(longer, 0, base, {3000: "1" * 30 + "0" * 10, 4000: "1" * 2 + "0" * 38})
    out = load_check("lps_along_training").summarise([short, longer], None)
    assert out["runs"][0]["updates"] == [1000, 2000, 3000, 4000]
    assert out["runs"][0]["successes"] == [10, 20, 30, 2]
    # Within-run and between-run spreads over the updates both seeds reached.
    assert out["common_updates"] == [1000, 2000]
    assert out["within"] == pytest.approx((10 + 10) / 2) and out["between_last"] == 5
    row1 = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| 1 |"))
    cells = [c.strip().rstrip("+−") for c in row1.split("|")[2:6]]
    assert cells == ["5", "15", "", ""]  # seed 1 has no head saved at 3,000 or 4,000
    other = tmp_path / "other"
    _record(other, 0, "01" * 20, {5000: "1" * 40})
    with pytest.raises(SystemExit, match="not the episodes"):
        load_check("lps_along_training").summarise([short, other], None)
    gap = tmp_path / "gap"
    _record(gap, 2, base, {1000: "1" * 40}, profile="sim2real")
    with pytest.raises(SystemExit, match="several profiles"):
        load_check("lps_along_training").summarise([short, gap], None)
