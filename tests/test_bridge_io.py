"""lps_sim.ros_io: the sim bridge's conversions and command semantics, without a ROS graph."""

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from lps_sim import ros_io
from sensor_msgs.msg import Image
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

ARM = tuple(f"fr3_joint{i}" for i in range(1, 8))


def _traj(names, positions, tfs=0.1, stamp=0.0) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    if positions is not None:
        ns = int(round(tfs * 1e9))
        msg.points = [JointTrajectoryPoint(positions=list(positions),
                                           time_from_start=Duration(sec=ns // 10**9, nanosec=ns % 10**9))]
    msg.header.stamp = ros_io.time_msg(stamp)
    return msg


def test_intrinsics_reproduce_the_d435_colour_fov_at_16_9():
    intr = ros_io.pinhole_intrinsics(1920, 1080)
    # Only the vertical angle goes in; the horizontal one must come out as the D435's 69 degrees.
    assert intr.hfov_deg == pytest.approx(ros_io.D435_COLOR_HFOV_DEG, abs=1.0)
    assert intr.fx == intr.fy
    small = ros_io.pinhole_intrinsics(320, 240)
    assert small.fy == pytest.approx(intr.fy * 240 / 1080)
    assert (small.cx, small.cy) == (159.5, 119.5)
    with pytest.raises(ValueError, match="vfov_deg"):
        ros_io.pinhole_intrinsics(64, 48, 0.0)


def test_camera_info_message_is_plumb_bob_with_the_intrinsics():
    intr = ros_io.pinhole_intrinsics(64, 48, 50.0)
    info = ros_io.camera_info_msg(intr, "camera_color_optical_frame")
    assert (info.width, info.height, info.distortion_model) == (64, 48, "plumb_bob")
    assert list(info.d) == [0.0] * 5
    k = np.array(info.k).reshape(3, 3)
    p = np.array(info.p).reshape(3, 4)
    np.testing.assert_allclose(p[:, :3], k)
    assert k[0, 0] == pytest.approx(24.0 / math.tan(math.radians(25.0)))


def test_depth_in_millimetres_with_zero_for_no_data():
    d = np.array([[0.5004, 1.2346, np.inf], [np.nan, 11.0, 0.0]], dtype=np.float32)
    mm = ros_io.depth_to_mm(d)
    assert mm.dtype == np.uint16
    np.testing.assert_array_equal(mm, [[500, 1235, 0], [0, 0, 0]])


def test_image_round_trip_rgb_and_depth():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    depth = rng.integers(0, 60000, (5, 7), dtype=np.uint16)
    m1 = ros_io.fill_image(Image(), rgb, "rgb8")
    m2 = ros_io.fill_image(Image(), depth, "16UC1")
    assert (m1.step, m2.step) == (21, 14)
    np.testing.assert_array_equal(ros_io.image_to_array(m1), rgb)
    np.testing.assert_array_equal(ros_io.image_to_array(m2), depth)
    m2.encoding = "32FC1"
    with pytest.raises(ValueError, match="encoding"):
        ros_io.image_to_array(m2)


def test_trajectory_is_reordered_to_the_arm_joint_order():
    names = list(reversed(ARM))
    cmd = ros_io.parse_trajectory(_traj(names, [7, 6, 5, 4, 3, 2, 1], tfs=0.25), ARM)
    np.testing.assert_array_equal(cmd.positions, [1, 2, 3, 4, 5, 6, 7])
    assert cmd.duration_s == pytest.approx(0.25)
    assert cmd.start_s is None
    assert ros_io.parse_trajectory(_traj(ARM, range(7), stamp=3.5), ARM).start_s == pytest.approx(3.5)


@pytest.mark.parametrize("names,positions,tfs,field", [
    ([f"panda_joint{i}" for i in range(1, 8)], [0.0] * 7, 0.1, "joint_names"),
    (ARM[:6], [0.0] * 6, 0.1, "joint_names"),
    (ARM[:6] + (ARM[0],), [0.0] * 7, 0.1, "joint_names"),
    (ARM, None, 0.1, "points"),
    (ARM, [0.0] * 6, 0.1, "positions"),
    (ARM, [0.0] * 6 + [math.nan], 0.1, "finite"),
    (ARM, [0.0] * 7, -0.1, "time_from_start"),
])
def test_bad_trajectories_are_refused_naming_the_field(names, positions, tfs, field):
    msg = _traj(names, positions)
    if tfs < 0:
        msg.points[0].time_from_start = Duration(sec=-1, nanosec=0)
    with pytest.raises(ros_io.CommandError, match=field):
        ros_io.parse_trajectory(msg, ARM)


def test_gripper_width_refused_outside_the_range():
    assert ros_io.check_gripper_width(0.03, 0.08) == 0.03
    for bad in (-0.001, 0.081, math.nan, math.inf):
        with pytest.raises(ros_io.CommandError, match=r"width in \[0, 0.08\]"):
            ros_io.check_gripper_width(bad, 0.08)


def _cmd(q, duration, start=None):
    return ros_io.TrajectoryCommand(np.asarray(q, float), duration, start)


def test_follower_interpolates_linearly_to_the_goal():
    f = ros_io.TrajectoryFollower(np.zeros(7))
    f.command(1.0, _cmd(np.ones(7), 0.5))
    np.testing.assert_allclose(f.sample(1.0), 0.0)
    np.testing.assert_allclose(f.sample(1.25), 0.5)
    np.testing.assert_allclose(f.sample(1.5), 1.0)
    np.testing.assert_allclose(f.sample(9.0), 1.0)


def test_follower_new_command_starts_where_the_target_is():
    f = ros_io.TrajectoryFollower(np.zeros(7))
    f.command(0.0, _cmd(np.ones(7), 1.0))
    f.command(0.5, _cmd(-np.ones(7), 0.5))  # replaces the first halfway: no jump at t = 0.5
    np.testing.assert_allclose(f.sample(0.5), 0.5)
    np.testing.assert_allclose(f.sample(0.75), -0.25)
    np.testing.assert_allclose(f.sample(1.0), -1.0)


def test_follower_zero_duration_and_stamped_start():
    f = ros_io.TrajectoryFollower(np.zeros(7))
    f.command(0.0, _cmd(np.full(7, 2.0), 0.0))
    np.testing.assert_allclose(f.sample(0.0), 2.0)
    # A stamp in the future: hold until it, then move.
    f.command(1.0, _cmd(np.zeros(7), 1.0, start=2.0))
    np.testing.assert_allclose(f.sample(1.5), 2.0)
    np.testing.assert_allclose(f.sample(2.5), 1.0)
    # A stamp so old that the goal time has passed: the goal at once.
    f.command(5.0, _cmd(np.full(7, 3.0), 1.0, start=1.0))
    np.testing.assert_allclose(f.sample(5.0), 3.0)


def test_follower_hold_freezes_the_target_mid_motion():
    f = ros_io.TrajectoryFollower(np.zeros(7))
    f.command(0.0, _cmd(np.ones(7), 1.0))
    f.hold(0.3)
    np.testing.assert_allclose(f.sample(0.3), 0.3)
    np.testing.assert_allclose(f.sample(5.0), 0.3)
    np.testing.assert_allclose(f.goal, 0.3)
