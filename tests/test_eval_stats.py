"""Evaluation statistics and report, without ROS: Wilson intervals, jerk, summaries, files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from lps_steering.evaluation import EpisodeRecord, load_config, mean_squared_jerk, summarise, wilson_interval
from lps_steering.evaluation.report import write_report


def _score_bound(k: int, n: int, z: float, upper: bool) -> float:
    """Independent route to Wilson's interval: the p where the score statistic |p_hat - p| /
    sqrt(p (1 - p) / n) equals z, found by bisection (no closed form involved)."""
    p_hat = k / n
    lo, hi = (p_hat, 1.0) if upper else (0.0, p_hat)
    if (upper and k == n) or (not upper and k == 0):
        return p_hat

    def inside(p: float) -> bool:
        return abs(p_hat - p) <= z * math.sqrt(p * (1 - p) / n)

    for _ in range(200):
        mid = (lo + hi) / 2
        if inside(mid) == upper:  # upper: inside until the bound; lower: outside until the bound
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (3, 10), (5, 10), (10, 10), (17, 50), (99, 100),
                                 (1, 1000)])
def test_wilson_matches_score_test_inversion(k: int, n: int) -> None:
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(_score_bound(k, n, 1.959963984540054, upper=False), abs=1e-9)
    assert hi == pytest.approx(_score_bound(k, n, 1.959963984540054, upper=True), abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table II (method 3, Wilson without correction).
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=5e-5)
    assert wilson_interval(1, 29) == pytest.approx((0.0061, 0.1718), abs=5e-5)


def test_wilson_refuses_bad_counts() -> None:
    with pytest.raises(ValueError, match="`n` must be > 0"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="`successes`"):
        wilson_interval(4, 3)


def test_jerk_of_polynomials() -> None:
    dt = 0.01
    t = np.arange(50)[:, None] * dt
    c = np.array([[0.5, -2.0, 1.0, 0.0, 3.0, 0.1, -0.7]])
    # q = c t^3 has jerk 6c everywhere; third differences are exact for cubics.
    assert mean_squared_jerk(c * t**3, dt) == pytest.approx(float(np.sum((6 * c) ** 2)), rel=1e-6)
    # Quadratic and linear motion: no jerk.
    assert mean_squared_jerk(c * t**2 + 0.3 * t, dt) == pytest.approx(0.0, abs=1e-6)
    # Halving the period of the same samples multiplies jerk by 2^3, its square by 64.
    q = np.random.default_rng(0).normal(size=(20, 7))
    assert mean_squared_jerk(q, dt / 2) == pytest.approx(64 * mean_squared_jerk(q, dt))
    # One step in a held position: third differences 1, -2, 1 around it.
    step = np.zeros((10, 1))
    step[5:] = 1.0
    assert mean_squared_jerk(step, 1.0) == pytest.approx((1 + 4 + 1) / 7)


def test_jerk_edge_cases() -> None:
    assert math.isnan(mean_squared_jerk(np.zeros((3, 7)), 0.01))
    with pytest.raises(ValueError, match="`commands` must be"):
        mean_squared_jerk(np.zeros(10), 0.01)
    with pytest.raises(ValueError, match="`dt` must be > 0"):
        mean_squared_jerk(np.zeros((10, 7)), 0.0)


def _episode(head: str, success: bool, seed: int, lat: list[float], delta: list[float] | None = None) -> EpisodeRecord:
    n = 40
    tcp = np.stack([np.linspace(0.3, 0.5, n), np.linspace(-0.1, 0.1, n) + 0.01 * seed, np.full(n, 0.2)], axis=1)
    return EpisodeRecord(head=head, head_id=f"{head}@abc", profile="nominal", seed=seed, episode_id=seed + 1,
                         success=success, termination="success" if success else "timeout", steps=100 + seed,
                         sim_time=1.0 + seed, time_to_success=0.8 + seed if success else math.nan,
                         mean_sq_jerk=10.0 * (seed + 1), inference_ms=lat, delta_sq_norm=delta or [],
                         holds=seed, tcp=tcp)


def test_summary_and_report(tmp_path: Path) -> None:
    base = [_episode("base", s % 2 == 0, s, [1.0, 2.0]) for s in range(4)]
    lpds = [_episode("lpds", True, s, [3.0], [0.1 * (s + 1)]) for s in range(4)]
    sb, sl = summarise("base", "nominal", base), summarise("lpds", "nominal", lpds)
    assert (sb.successes, sb.episodes, sb.rate) == (2, 4, 0.5)
    assert (sb.wilson_low, sb.wilson_high) == wilson_interval(2, 4)
    assert sb.mean_time_to_success == pytest.approx(np.mean([0.8, 2.8]))  # failures do not count
    assert sb.inference_ms_p50 == pytest.approx(1.5) and math.isnan(sb.delta_sq_norm_mean)
    assert sl.delta_sq_norm_mean == pytest.approx(0.25) and sl.holds == 0 + 1 + 2 + 3
    with pytest.raises(ValueError, match="no episodes"):
        summarise("x", "nominal", [])

    config = {"task": "pick_place", "episodes": 4, "seed": 0, "heads": {"base": "none", "lpds": "h.onnx"}}
    report = write_report(tmp_path, config, [sb, sl], base + lpds)
    text = report.read_text()
    assert "| base | nominal | 2/4 | 0.50 |" in text and "| lpds | nominal | 4/4 | 1.00 |" in text
    assert f"[{sb.wilson_low:.2f}, {sb.wilson_high:.2f}]" in text
    for png in ("success.png", "latency.png", "tcp.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
        assert f"]({png})" in text
    results = json.loads((tmp_path / "results.json").read_text())  # strict JSON: NaN written as null
    assert results["summaries"][0]["delta_sq_norm_mean"] is None
    assert results["episodes"][1]["time_to_success"] is None and len(results["episodes"]) == 8


def test_config_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"heads\.lps.*existing \.onnx"):
        load_config(heads={"lps": str(tmp_path / "missing.onnx")})
    with pytest.raises(ValueError, match="unknown evaluation config keys.*episods"):
        load_config(episods=3)
    with pytest.raises(ValueError, match="`episodes` must be an integer >= 1"):
        load_config(episodes=0)
    path = tmp_path / "eval.yaml"
    path.write_text("heads: {base: none}\nprofiles: [nominal, object_gap]\nepisodes: 3\n")
    cfg = load_config(path, episodes=5)
    assert cfg.profiles == ["nominal", "object_gap"] and cfg.episodes == 5 and cfg.head_path("base") == "none"
