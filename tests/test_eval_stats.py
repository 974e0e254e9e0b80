"""Evaluation statistics and report, without ROS: Wilson intervals, paired comparisons, jerk,
summaries, files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from lps_steering.evaluation import (
    EpisodeRecord,
    load_config,
    mcnemar_p,
    mean_squared_jerk,
    paired_comparison,
    paired_difference_interval,
    phi_coefficient,
    summarise,
    wilson_interval,
)
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


def test_jerk_skips_commands_missing_from_the_record() -> None:
    """Telemetry lost under load leaves a gap in the record, not a jump in what the arm got."""
    dt = 0.01
    t = np.arange(60)[:, None] * dt
    c = np.array([[0.5, -2.0, 1.0, 0.0, 3.0, 0.1, -0.7]])
    q = c * t**3
    cycles = np.arange(60)
    keep = np.ones(60, dtype=bool)
    keep[[20, 21, 22, 40]] = False  # four telemetry messages lost
    exact = float(np.sum((6 * c) ** 2))
    assert mean_squared_jerk(q[keep], dt) > 10 * exact  # the gap read as a jump
    assert mean_squared_jerk(q[keep], dt, cycles[keep]) == pytest.approx(exact, rel=1e-6)
    assert math.isnan(mean_squared_jerk(q[::2], dt, cycles[::2]))  # never four in a row
    with pytest.raises(ValueError, match="`cycles` must have one entry per command"):
        mean_squared_jerk(q, dt, cycles[:10])


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
    comparison = paired_comparison(base, lpds)
    report = write_report(tmp_path, config, [sb, sl], base + lpds, comparisons=[comparison])
    text = report.read_text()
    assert "| base | nominal | 2/4 | 0.50 |" in text and "| lpds | nominal | 4/4 | 1.00 |" in text
    assert f"[{sb.wilson_low:.2f}, {sb.wilson_high:.2f}]" in text
    assert "Paired comparison with `base`" in text
    assert (f"| lpds | nominal | 4 | 2 / 2 / 0 / 0 | +50.0 pt | [{comparison.low * 100:+.1f}, "
            f"{comparison.high * 100:+.1f}] | 0.25 | 0.00 | no |") in text  # mid-p of 2-0: 2 * 1/8
    for png in ("success.png", "differences.png", "latency.png", "tcp.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
        assert f"]({png})" in text
    results = json.loads((tmp_path / "results.json").read_text())  # strict JSON: NaN written as null
    assert results["summaries"][0]["delta_sq_norm_mean"] is None
    assert results["episodes"][1]["time_to_success"] is None and len(results["episodes"]) == 8
    assert results["comparisons"][0]["only_head"] == 2 and results["comparisons"][0]["separated"] is False


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


def test_mcnemar_is_the_binomial_tail() -> None:
    # 8 discordant pairs for one side, 1 for the other, n = 9: P(X < 1) = 1/512, P(X = 1) = 9/512.
    assert mcnemar_p(8, 1, mid=False) == pytest.approx(2 * 10 / 512)
    assert mcnemar_p(8, 1) == pytest.approx(2 * (1 + 4.5) / 512)  # mid-p: the observed count half
    assert mcnemar_p(1, 8) == mcnemar_p(8, 1)
    assert mcnemar_p(5, 0, mid=False) == pytest.approx(2 / 32)  # 5-0 is not significant exactly...
    assert mcnemar_p(5, 0) == pytest.approx(1 / 32)  # ...but is with mid-p
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(4, 4, mid=False) == 1.0 and mcnemar_p(4, 4) == 1.0
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_p(-1, 2)


def _paired_tables(p_a: float, p_b: float, phi: float, n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    from lps_steering.evaluation.power import cell_probabilities

    return rng.multinomial(n, cell_probabilities(p_a, p_b, phi), size=draws)


@pytest.mark.parametrize("p_a,p_b,phi,n", [(0.85, 0.5, 0.0, 30), (0.85, 0.5, 0.4, 30), (0.5, 0.5, 0.6, 20),
                                           (0.3, 0.1, 0.2, 60)])
def test_paired_interval_covers_at_the_nominal_rate(p_a: float, p_b: float, phi: float, n: int) -> None:
    """Coverage of p_a - p_b over simulated paired experiments: close to 95% from both sides, so
    both a too narrow interval and one that ignores (or inverts) the pairing's correlation fail."""
    tables = _paired_tables(p_a, p_b, phi, n, 1500, np.random.default_rng(7))
    intervals = np.array([paired_difference_interval(*t) for t in tables])
    coverage = np.mean((intervals[:, 0] <= p_a - p_b) & (p_a - p_b <= intervals[:, 1]))
    assert 0.92 <= coverage <= 0.975, coverage
    assert np.all(intervals[:, 0] <= intervals[:, 1])


