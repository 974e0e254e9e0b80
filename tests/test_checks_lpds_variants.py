"""training/checks/lpds_variants.py: the variant table is built from real evaluation outputs."""

import json
import subprocess
import sys
from pathlib import Path

CHECK = Path(__file__).resolve().parents[1] / "training" / "checks" / "lpds_variants.py"


def _evaluation(path: Path, results: list[tuple[str, int]], episodes: int = 100) -> None:
    path.write_text(json.dumps({"profile": "nominal", "episodes": episodes, "seed": 100000, "command": "lps-train evaluate",
                                "results": [{"head": h, "episodes": episodes, "successes": k} for h, k in results]}))


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), "--results", str(tmp_path / "t.json"),
                           "--png", str(tmp_path / "v.png"), *args], capture_output=True, text=True, timeout=120)


def test_variants_are_recorded_against_their_base_and_plotted(tmp_path):
    head = tmp_path / "h.onnx"
    head.with_suffix(".json").write_text(json.dumps({"provenance": {"metrics": {"train_command": "lps-train train-head X"}}}))
    _evaluation(tmp_path / "all.json", [("none", 40), ("lpds", 55)])
    _evaluation(tmp_path / "one.json", [(str(head), 73)])
    r = _run(tmp_path, "--set-base", "b", f"{tmp_path / 'all.json'}#none")  # a base first, on its own
    assert r.returncode == 0 and "no variants recorded yet" in r.stdout, r.stderr
    assert json.loads((tmp_path / "t.json").read_text())["bases"]["b"]["successes"] == 40
    r = _run(tmp_path, "--base", "b", "--add", f"one={tmp_path / 'one.json'}",
             "--add", f"two={tmp_path / 'all.json'}#lpds")
    assert r.returncode == 0, r.stderr
    assert "+33 pt" in r.stdout and "+15 pt" in r.stdout
    table = json.loads((tmp_path / "t.json").read_text())
    assert [v["label"] for v in table["variants"]] == ["one", "two"]
    assert table["variants"][0]["train_command"] == "lps-train train-head X"
    assert (tmp_path / "v.png").stat().st_size > 0
    # Re-adding a label replaces its row in place; a file of several heads needs #HEAD.
    _evaluation(tmp_path / "one.json", [(str(head), 20)])
    r = _run(tmp_path, "--base", "b", "--add", f"one={tmp_path / 'one.json'}")
    assert r.returncode == 0 and "-20 pt" in r.stdout
    assert [v["label"] for v in json.loads((tmp_path / "t.json").read_text())["variants"]] == ["one", "two"]
    r = _run(tmp_path, "--base", "b", "--add", f"three={tmp_path / 'all.json'}")
    assert r.returncode != 0 and "expected one head's results, found 2" in r.stderr
    r = _run(tmp_path, "--base", "nope", "--add", f"four={tmp_path / 'one.json'}")
    assert r.returncode != 0 and "unknown base 'nope'" in r.stderr
