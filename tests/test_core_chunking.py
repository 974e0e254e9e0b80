"""Chunk execution: interpolation, replan timing, continuity across chunks, temporal ensembling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lps_steering.core.chunking import ChunkExecutor

ACTIONS = np.array([[1.0], [2.0], [3.0], [4.0]])


def make(decay=None, execute=2) -> ChunkExecutor:
    return ChunkExecutor(chunk_length=4, execute_steps=execute, policy_rate_hz=10.0,
                         command_rate_hz=100.0, ensemble_decay=decay)


def test_first_chunk_interpolates_from_the_measured_start():
    ex = make()
    ex.add_chunk(ACTIONS, t0=5.0, start=np.array([0.0]))
    for t, expected in [(5.0, 0.0), (5.02, 0.2), (5.05, 0.5), (5.1, 1.0), (5.15, 1.5), (5.31, 3.1),
                        (5.4, 4.0), (5.6, 4.0)]:
        assert ex.command(t)[0] == pytest.approx(expected), t
    assert ex.chunk_index == 3


def test_replan_due_after_execute_steps_nearest_cycle():
    ex = make(execute=2)
    assert ex.needs_replan(0.0)  # nothing to execute yet
    ex.add_chunk(ACTIONS, t0=1.0, start=np.array([0.0]))
    assert not ex.needs_replan(1.0)
    assert not ex.needs_replan(1.19)
    assert ex.needs_replan(1.196)  # half a command period early is the nearest cycle
    assert ex.needs_replan(1.2)
    ex.reset()
    assert ex.needs_replan(1.0) and not ex.active


def test_next_chunk_starts_from_the_last_command_without_a_jump():
    ex = make()
    ex.add_chunk(ACTIONS, t0=0.0, start=np.array([0.0]))
    last = ex.command(0.2)[0]
    assert last == pytest.approx(2.0)
    ex.add_chunk(np.full((4, 1), 10.0), t0=0.2, start=np.array([-99.0]))  # start ignored now
    assert ex.command(0.2)[0] == pytest.approx(last)
    assert ex.command(0.25)[0] == pytest.approx(2.0 + 0.5 * 8.0)
    np.testing.assert_array_equal(ex.targets, np.full((4, 1), 10.0))


@pytest.mark.parametrize("decay,expected", [(0.0, 2.25), (math.log(2.0), 2.0)])
def test_temporal_ensembling_weights_oldest_first(decay, expected):
    ex = make(decay=decay, execute=1)
    ex.add_chunk(ACTIONS, t0=0.0, start=np.array([0.0]))
    assert ex.command(0.1)[0] == pytest.approx(1.0)
    ex.add_chunk(np.full((4, 1), 5.0), t0=0.1, start=np.array([0.0]))
    # Chunk A at 0.15: 1.5; chunk B (starting at the last command 1.0): 1 + 0.5 * 4 = 3.0.
    # Weights exp(-decay * i), i = 0 for A: decay 0 -> mean 2.25; ln 2 -> (1.5 + 0.5 * 3) / 1.5 = 2.
    assert ex.command(0.15)[0] == pytest.approx(expected)
    # After A's last action time (0.4) only B remains.
    assert ex.command(0.45)[0] == pytest.approx(5.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`execute_steps` \(9\) must be in \[1, chunk_length \(8\)\]"):
        ChunkExecutor(8, 9, 10.0, 100.0)
    ex = make()
    with pytest.raises(ValueError, match=r"`actions` must have shape \(4, D\), got \(3, 1\)"):
        ex.add_chunk(ACTIONS[:3], 0.0, np.zeros(1))
    with pytest.raises(RuntimeError, match="before any chunk"):
        ex.command(0.0)