def test_pairing_narrows_the_interval_of_agreeing_heads() -> None:
    # The same margins (18/30 vs 12/30): heads that agree on most seeds differ more surely.
    agree = paired_difference_interval(12, 6, 0, 12)
    independent = paired_difference_interval(7, 11, 5, 7)
    assert agree[1] - agree[0] < 0.8 * (independent[1] - independent[0])
    assert agree[0] > 0.0 > independent[0]
    assert phi_coefficient(12, 6, 0, 12) > 0.6 and abs(phi_coefficient(7, 11, 5, 7)) < 0.05
    assert phi_coefficient(10, 0, 0, 0) == 0.0  # a margin is empty: no correlation to speak of
    lo, hi = paired_difference_interval(0, 0, 0, 10)  # nothing differs anywhere
    assert lo < 0.0 < hi
    with pytest.raises(ValueError, match="no pairs"):
        paired_difference_interval(0, 0, 0, 0)


def test_paired_comparison_pairs_by_seed() -> None:
    # The reference ran seeds 0..5, the head 0..3 (a shorter run shares the first seeds).
    ref = [_episode("base", s in (0, 1, 4), s, [1.0]) for s in range(6)]
    head = [_episode("lpds", s in (0, 2, 3), s, [1.0]) for s in range(4)]
    c = paired_comparison(ref, head)
    assert (c.head, c.reference, c.pairs) == ("lpds", "base", 4)
    assert (c.both, c.only_head, c.only_reference, c.neither) == (1, 2, 1, 0)
    assert c.difference == pytest.approx(0.25)
    assert (c.low, c.high) == paired_difference_interval(1, 2, 1, 0)
    assert c.mcnemar_p == mcnemar_p(2, 1) and c.phi == phi_coefficient(1, 2, 1, 0) and not c.separated
    strong = paired_comparison([_episode("base", False, s, []) for s in range(12)],
                               [_episode("lpds", True, s, []) for s in range(12)])
    assert strong.separated and strong.low > 0.5 and strong.mcnemar_p < 0.001
    # Three wins and no loss: the interval alone would call it, the test does not (p = 0.125).
    few = paired_comparison([_episode("base", False, s, []) for s in range(3)],
                            [_episode("lpds", True, s, []) for s in range(3)])
    assert few.low > 0.0 and few.mcnemar_p > 0.05 and not few.separated
    with pytest.raises(ValueError, match="share no seed"):
        paired_comparison(ref, [_episode("lpds", True, 99, [])])
    with pytest.raises(ValueError, match="ran a seed twice"):
        paired_comparison(ref, head + head[:1])


def test_run_episodes_per_run_and_reference(tmp_path: Path) -> None:
    head = tmp_path / "h.onnx"
    head.write_bytes(b"x")
    cfg = load_config(heads={"base": "none", "lpds": str(head), "lps": str(head)},
                      profiles=["nominal", "object_gap"], episodes=10,
                      run_episodes={"*/nominal": 20, "lpds/nominal": 30, "base/nominal": 30})
    assert cfg.runs() == [("base", "nominal", 30), ("base", "object_gap", 10), ("lpds", "nominal", 30),
                          ("lpds", "object_gap", 10), ("lps", "nominal", 20), ("lps", "object_gap", 10)]
    assert cfg.reference_head() == "base"
    assert load_config(heads={"a": str(head), "b": str(head)}).reference_head() == "a"
    assert load_config(heads={"a": str(head), "b": "none"}, reference="a").reference_head() == "a"
    with pytest.raises(ValueError, match="matching one of the runs"):
        load_config(heads={"base": "none"}, run_episodes={"lpds/nominal": 30})
    with pytest.raises(ValueError, match='"head/profile" pattern'):
        load_config(heads={"base": "none"}, run_episodes={"nominal": 30})
    with pytest.raises(ValueError, match=r"run_episodes\['base/\*'\]` must be an integer >= 1"):
        load_config(heads={"base": "none"}, run_episodes={"base/*": 0})
    with pytest.raises(ValueError, match="`reference` must be one of the head labels"):
        load_config(heads={"base": "none"}, reference="lpds")


