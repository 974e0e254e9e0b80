"""Converters into the trajectory format, on inputs the tests write themselves: a LeRobotDataset v3
folder, OGBench .npz files (and a few episodes of the package's own oracle), and MCAP recordings of
the stack's topics. Each round-trips through a saved dataset; malformed inputs are refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lps_steering.core.kinematics import tcp_position
from lps_train.offline import format as fmt
from lps_train.offline import lerobot, ogbench
from lps_train.offline.mcap import convert_recordings
from offline_fixtures import write_lerobot_v3, write_ogbench_npz, write_stack_mcap


# ---------------------------------------------------------------------------------------------- LeRobot v3
def test_a_lerobot_v3_folder_converts_frame_for_frame(tmp_path):
    src = write_lerobot_v3(tmp_path / "lr", lengths=(4, 3), files=2)
    data = fmt.load(fmt.save(lerobot.convert(tmp_path / "lr"), tmp_path / "ds"))
    # The last frame of each episode becomes its final observation; its action has no successor.
    np.testing.assert_array_equal(data.episode_lengths, [3, 2])
    keep = np.r_[0:3, 4:6]
    np.testing.assert_array_equal(data.observations, src["obs"][keep])
    np.testing.assert_array_equal(data.actions, src["act"][keep])
    np.testing.assert_array_equal(data.rewards, src["reward"][keep])
    np.testing.assert_array_equal(data.final_observations, src["obs"][[3, 6]])
    np.testing.assert_array_equal(data.success, [True, False])
    np.testing.assert_array_equal(data.timeouts, [False, False])  # next.done is set: both ended by the task
    assert data.tasks == ["stack the cube"] * 2 and data.rate_hz == 10.0 and data.robot == "so100"
    assert data.observation == (fmt.Entry("observation.state", 3),)
    assert data.images["observation.images.top"][3] == "videos/observation.images.top/chunk-000/file-000.mp4#t=0.400000"


def test_malformed_lerobot_folders_are_refused(tmp_path):
    write_lerobot_v3(tmp_path / "old", codebase_version="v2.1")
    with pytest.raises(fmt.DatasetError, match="`codebase_version` must be v3.x"):
        lerobot.convert(tmp_path / "old")
    write_lerobot_v3(tmp_path / "lr")
    with pytest.raises(fmt.DatasetError, match="feature 'observation.velocity' is not in meta/info.json"):
        lerobot.convert(tmp_path / "lr", observation_keys=("observation.velocity",))
    with pytest.raises(fmt.DatasetError, match="is a video, not a vector"):
        lerobot.convert(tmp_path / "lr", observation_keys=("observation.images.top",))
    info = json.loads((tmp_path / "lr" / "meta" / "info.json").read_text())
    info["features"]["action"]["shape"] = [5]
    (tmp_path / "lr" / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(fmt.DatasetError, match="'action' has 2 values per frame, info.json says 5"):
        lerobot.convert(tmp_path / "lr")
    (tmp_path / "lr" / "data" / "chunk-000" / "file-001.parquet").unlink()
    info["features"]["action"]["shape"] = [2]
    (tmp_path / "lr" / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(fmt.DatasetError, match=r"episode 1: frames 4..6 are not all in the data files"):
        lerobot.convert(tmp_path / "lr")
    with pytest.raises(fmt.DatasetError, match="no meta/info.json"):
        lerobot.convert(tmp_path)


# ---------------------------------------------------------------------------------------------- OGBench
def test_an_ogbench_npz_converts_with_its_single_task_rewards(tmp_path):
    goal = np.array([[0.45, 0.1, 0.02]])
    src = write_ogbench_npz(tmp_path / "play.npz", lengths=(5, 3), goal=goal[0])
    data = fmt.load(fmt.save(ogbench.convert_npz(tmp_path / "play.npz", "cube-single-singletask-task2-v0",
                                                 goals=goal), tmp_path / "ds"))
    # Rows 0-5 are episode 0 (5 transitions + final), rows 6-9 episode 1 (3 + final).
    steps = np.r_[0:5, 6:9]
    np.testing.assert_array_equal(data.episode_lengths, [5, 3])
    np.testing.assert_array_equal(data.observations, src["obs"][steps])
    np.testing.assert_array_equal(data.actions, src["act"][steps])
    np.testing.assert_array_equal(data.final_observations, src["obs"][[5, 9]])
    # OGBench's relabelling: reward (cubes at goal - cubes), absorbing where all cubes are at the goal.
    at_goal = np.isin(steps, src["at_goal"])
    np.testing.assert_array_equal(data.rewards, at_goal.astype(np.float32) - 1)
    np.testing.assert_array_equal(data.terminals, at_goal)
    np.testing.assert_array_equal(data.success, [True, True])
    np.testing.assert_array_equal(data.extras["qpos"], src["qpos"][steps])
    assert [e.name for e in data.observation][:2] == ["joint_pos", "joint_vel"] and data.rate_hz == 20.0


def test_malformed_ogbench_files_are_refused(tmp_path):
    src = write_ogbench_npz(tmp_path / "play.npz")
    np.savez(tmp_path / "cut.npz", observations=src["obs"][:-1], actions=src["act"][:-1],
             terminals=src["terminals"][:-1], qpos=src["qpos"][:-1])
    with pytest.raises(fmt.DatasetError, match="the last row must end an episode"):
        ogbench.convert_npz(tmp_path / "cut.npz")
    np.savez(tmp_path / "nokeys.npz", observations=src["obs"])
    with pytest.raises(fmt.DatasetError, match=r"arrays \['actions', 'terminals'\] are missing"):
        ogbench.convert_npz(tmp_path / "nokeys.npz")
    np.savez(tmp_path / "noqpos.npz", observations=src["obs"], actions=src["act"], terminals=src["terminals"])
    with pytest.raises(fmt.DatasetError, match="needs the simulator state `qpos`"):
        ogbench.convert_npz(tmp_path / "noqpos.npz", "cube-single-singletask-task1-v0", goals=np.zeros((1, 3)))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(fmt.DatasetError, match="not a readable .npz"):
        ogbench.convert_npz(tmp_path / "junk.npz")


def test_the_packages_oracle_regenerates_play_data_that_converts(tmp_path):
    r = ogbench.generate_play(tmp_path / "play.npz", episodes=1, steps=40, workers=1, seed=3)
    assert r["rows"] == 40 and r["env_steps_per_s_per_process"] > 0
    data = ogbench.convert_npz(tmp_path / "play.npz", "cube-single-singletask-task1-v0")
    assert data.num_steps == 39 and data.observations.shape == (39, 28) and data.actions.shape == (39, 5)
    assert np.abs(data.actions).max() <= 1.0 and np.ptp(data.actions, axis=0).max() > 0.05  # the oracle moves
    # The env's own goal: the relabelling reads it off the single-task environment.
    goals = ogbench.goal_positions("cube-single-singletask-task1-v0")
    assert goals.shape == (1, 3) and set(np.unique(data.rewards)) <= {-1.0, 0.0}


# ---------------------------------------------------------------------------------------------- MCAP
def test_a_stack_recording_converts_at_the_policy_rate(tmp_path):
    rec = write_stack_mcap(tmp_path / "ep0.mcap", seconds=1.0, done_at=0.65, success=True)
    write_stack_mcap(tmp_path / "ep1.mcap", seconds=0.5, done_at=9.0, seed=1)  # runs out: time-out
    data = fmt.load(fmt.save(convert_recordings([str(tmp_path / "ep0.mcap"), str(tmp_path / "ep1.mcap")]),
                             tmp_path / "ds"))
    # 10 Hz from the first complete observation (t = 0): task_status is done after the 7th step.
    np.testing.assert_array_equal(data.episode_lengths, [7, 4])
    np.testing.assert_array_equal(data.success, [True, False])
    np.testing.assert_array_equal(data.terminals[:7], [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(data.timeouts, [False, True])
    np.testing.assert_array_equal(data.rewards[:7], [0, 0, 0, 0, 0, 0, 1])
    k = 3  # step 3: observation at 0.3 s, the command in force at its end is the one sent at 0.39 s
    i_obs, i_cmd = 30, 39
    arm_q = rec["q"][i_obs]
    assert [e.source for e in data.observation] == ["arm_joint_positions", "gripper_width", "tcp_position",
                                                   "object_position", "target_position"]
    np.testing.assert_allclose(data.observations[k], np.concatenate(
        [arm_q, [rec["grip"][i_obs]], tcp_position(arm_q), [0.5, 0.0, 0.02], [0.4, 0.2, 0.02]]), atol=1e-6)
    np.testing.assert_allclose(data.actions[k], np.concatenate([rec["cmd"][i_cmd] - arm_q, [rec["grip"][i_cmd]]]),
                               atol=1e-6)
    assert data.rate_hz == 10.0 and data.robot == "fr3"


def test_malformed_recordings_are_refused_with_the_nodes_reason(tmp_path):
    names = [f"fr3_joint{i}" for i in range(1, 7)] + ["fr3_finger_joint1", "fr3_finger_joint2", "extra"]
    write_stack_mcap(tmp_path / "bad.mcap", joint_names=names)
    with pytest.raises(fmt.DatasetError, match=r"joint_states .*arm joint\(s\) fr3_joint7 missing"):
        convert_recordings([str(tmp_path / "bad.mcap")])
    write_stack_mcap(tmp_path / "ns.mcap", namespace="left")
    with pytest.raises(fmt.DatasetError, match="topic 'joint_states' has no messages"):
        convert_recordings([str(tmp_path / "ns.mcap")])
    assert convert_recordings([str(tmp_path / "ns.mcap")], namespace="left").num_episodes == 1
    (tmp_path / "junk.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\0" * 20)
    with pytest.raises(fmt.DatasetError, match="not a readable MCAP recording"):
        convert_recordings([str(tmp_path / "junk.mcap")])


# ---------------------------------------------------------------------------------------------- pick_place .npz
def test_pick_place_datasets_convert_and_cut_back_into_their_own_chunks(tmp_path):
    from lps_train.offline.chunks import ChunkDataset
    from lps_train.offline.pick_place import convert_datasets
    from lps_train.pick_place.dataset import load_dataset, save_dataset
    from lps_train.pick_place.demos import collect
    from lps_train.pick_place.layout import CHUNK_LENGTH, make_pick_place

    save_dataset(tmp_path / "done.npz", collect(1, "careful", seed=2, progress=False))
    # Cut by the time limit before the expert can finish: a time-out that bootstraps.
    save_dataset(tmp_path / "cut.npz", collect(1, "careful", seed=3, progress=False,
                                               task=make_pick_place(episode_limit_s=2.0)))
    paths = [str(tmp_path / "done.npz"), str(tmp_path / "cut.npz")]
    data = fmt.load(fmt.save(convert_datasets(paths), tmp_path / "ds"))
    rows = [load_dataset(p) for p in paths]
    np.testing.assert_array_equal(data.episode_lengths, [len(r["observations"]) for r in rows])
    np.testing.assert_array_equal(data.success, [True, False])
    np.testing.assert_array_equal(data.timeouts, [False, True])
    n0 = data.episode_lengths[0]
    assert data.terminals.sum() == 1 and data.terminals[n0 - 1] and data.rewards.sum() == 1.0 and data.rewards[n0 - 1] == 1
    np.testing.assert_allclose(data.final_observations[0], rows[0]["next_observations"][-1])
    assert [e.source for e in data.observation][0] == "arm_joint_positions" and data.rate_hz == 10.0
    assert [f["file"] for f in data.source["files"]] == ["done.npz", "cut.npz"]
    # The chunks cut from the steps are the recorded rows' chunks, command for command.
    chunks = ChunkDataset(data, CHUNK_LENGTH, 0.99)
    starts = chunks.starts[chunks.starts < n0]
    np.testing.assert_allclose(chunks.chunks(starts), rows[0]["actions"][starts], atol=1e-5)

    # A row whose later commands are not the next rows' own cannot be cut into steps: an arm command
    # (re-referenced) or a gripper width (as it is).
    for name, (row, command, entry, delta) in {"arm": (3, 2, 1, 0.01), "grip": (5, 1, 7, 0.005)}.items():
        bad = dict(rows[0], layout=json.dumps(rows[0]["layout"]))
        bad["actions"] = bad["actions"].copy()
        bad["actions"][row, command, entry] += delta
        save_dataset(tmp_path / f"bad_{name}.npz", bad)
        with pytest.raises(fmt.DatasetError, match=rf"episode 0: row chunks are not the rows' own commands \(command {command}"):
            convert_datasets([str(tmp_path / f"bad_{name}.npz")])
    # Rollouts hold the policy's chunk per env step of several policy steps: not step-level commands.
    save_dataset(tmp_path / "rollouts.npz", dict(rows[0], layout=json.dumps(rows[0]["layout"] | {"quality": "rollouts"})))
    with pytest.raises(fmt.DatasetError, match="a rollout file"):
        convert_datasets([str(tmp_path / "rollouts.npz")])
    # Files of different observation layouts do not mix.
    save_dataset(tmp_path / "vel.npz", collect(1, "careful", seed=2, progress=False, observation="state_velocity"))
    with pytest.raises(fmt.DatasetError, match="layout or policy rate differs"):
        convert_datasets([paths[0], str(tmp_path / "vel.npz")])
    with pytest.raises(fmt.DatasetError, match="not a pick_place dataset"):
        convert_datasets([str(tmp_path / "missing.npz")])
