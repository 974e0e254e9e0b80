"""The evaluation's episode journal without ROS: records survive the round trip, a journal of other
episodes is refused, a line cut short by a stop is run again."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from lps_steering.evaluation import EvalConfig
from lps_steering.evaluation.journal import JOURNAL, Journal, record_from_json, record_to_json
from lps_steering.evaluation.stats import EpisodeRecord


def _record(head: str = "base", seed: int = 3, success: bool = True, tcp_points: int = 4) -> EpisodeRecord:
    return EpisodeRecord(head=head, head_id="none", profile="nominal", seed=seed, episode_id=seed + 1,
                         success=success, termination="success" if success else "timeout", steps=120,
                         sim_time=1.2, time_to_success=1.2 if success else math.nan, mean_sq_jerk=0.5,
                         inference_ms=[1.5, 2.0], tcp=np.arange(3 * tcp_points, dtype=float).reshape(-1, 3) / 7,
                         start_q=[0.1] * 7, perception_error_mm=[3.25], longest_blind_s=0.4)


def test_a_record_survives_the_round_trip_nan_included() -> None:
    a = _record(success=False)
    b = record_from_json(record_to_json(a))
    assert math.isnan(b.time_to_success)
    np.testing.assert_array_equal(a.tcp, b.tcp)
    for name in ("head", "seed", "termination", "steps", "inference_ms", "start_q", "perception_error_mm",
                 "longest_blind_s", "success"):
        assert getattr(a, name) == getattr(b, name), name


def _config(tmp_path: Path, **kw) -> EvalConfig:
    return EvalConfig(**dict(dict(heads={"base": "none"}, episodes=3, seed=3, out_dir=str(tmp_path)), **kw))


def test_resume_keeps_what_the_runs_want_and_drops_a_cut_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path, _config(tmp_path), resume=False)
    for seed in (3, 4, 9):  # seed 9: not an episode of the resumed run (3 episodes from seed 3)
        journal.append(_record(seed=seed))
    with open(tmp_path / JOURNAL, "a") as f:
        f.write(record_to_json(_record(seed=5))[:40])  # the run stopped mid-line
    again = Journal(tmp_path, _config(tmp_path), resume=True)
    assert again.done() == {("base", "nominal", 3), ("base", "nominal", 4)}
    again.append(_record(seed=5))
    assert Journal(tmp_path, _config(tmp_path), resume=True).done() == {("base", "nominal", s) for s in (3, 4, 5)}
    # Not resuming starts afresh.
    assert Journal(tmp_path, _config(tmp_path), resume=False).done() == set()


def test_a_journal_of_other_episodes_is_refused(tmp_path: Path) -> None:
    Journal(tmp_path, _config(tmp_path), resume=False).append(_record())
    with pytest.raises(ValueError, match="task 'pick_place' -> 'lift'"):
        Journal(tmp_path, _config(tmp_path, task="lift"), resume=True)
    with pytest.raises(ValueError, match="profiles"):
        Journal(tmp_path, _config(tmp_path, profiles=["object_gap"]), resume=True)
    # More episodes per run extend the seeds: accepted.
    assert Journal(tmp_path, _config(tmp_path, episodes=10), resume=True).done() == {("base", "nominal", 3)}


def test_fewer_episodes_leave_the_others_in_the_file_and_a_fresh_run_keeps_the_old_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path, _config(tmp_path), resume=False)
    for seed in (3, 4, 5):
        journal.append(_record(seed=seed))
    assert Journal(tmp_path, _config(tmp_path, episodes=1), resume=True).done() == {("base", "nominal", 3)}
    assert len(Journal(tmp_path, _config(tmp_path), resume=True).done()) == 3
    Journal(tmp_path, _config(tmp_path), resume=False)
    assert len((tmp_path / (JOURNAL + ".previous")).read_text().splitlines()) == 4


def test_a_corrupt_first_line_is_refused_with_the_way_out(tmp_path: Path) -> None:
    (tmp_path / JOURNAL).write_text('{"episode_k\n')
    with pytest.raises(ValueError, match="another `out_dir`"):
        Journal(tmp_path, _config(tmp_path), resume=True)
    (tmp_path / JOURNAL).write_text('[1, 2]\n')
    with pytest.raises(ValueError, match="another `out_dir`"):
        Journal(tmp_path, _config(tmp_path), resume=True)


def test_nan_inside_lists_survives() -> None:
    a = _record()
    a.inference_ms = [1.0, math.nan]
    b = record_from_json(record_to_json(a))
    assert b.inference_ms[0] == 1.0 and math.isnan(b.inference_ms[1])


def test_an_interim_report_reads_the_journal_without_touching_it(tmp_path: Path) -> None:
    from lps_steering.evaluation.runner import report_from_journal

    head = tmp_path / "lpds.onnx"
    head.write_bytes(b"not read, only hashed")
    config = _config(tmp_path, heads={"base": "none", "lpds": str(head)}, profiles=["nominal", "object_gap"])
    journal = Journal(tmp_path, config, resume=False)
    for seed, ok in ((3, True), (4, False)):
        journal.append(_record(seed=seed, success=ok))
    journal.append(_record(head="lpds", seed=4, success=True))
    with open(tmp_path / JOURNAL, "a") as f:
        f.write(record_to_json(_record(head="lpds", seed=5))[:50])  # the run is writing this line
    before = (tmp_path / JOURNAL).read_bytes()

    result = report_from_journal(config)
    assert (tmp_path / JOURNAL).read_bytes() == before
    # Runs without an episode (both object_gap runs) are left out; the cut line is not an episode.
    assert [(s.head, s.profile, s.episodes, s.successes) for s in result.summaries] == [
        ("base", "nominal", 2, 1), ("lpds", "nominal", 1, 1)]
    (c,) = result.comparisons
    assert (c.head, c.pairs, c.only_head) == ("lpds", 1, 1)
    text = result.report.read_text()
    assert "Interim report**: 3 of 12 episodes" in text
    from lps_steering.evaluation.report import load_twin

    with pytest.raises(ValueError, match="interim report"):  # a part is no twin for the whole
        load_twin(tmp_path / "results.json", "pick_place")
    # A complete journal makes a report that does not call itself interim.
    full = _config(tmp_path / "full", episodes=2)
    journal = Journal(tmp_path / "full", full, resume=False)
    for seed in (3, 4):
        journal.append(_record(seed=seed))
    assert "Interim" not in report_from_journal(full).report.read_text()


def test_an_interim_report_refuses_a_missing_empty_or_foreign_journal(tmp_path: Path) -> None:
    from lps_steering.evaluation.__main__ import main
    from lps_steering.evaluation.runner import report_from_journal

    with pytest.raises(FileNotFoundError, match="no evaluation has written"):
        report_from_journal(_config(tmp_path))
    assert main(["--head", "base=none", "--seed", "3", "--out-dir", str(tmp_path), "--report-only"]) == 1
    Journal(tmp_path, _config(tmp_path), resume=False)
    with pytest.raises(ValueError, match="no episode of these runs"):
        report_from_journal(_config(tmp_path))
    Journal(tmp_path, _config(tmp_path), resume=True).append(_record())
    with pytest.raises(ValueError, match="task 'pick_place' -> 'lift'"):
        report_from_journal(_config(tmp_path, task="lift"))
    assert not (tmp_path / "report.md").exists()
    assert main(["--head", "base=none", "--seed", "3", "--episodes", "3", "--out-dir", str(tmp_path),
                 "--report-only"]) == 0
    assert "1 of 3 episodes" in (tmp_path / "report.md").read_text()


def test_an_evaluation_goes_on_elsewhere_from_its_earlier_parts_results(tmp_path: Path) -> None:
    """An interim results.json carries the evaluation to another folder (another machine): its
    episodes count as run and join the new journal; one of other episodes is refused."""
    from lps_steering.evaluation.runner import report_from_journal

    first = _config(tmp_path / "first", episodes=4)
    journal = Journal(tmp_path / "first", first, resume=False)
    for seed, ok in ((3, True), (4, False)):
        journal.append(_record(seed=seed, success=ok, tcp_points=250))
    report_from_journal(first)  # writes first/results.json, an interim one (2 of 4)
    earlier = str(tmp_path / "first" / "results.json")

    # A report of the earlier part alone, from a folder that has no journal of its own.
    alone = report_from_journal(_config(tmp_path / "alone", episodes=4, resume_from=earlier))
    assert [(s.episodes, s.successes) for s in alone.summaries] == [(2, 1)]

    later = _config(tmp_path / "later", episodes=4, resume_from=earlier)
    assert Journal(tmp_path / "later", later, resume=False).done() == {("base", "nominal", s) for s in (3, 4)}
    fifth = _record(seed=5, success=True, tcp_points=250)
    fifth.perception_error_mm = [3.2468, math.nan]
    Journal(tmp_path / "later", later, resume=False).append(fifth)
    # Its own journal now holds the earlier part's episodes too: resuming needs no results.json.
    again = Journal(tmp_path / "later", _config(tmp_path / "later", episodes=4), resume=True)
    assert again.done() == {("base", "nominal", s) for s in (3, 4, 5)}
    result = report_from_journal(later)
    assert [(s.episodes, s.successes) for s in result.summaries] == [(3, 2)]
    # The earlier part's TCP path as results.json keeps it (every 10th step), and thinned only once
    # however many parts it went through; the new episode's in full until its results.json.
    by_seed = {e.seed: e for e in result.episodes}
    assert (len(by_seed[3].tcp), by_seed[3].tcp_stride) == (25, 10)
    assert (len(by_seed[5].tcp), by_seed[5].tcp_stride) == (250, 1)
    kept = {d["seed"]: d for d in json.loads((tmp_path / "later" / "results.json").read_text())["episodes"]}
    assert (len(kept[3]["tcp"]), len(kept[5]["tcp"])) == (25, 25)
    assert kept[5]["perception_error_mm"] == [3.2, None]  # to 0.1 mm, NaN kept (as null)

    # This folder's own episode wins over the earlier part's record of the same seed.
    own = Journal(tmp_path / "own", _config(tmp_path / "own", episodes=4), resume=False)
    own.append(_record(seed=4, success=True))
    mixed = Journal(tmp_path / "own", _config(tmp_path / "own", episodes=4, resume_from=earlier), resume=True)
    assert {e.seed: e.success for e in mixed.episodes} == {3: True, 4: True}

    with pytest.raises(ValueError, match="task 'pick_place' -> 'lift'"):
        Journal(tmp_path / "other", _config(tmp_path / "other", task="lift", resume_from=earlier), resume=False)
    # Kept gzipped (a committed record), it reads the same.
    (tmp_path / "results.json.gz").write_bytes(gzip.compress(Path(earlier).read_bytes()))
    zipped = _config(tmp_path / "zipped", episodes=4, resume_from=str(tmp_path / "results.json.gz"))
    assert Journal(tmp_path / "zipped", zipped, resume=False).done() == {("base", "nominal", s) for s in (3, 4)}


def test_resume_from_refuses_what_is_not_an_earlier_part(tmp_path: Path) -> None:
    def journal(path: Path) -> Journal:
        return Journal(tmp_path / "x", _config(tmp_path / "x", resume_from=str(path)), resume=False)

    with pytest.raises(FileNotFoundError, match="`resume_from`: .*none.json does not exist"):
        journal(tmp_path / "none.json")
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(b'{"config": {}, "episodes": []}')[:-6])
    with pytest.raises(ValueError, match="not a readable results.json"):
        journal(tmp_path / "cut.json.gz")
    (tmp_path / "unkeyed.json").write_text(json.dumps({"config": {"task": "pick_place"}, "episodes": []}))
    with pytest.raises(ValueError, match="does not record whose episodes.*--report-only"):
        journal(tmp_path / "unkeyed.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="not a results.json"):
        journal(tmp_path / "list.json")
    # A journal of other episodes in the folder: refused, with the way out.
    Journal(tmp_path / "y", _config(tmp_path / "y", task="lift"), resume=False).append(_record())
    first = _config(tmp_path / "first", episodes=4)
    Journal(tmp_path / "first", first, resume=False).append(_record(seed=3))
    from lps_steering.evaluation.runner import report_from_journal

    report_from_journal(first)
    with pytest.raises(ValueError, match="another `out_dir`.*`resume_from` off"):
        Journal(tmp_path / "y", _config(tmp_path / "y", resume_from=str(tmp_path / "first" / "results.json")),
                resume=False)


def test_auto_resume_after_stale_is_the_stacks_and_keys_the_journal_only_when_set(tmp_path: Path) -> None:
    from lps_steering.evaluation.journal import episode_key

    with pytest.raises(ValueError, match="unless `launch` is set"):
        _config(tmp_path, auto_resume_after_stale=True)
    with pytest.raises(ValueError, match="true or false"):
        _config(tmp_path, auto_resume_after_stale="yes")
    decoder = tmp_path / "decoder.onnx"
    decoder.write_bytes(b"hashed only")
    plain = _config(tmp_path, launch=True, decoder=str(decoder))
    resuming = _config(tmp_path, launch=True, decoder=str(decoder), auto_resume_after_stale=True)
    # Journals written without the option keep their key (and their episodes)...
    assert "auto_resume_after_stale" not in episode_key(plain)
    Journal(tmp_path, plain, resume=False).append(_record())
    assert Journal(tmp_path, plain, resume=True).done() == {("base", "nominal", 3)}
    # ...and its episodes are other episodes.
    with pytest.raises(ValueError, match="auto_resume_after_stale None -> True"):
        Journal(tmp_path, resuming, resume=True)


def test_perception_hold_is_object_perceptions_and_keys_the_journal_only_when_set(tmp_path: Path) -> None:
    from lps_steering.evaluation.journal import episode_key

    decoder = tmp_path / "decoder.onnx"
    decoder.write_bytes(b"hashed only")
    launched = dict(launch=True, decoder=str(decoder))
    with pytest.raises(ValueError, match="unless `perception` and `launch`"):
        _config(tmp_path, perception_hold_unseen_s=0.3, **launched)
    for bad in (0.8, -0.1, True, "0.3"):
        with pytest.raises(ValueError, match=r"in \[0, 0.5\]"):
            _config(tmp_path, perception=True, perception_hold_unseen_s=bad, **launched)
    plain = _config(tmp_path, perception=True, **launched)
    held = _config(tmp_path, perception=True, perception_hold_unseen_s=0.3, **launched)
    assert "perception_hold_unseen_s" not in episode_key(plain)
    assert episode_key(held)["perception_hold_unseen_s"] == 0.3
