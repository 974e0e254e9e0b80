"""The policy node under every fault of tests/fault_suite.py, each rule asserted on its own.

The whole suite runs once per module (real policy node with the shipped decoder and LP-DS head,
fake_robot following the commands, the MuJoCo sim bridge for the sim-time probes); every test
below asserts one rule over the probes it concerns, so a failure names the broken rule and the
probes that broke it. `scripts/fault_probes.py` prints the same results.
"""

from __future__ import annotations

import pytest
from fault_suite import LATENCY_INPUT, LATENCY_STALE, MEASURED_TOL, PROBES, STEP, ProbeResult, run_probes

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _only_slow(r: ProbeResult) -> bool:
    """A failure with no unsafe command and a live node: the arm was safe but slow to go on."""
    return r.verdict == 'FAIL' and r.unsafe == 0 and not any(
        'silent' in f or 'died' in f or 'abandoned' in f for f in r.failures)


@pytest.fixture(scope='module')
def attempts(tmp_path_factory) -> list[ProbeResult]:
    """Every probe once; a probe that failed only on progress (how soon the arm moved on) once more.

    On a loaded 2-core machine the policy can take longer than a probe's window to move on; the
    second attempt tells that from a node that never moves on. Safety rules are judged on every
    attempt, so a first attempt's unsafe command is never forgiven.
    """
    out = run_probes(PROBES, workdir=tmp_path_factory.mktemp('faults'), log=lambda _: None)
    first = {r.name: r for r in out}
    again = [p for p in PROBES if _only_slow(first[p.name])]
    if again:
        out += run_probes(again, workdir=tmp_path_factory.mktemp('faults_again'), log=lambda _: None)
    for r in out:
        print(r.line())
    return out


@pytest.fixture(scope='module')
def results(attempts) -> dict[str, ProbeResult]:
    """Each probe's last attempt."""
    return {r.name: r for r in attempts}


def _where(results: dict[str, ProbeResult] | list[ProbeResult], ok,
           cls: str | tuple[str, ...] | None = None) -> list[str]:
    classes = (cls,) if isinstance(cls, str) else cls
    rs = results.values() if isinstance(results, dict) else results
    return [r.line() for r in rs if (classes is None or r.cls in classes) and not ok(r)]


def test_every_probe_ran(results) -> None:
    assert _where(results, lambda r: r.verdict != 'ERROR') == []
    assert set(results) == {p.name for p in PROBES}


def test_no_command_leaves_the_workspace_box(attempts) -> None:
    assert _where(attempts, lambda r: r.kinds.get('box', 0) == 0) == []


def test_no_joint_is_commanded_beyond_its_limit(attempts) -> None:
    assert _where(attempts, lambda r: r.kinds.get('limit', 0) == 0 and r.kinds.get('malformed', 0) == 0) == []


def test_no_command_is_more_than_one_step_from_the_last_or_from_measured(attempts) -> None:
    assert _where(attempts, lambda r: r.kinds.get('step', 0) == 0 and r.kinds.get('jump', 0) == 0) == []
    assert max(r.max_jump for r in attempts) <= STEP.max() + MEASURED_TOL


def test_only_braking_commands_after_a_fault_until_resume_is_asked(attempts) -> None:
    assert _where(attempts, lambda r: r.kinds.get('nonhold', 0) == 0) == []
    assert _where(attempts, lambda r: not r.self_resumed) == []


def test_malformed_or_non_finite_input_brakes_within_two_periods(results) -> None:
    quick = [r for r in results.values() if r.limit == LATENCY_INPUT]
    assert len(quick) >= 10
    assert [r.line() for r in quick if r.latency is None or r.latency > LATENCY_INPUT] == []


def test_silence_brakes_within_the_staleness_limit(results) -> None:
    stale = [r for r in results.values() if r.limit == LATENCY_STALE]
    assert [r.line() for r in stale if r.latency is None or r.latency > LATENCY_STALE] == []


def test_the_control_path_never_dies_and_no_arm_is_abandoned(results) -> None:
    assert _where(results, lambda r: not any('silent' in f or 'died' in f or 'abandoned' in f
                                             for f in r.failures)) == []


def test_the_node_moves_again_when_asked_to_resume(results) -> None:
    assert _where(results, lambda r: r.resumed is not False) == []
    assert _where(results, lambda r: not any('stuck at the boundary' in f or 'resume' in f
                                             for f in r.failures)) == []


def test_bad_heads_are_refused_and_the_guard_is_on(results) -> None:
    assert _where(results, lambda r: r.verdict == 'PASS', 'heads') == []


def test_time_faults_are_held_and_never_block(results) -> None:
    assert _where(results, lambda r: r.verdict == 'PASS', 'time') == []


def test_second_publishers_are_detected(results) -> None:
    assert _where(results, lambda r: r.verdict == 'PASS', 'others on the wire') == []


def test_configure_time_parameters_are_refused_while_active(results) -> None:
    assert _where(results, lambda r: r.verdict == 'PASS', 'parameters') == []


def test_every_probe_passes(results) -> None:
    assert _where(results, lambda r: r.verdict == 'PASS') == []
