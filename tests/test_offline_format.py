"""The offline trajectory format: a dataset folder reads back exactly as written, malformed folders are
refused by name, and the chunk loader's targets are the hand-computed ones."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lps_train.normalization import Normalization
from lps_train.offline import format as fmt
from lps_train.offline.chunks import ChunkDataset

OBS = (fmt.Entry("q", 2, source="arm"), fmt.Entry("cube", 1))
ACT = (fmt.Entry("dq", 2, units="rad", mode="delta"),)


def _two_episodes(**kw) -> fmt.Trajectories:
    # Episode 0: 4 steps, ends in a terminal; episode 1: 1 step, time-out.
    obs = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    return fmt.Trajectories(
        observation=OBS, action=ACT, observations=obs, actions=np.arange(10, dtype=np.float32).reshape(5, 2) / 10,
        rewards=np.array([1, 2, 3, 4, 9], np.float32), terminals=np.array([0, 0, 0, 1, 0], bool),
        episode_lengths=[4, 1], final_observations=np.array([[100, 101, 102], [200, 201, 202]], np.float32),
        success=[True, False], timeouts=[False, True], tasks=["a", "b"], rate_hz=20.0, robot="r",
        **kw)


def test_a_dataset_reads_back_exactly_as_written(tmp_path):
    data = _two_episodes(extras={"qpos": np.random.default_rng(0).normal(size=(5, 4))},
                         images={"top": [f"cam/{i}.png" for i in range(5)]}, source={"converter": "test"})
    back = fmt.load(fmt.save(data, tmp_path / "ds"))
    for name in ("observations", "actions", "rewards", "terminals", "episode_lengths", "final_observations",
                 "success", "timeouts"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name), err_msg=name)
    np.testing.assert_allclose(back.extras["qpos"], data.extras["qpos"].astype(np.float32))
    assert back.images == data.images and back.tasks == ["a", "b"]
    assert back.observation == OBS and back.action == ACT and back.meta() == data.meta()
    np.testing.assert_array_equal(back.next_observations()[[3, 4]], data.final_observations)
    np.testing.assert_array_equal(back.next_observations()[:3], data.observations[1:4])


def test_inconsistent_arrays_are_refused_by_name():
    with pytest.raises(fmt.DatasetError, match="lengths add up to 4, but there are 5 steps"):
        fmt.Trajectories(**(_two_episodes().__dict__ | {"episode_lengths": [3, 1]}))
    bad = _two_episodes().__dict__ | {"observations": np.full((5, 3), np.nan, np.float32)}
    with pytest.raises(fmt.DatasetError, match=r"`observations` has a non-finite value \(row 0\)"):
        fmt.Trajectories(**bad)
    with pytest.raises(fmt.DatasetError, match=r"`actions` must have shape \(5, 2\)"):
        fmt.Trajectories(**(_two_episodes().__dict__ | {"actions": np.zeros((5, 3))}))


def test_malformed_folders_are_refused_with_what_is_wrong(tmp_path):
    with pytest.raises(fmt.DatasetError, match="no meta.json"):
        fmt.load(tmp_path)
    path = fmt.save(_two_episodes(), tmp_path / "ds")
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps(meta | {"version": 99}))
    with pytest.raises(fmt.DatasetError, match="`format`/`version` must be"):
        fmt.load(path)
    (path / "meta.json").write_text(json.dumps(meta | {"observation": [{"name": "q", "size": 4}]}))
    with pytest.raises(fmt.DatasetError, match="`observation` must be a fixed-size list of 4 floats"):
        fmt.load(path)
    (path / "meta.json").write_text(json.dumps(meta))
    steps = pq.read_table(path / "steps.parquet")
    shuffled = steps.set_column(0, "episode_index", pa.array([0, 1, 0, 0, 1], pa.int64()))
    pq.write_table(shuffled, path / "steps.parquet")
    with pytest.raises(fmt.DatasetError, match="`episode_index` must list episodes 0..1 contiguously"):
        fmt.load(path)
    pq.write_table(steps.drop_columns(["reward"]), path / "steps.parquet")
    with pytest.raises(fmt.DatasetError, match="column `reward` is missing"):
        fmt.load(path)


def test_chunk_targets_match_a_hand_computation():
    data = _two_episodes()
    c = ChunkDataset(data, horizon=2, gamma=0.5)
    # Episode 0 (4 steps) gives starts 0, 1, 2; episode 1 (1 step) none.
    np.testing.assert_array_equal(c.starts, [0, 1, 2])
    b = c.batch(c.starts)
    np.testing.assert_allclose(b["rewards"], [1 + 0.5 * 2, 2 + 0.5 * 3, 3 + 0.5 * 4])
    np.testing.assert_array_equal(b["masks"], [1, 1, 0])  # the chunk at 2 contains the terminal step 3
    np.testing.assert_array_equal(b["next_obs"], [data.observations[2], data.observations[3],
                                                   data.final_observations[0]])
    np.testing.assert_allclose(b["discounts"], [0.25] * 3)
    np.testing.assert_array_equal(b["actions"][2], data.actions[2:4])
    np.testing.assert_array_equal(b["obs"], data.observations[:3])
    # SARSA's next chunk starts at t+2; from start 1 on, the episode's last whole chunk (start 2) stands in.
    np.testing.assert_array_equal(b["next_actions"], data.actions[[[2, 3], [2, 3], [2, 3]]])
    np.testing.assert_array_equal(ChunkDataset(data, horizon=1, gamma=0.5).batch(np.arange(4))["next_actions"][:, 0],
                                  data.actions[[1, 2, 3, 3]])
    # Normalised units: the chunk's actions go through the dataset's statistics, the rewards do not.
    norm = Normalization(np.zeros(3), np.full(3, 2.0), np.array([1.0, 0.0]), np.array([2.0, 4.0]))
    nb = ChunkDataset(data, 2, 0.5, norm).batch(np.array([1]))
    np.testing.assert_allclose(nb["actions"][0], (data.actions[1:3] - [1.0, 0.0]) / [2.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(nb["obs"][0], data.observations[1] / 2)
    np.testing.assert_allclose(nb["rewards"], b["rewards"][1:2])
    with pytest.raises(fmt.DatasetError, match="no episode has 5 steps"):
        ChunkDataset(data, horizon=5, gamma=0.5)


def test_joint_position_deltas_are_rereferenced_to_the_chunks_first_observation():
    # Deltas are stored per step, relative to that step's joints; the runtime reads a chunk's
    # deltas relative to the observation the chunk was inferred from.
    obs_layout = (fmt.Entry("arm_q", 7, source="arm_joint_positions"), fmt.Entry("g", 1, source="gripper_width"))
    act_layout = (fmt.Entry("arm", 7, mode="joint_position_delta"), fmt.Entry("grip", 1, mode="gripper_width"))
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(3, 8))
    targets = rng.normal(size=(3, 7))
    actions = np.concatenate([targets - obs[:, :7], rng.normal(size=(3, 1))], axis=1)
    data = fmt.Trajectories(observation=obs_layout, action=act_layout, observations=obs, actions=actions,
                            rewards=np.zeros(3), terminals=np.zeros(3, bool), episode_lengths=[3],
                            final_observations=obs[-1:], success=[False], timeouts=[True])
    chunk = ChunkDataset(data, horizon=3, gamma=0.9).batch(np.array([0]))["actions"][0]
    np.testing.assert_allclose(chunk[:, :7], targets - obs[0, :7], atol=1e-6)
    np.testing.assert_allclose(chunk[:, 7], actions[:, 7], atol=1e-6)
