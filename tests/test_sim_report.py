"""The expert success report: Wilson intervals and one tiny real run end to end."""

import pytest
from lps_sim import experts_report


@pytest.mark.parametrize("k, n, lo, hi", [
    (0, 10, 0.0, 0.2775),      # textbook values of the Wilson score interval at z = 1.96
    (10, 10, 0.7225, 1.0),
    (5, 10, 0.2366, 0.7634),
    (95, 100, 0.8882, 0.9785),
])
def test_wilson_interval_known_values(k, n, lo, hi):
    got = experts_report.wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-3)


def test_wilson_interval_refuses_no_trials():
    with pytest.raises(ValueError, match="`n` must be > 0"):
        experts_report.wilson_interval(0, 0)


def test_report_runs_and_writes_a_chart(tmp_path, capsys):
    png = tmp_path / "experts.png"
    assert experts_report.main(["--episodes", "1", "--tasks", "pick_place", "--profiles", "nominal",
                                "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "pick_place  nominal" in out and "1/1" in out
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
