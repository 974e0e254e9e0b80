"""compare_runs on MCAP files written the way `--record-mcap` writes them (ros2msg schemas, CDR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lps_msgs.msg import TaskStatus
from lps_steering.evaluation.compare_runs import main
from lps_steering.evaluation.recording import message_definition
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

TYPE = "trajectory_msgs/msg/JointTrajectory"


def _write(path: Path, rows: list[list[float]], after_end: list[list[float]] = ()) -> None:
    """The episode's commands, its `done` status (with the episode's steps), then commands after
    it (a deactivation's brake)."""
    from mcap_ros2.writer import Writer

    with open(path, "wb") as f:
        writer = Writer(f)
        schema = writer.register_msgdef(TYPE, message_definition(TYPE))
        status = writer.register_msgdef("lps_msgs/msg/TaskStatus", message_definition("lps_msgs/msg/TaskStatus"))
        for k, q in enumerate([*rows, None, *after_end]):
            if q is None:
                writer.write_message("/task_status", status, TaskStatus(done=True, step=len(rows)), log_time=k + 1)
                continue
            msg = JointTrajectory(joint_names=[f"fr3_joint{i}" for i in range(1, 8)],
                                  points=[JointTrajectoryPoint(positions=[float(v) for v in q])])
            writer.write_message("/fr3_arm_controller/joint_trajectory", schema, msg, log_time=k + 1)
            writer.write_message("/other", schema, msg, log_time=k + 1)  # not a command topic
        writer.finish()


def test_identical_runs_and_the_first_difference(tmp_path: Path, capsys) -> None:
    rows = np.random.default_rng(0).normal(size=(50, 7)).tolist()
    _write(tmp_path / "a.mcap", rows)
    _write(tmp_path / "b.mcap", rows, after_end=rows[:2])  # the same, and two more after the episode's end
    assert main([str(tmp_path / "a.mcap"), str(tmp_path / "b.mcap")]) == 0
    assert "commands: 50 and 50" in capsys.readouterr().out
    changed = [list(r) for r in rows]
    changed[17][3] += 1e-12  # the size of a float rounding, not of a policy's choice
    _write(tmp_path / "c.mcap", changed)
    assert main([str(tmp_path / "a.mcap"), str(tmp_path / "c.mcap")]) == 1
    out = capsys.readouterr().out
    assert "first difference at command 17" in out and "1e-12 rad" in out
    _write(tmp_path / "d.mcap", rows[:-1])  # an episode one command shorter
    assert main([str(tmp_path / "a.mcap"), str(tmp_path / "d.mcap")]) == 1
    assert "the first 49 are identical, but one episode has more commands" in capsys.readouterr().out
