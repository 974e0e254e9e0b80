"""The expert success report: one tiny real run end to end (its Wilson intervals: test_eval_stats)."""

from lps_sim import experts_report


def test_report_runs_and_writes_a_chart(tmp_path, capsys):
    png = tmp_path / "experts.png"
    assert experts_report.main(["--episodes", "1", "--tasks", "pick_place", "--profiles", "nominal",
                                "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "pick_place  nominal" in out and "1/1" in out
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