def test_power_planning_controls_false_alarms_and_grows_with_pairs() -> None:
    from lps_steering.evaluation.power import cell_probabilities, main, simulate_power

    # Two equally good heads: called different in at most ~5% of evaluations, whatever the pairs.
    for pairs in (8, 24, 60):
        assert simulate_power(0.6, 0.6, 0.3, pairs, draws=3000, seed=1).false_alarm <= 0.055, pairs
    few, many = (simulate_power(0.86, 0.5, 0.33, n, draws=2000, seed=2) for n in (12, 40))
    assert few.separated < 0.8 < many.separated
    assert many.interval_only >= many.separated  # the rule asks the interval and the test
    # Pairing pays when the heads' outcomes agree over seeds; the unpaired view cannot see that.
    independent = simulate_power(0.86, 0.5, 0.0, 24, draws=2000, seed=3)
    agreeing = simulate_power(0.86, 0.5, 0.33, 24, draws=2000, seed=3)
    assert agreeing.separated > independent.separated + 0.05
    assert abs(agreeing.wilson_apart - independent.wilson_apart) < 0.06
    np.testing.assert_allclose(cell_probabilities(0.8, 0.5, 0.0), [0.4, 0.4, 0.1, 0.1])
    with pytest.raises(ValueError, match="`phi` 0.9 is impossible"):
        cell_probabilities(0.86, 0.5, 0.9)
    assert main(["--reference", "0.5", "--head", "0.86", "--phi", "0.9", "--pairs", "10"]) == 2


def test_shipped_evaluation_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every config in launch/evaluations is valid as shipped (model paths are relative to the
    repository root), and the demo compares LP-DS with the base on the same seeds."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    paths = sorted((root / "launch" / "evaluations").glob("*.yaml"))
    assert paths
    configs = {p.stem: load_config(p) for p in paths}
    demo = configs["demo"]
    assert demo.reference_head() == "base" and "lpds" in demo.heads
    assert demo.episodes_of("lpds", "nominal") == demo.episodes_of("base", "nominal")
    assert demo.episodes_of("lpds", "nominal") >= max(n for h, p, n in demo.runs() if p != "nominal")
    # The perception run is paired with the demo's own runs: every seed of it has a twin there.
    twin = configs["demo_perception"]
    assert twin.perception and Path(twin.ground_truth) == Path(demo.out_dir) / "results.json"
    assert twin.seed == demo.seed and set(twin.heads) <= set(demo.heads)
    assert all(n <= demo.episodes_of(h, p) for h, p, n in twin.runs())


def test_command_line_overrides_of_a_config_with_run_episodes(monkeypatch: pytest.MonkeyPatch) -> None:
    from lps_steering.evaluation.__main__ import config_from_args

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    demo = "launch/evaluations/demo.yaml"
    # Other heads or an episode count on the command line replace the file's per-run counts,
    # which were written for its own heads (its `lps/*` pattern would match nothing here).
    only_base = config_from_args(["--config", demo, "--head", "base=none"])
    assert only_base.runs() == [("base", p, only_base.episodes) for p in only_base.profiles]
    assert {n for _, _, n in config_from_args(["--config", demo, "--episodes", "2"]).runs()} == {2}
    mixed = config_from_args(["--config", demo, "--episodes", "2", "--run-episodes", "lpds/nominal=5",
                              "--reference", "lpds"])
    assert mixed.episodes_of("lpds", "nominal") == 5 and mixed.episodes_of("base", "nominal") == 2
    assert mixed.reference_head() == "lpds"
    with pytest.raises(SystemExit, match="--run-episodes must be HEAD/PROFILE=N"):
        config_from_args(["--config", demo, "--run-episodes", "lpds/nominal"])


def test_unquoted_star_pattern_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    from lps_steering.evaluation.__main__ import main

    path = tmp_path / "eval.yaml"
    path.write_text("heads: {base: none}\nrun_episodes:\n  */nominal: 3\n")  # YAML reads * as an alias
    assert main(["--config", str(path)]) == 2


