"""Robot facts have one home: joint names, limits and the no-head sentinel come from the core."""

from __future__ import annotations

import numpy as np
import pytest
from lps_steering.core import ARM_DOF, ROBOTS, RobotLimits, arm_joint_names, finger_joint_names
from lps_steering.core.safety import RobotLimits as SafetyRobotLimits


def test_joint_names_follow_franka_ros2_per_robot():
    assert ROBOTS == ("fr3", "panda")
    assert arm_joint_names("fr3") == [f"fr3_joint{i}" for i in range(1, 8)]
    assert arm_joint_names("panda")[0] == "panda_joint1" and len(arm_joint_names("panda")) == ARM_DOF
    assert finger_joint_names("fr3") == ["fr3_finger_joint1", "fr3_finger_joint2"]
    for bad in ("ur5", "FR3", ""):
        with pytest.raises(ValueError, match="`robot` must be one of \\['fr3', 'panda'\\]"):
            arm_joint_names(bad)
        with pytest.raises(ValueError, match="`robot` must be one of"):
            finger_joint_names(bad)


def test_limits_are_one_table_seen_from_the_safety_filter_too():
    assert SafetyRobotLimits is RobotLimits
    for robot in ROBOTS:
        lim = RobotLimits.for_robot(robot)
        for name in ("q_min", "q_max", "dq_max", "ddq_max", "dddq_max"):
            assert getattr(lim, name).shape == (ARM_DOF,)
        assert np.all(lim.q_min < lim.q_max) and np.all(lim.dq_max > 0)
    assert RobotLimits.ROBOTS == frozenset(ROBOTS)