def test_progress_outside_a_terminal_is_one_line_per_episode() -> None:
    # A live bar draws nothing when the output is a pipe or a log: `make demo | tee` would show
    # no sign of life until the end.
    import io

    from lps_steering.evaluation.__main__ import _progress
    from rich.console import Console

    out = io.StringIO()
    with _progress(Console(file=out, width=160)) as progress:
        progress.start(2)
        for done, seed in enumerate((100000, 100001), start=1):
            progress.episode(EpisodeRecord("lpds", "lpds@abc", "nominal", seed, done, True, "success", 412, 41.2, 30.0, 0.0), done, 2)
    lines = out.getvalue().splitlines()
    assert lines[1] == "2 episodes"
    assert lines[2].startswith("[1/2]") and lines[2].endswith("lpds/nominal seed 100000: success (412 steps)")
    assert lines[3].startswith("[2/2]") and "seed 100001" in lines[3]


def test_perception_record_errors_blind_stretches_and_window() -> None:
    from lps_steering.evaluation.stats import perception_record

    truth = {round(0.1 * k, 6): (0.5, 0.0, 0.02) for k in range(12)}
    frames = [(round(0.1 * k, 6), k not in (3, 4, 5), (0.5 + 0.001 * k, 0.0, 0.02), 10.0 * k) for k in range(12)]
    frames.append((9.0, True, (0.0, 0.0, 0.0), 0.0))  # another episode's frame: outside the window
    frames.append((0.2, True, (0.5, 0.0, 0.02), 20.0))  # frame 2 reported twice: counted once
    rec = perception_record(frames, truth, t_start=0.0, t_end=1.1)
    assert rec["frames"] == 12 and rec["frames_unseen"] == 3
    # Frame 2's second report (at the truth exactly) replaces its first.
    assert rec["perception_error_mm"] == pytest.approx([0.0, 1.0, 0.0] + [float(k) for k in range(6, 12)])
    assert rec["frame_age_ms"] == pytest.approx([10.0 * k for k in range(12)])
    assert rec["longest_blind_s"] == pytest.approx(0.4)  # last seen at 0.2 s, next at 0.6 s
    never = perception_record([(0.0, False, (math.nan,) * 3, 0.0)], truth, 0.0, 2.0)
    assert never["perception_error_mm"] == [] and never["longest_blind_s"] == pytest.approx(2.0)
    nothing = perception_record([], truth, 0.0, 1.0)  # perception silent all episode: blind all episode
    assert nothing["frames"] == 0 and nothing["longest_blind_s"] == pytest.approx(1.0)


def test_ground_truth_twins_in_the_report(tmp_path: Path) -> None:
    from lps_steering.evaluation.report import load_episodes
    from lps_steering.evaluation.stats import perception_losses, twin_comparisons

    truth = [_episode("lpds", True, s, [1.0]) for s in range(6)]
    perceived = [_episode("lpds", s >= 3, s, [1.0]) for s in range(6)]
    for e in perceived:
        e.frames, e.frames_unseen, e.perception_error_mm, e.longest_blind_s = 10, 2, [4.0, 6.0], 0.2
        e.stale_holds, e.frame_age_ms = 1, [0.0] * 9 + [40.0]
    config = {"task": "pick_place", "episodes": 6, "seed": 0, "heads": {"lpds": "h.onnx"}}
    write_report(tmp_path / "truth", config, [summarise("lpds", "nominal", truth)], truth)
    loaded = load_episodes(tmp_path / "truth" / "results.json")
    assert [(e.head, e.seed, e.success) for e in loaded] == [(e.head, e.seed, e.success) for e in truth]
    twins = twin_comparisons(loaded, perceived)
    assert len(twins) == 1 and (twins[0].only_reference, twins[0].only_head, twins[0].pairs) == (3, 0, 6)
    summary = summarise("lpds", "nominal", perceived)
    assert summary.unseen_fraction == pytest.approx(0.2) and summary.stale_holds == 6
    assert summary.perception_error_mm_p50 == pytest.approx(5.0)
    # Seeds 0-2 are lost; 1 and 4 held on a stale position; 5 fails with the truth, not with perception.
    for e in perceived:
        e.stale_holds = 40 if e.seed in (1, 4) else 0
    truth[5].success = False
    losses = perception_losses(truth, perceived)
    assert [(x.lost, x.lost_stale, x.gained, x.stale, x.stale_truth_solved, x.lost_stale_seeds) for x in losses] == [
        (3, 1, 1, 2, 2, [1])]
    twins = twin_comparisons(truth, perceived)
    summary = summarise("lpds", "nominal", perceived)
    text = write_report(tmp_path / "perceived", config, [summary], perceived, twins=twins, losses=losses).read_text()
    assert "| lpds | nominal | 60 | 20.0% | 5.0 / 6.0 / 6.0 | 0.20 | 0 / 40 | 80 |" in text
    assert "| lpds | nominal | 6 | 0.83 / 0.50 | 3 / 1 | -33.3 pt |" in text
    assert "| lpds | nominal | 3 | 1 | 1 | 2 | 2 | 1 |" in text
    assert json.loads((tmp_path / "perceived" / "results.json").read_text())["perception_losses"][0]["lost"] == 3
    assert (tmp_path / "perceived" / "perception.png").read_bytes()[:4] == b"\x89PNG"
    # No perception and no twin for another head: no twin row.
    assert twin_comparisons(loaded, [_episode("base", True, 0, [1.0])]) == []


def test_perception_config_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`camera_size` must be"):
        load_config(perception=True, camera_size=[640])
    from lps_steering.evaluation.runner import run_evaluation

    with pytest.raises(FileNotFoundError, match="none.json does not exist"):
        run_evaluation(load_config(perception=True, ground_truth=str(tmp_path / "none.json")))
    twin = tmp_path / "twin.json"
    twin.write_text(json.dumps({"config": {"task": "pick_place", "perception": True}, "episodes": []}))
    with pytest.raises(ValueError, match="not a ground-truth twin.*perception True"):
        run_evaluation(load_config(perception=True, ground_truth=str(twin)))
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(ValueError, match="`ground_truth` must be empty unless `perception`"):
        load_config(ground_truth=str(tmp_path / "r.json"))


def test_perception_options_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from lps_steering.evaluation.__main__ import config_from_args

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    cfg = config_from_args(["--config", "launch/evaluations/perception.yaml", "--camera-size", "320", "240",
                            "--episodes", "3"])
    assert cfg.perception and cfg.camera_size == [320, 240] and cfg.episodes == 3
    plain = config_from_args(["--head", "base=none", "--perception"])
    assert plain.perception and plain.camera_size == [640, 480] and not plain.ground_truth
    assert not plain.resume_from
    later = config_from_args(["--config", "launch/evaluations/perception.yaml", "--resume-from", "part1.json.gz"])
    assert later.resume_from == "part1.json.gz" and later.perception


def test_frames_larger_than_fast_dds_builtin_segment_get_the_shared_memory_profile(tmp_path: Path) -> None:
    from lps_steering.evaluation.runner import image_transport_env

    root = Path(__file__).resolve().parents[1]
    profile = str(root / "config" / "fastdds_localhost.xml")
    robot_size = load_config(perception=True, camera_size=[640, 480])
    env: dict[str, str] = {}
    assert image_transport_env(robot_size, env, root) == profile
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == profile
    # Installed without a checkout (no LPS_ROOT): the runner's root is lps_steering's share, which
    # carries the same profile.
    from ament_index_python.packages import get_package_share_directory

    share = Path(get_package_share_directory("lps_steering"))
    assert (share / "launch" / "launch_stack.py").is_file()
    assert (share / "config" / "fastdds_localhost.xml").read_bytes() == Path(profile).read_bytes()
    assert image_transport_env(robot_size, env := {}, share) == str(share / "config" / "fastdds_localhost.xml")
    # 320 x 240 rgb8 (225 KiB) fits Fast DDS's own 512 KiB segment: the environment stays as it is.
    small = load_config(perception=True, camera_size=[320, 240])
    assert image_transport_env(small, env := {}, root) is None and env == {}
    # A profile the caller chose, another middleware, no camera, or no profile file: left alone.
    chosen = {"FASTDDS_DEFAULT_PROFILES_FILE": "/elsewhere.xml"}
    assert image_transport_env(robot_size, chosen, root) is None
    assert chosen == {"FASTDDS_DEFAULT_PROFILES_FILE": "/elsewhere.xml"}
    cyclone = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert image_transport_env(robot_size, cyclone, root) is None and "FASTDDS_DEFAULT_PROFILES_FILE" not in cyclone
    assert image_transport_env(load_config(camera_size=[640, 480]), env := {}, root) is None and env == {}
    assert image_transport_env(robot_size, env := {}, tmp_path) is None and env == {}
