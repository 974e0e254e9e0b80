"""object_perception's frame pairing and reports, fed adversarially: reordered, duplicated, lost,
malformed and mis-stamped frames. The node is real (rclpy, its parameters); messages go straight
into its callbacks so that their order is exactly the one under test, and its reports are read off
its own publisher."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rclpy
from lps_franka_hw.perception_node import PerceptionNode
from lps_sim import ros_io
from lps_sim import scene as sc
from lps_sim.tasks import make_task
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

W, H = 160, 120


@pytest.fixture(scope="module")
def frames():
    """Colour and depth of three sim episodes (the cube elsewhere in each), and the camera_info."""
    task = make_task("pick_place")
    out = []
    for seed in range(3):
        task.reset(seed=seed)
        rgb = task.render("front", H, W)
        depth = ros_io.depth_to_mm(task.render("front", H, W, depth=True))
        out.append((rgb, depth, task.object_position().copy()))
    task.close()
    info = ros_io.camera_info_msg(ros_io.pinhole_intrinsics(W, H, sc.FRONT_CAMERA_FOVY), "camera_color_optical_frame")
    return out, info


@pytest.fixture
def node():
    rclpy.init()
    n = PerceptionNode(parameter_overrides=[
        Parameter("camera_pose", value=sc.front_camera_optical_pose()),
        Parameter("center_offset_m", value=0.0225), Parameter("pair_window", value=3)])
    n.reports, n.poses = [], []
    n._frames_pub.publish = n.reports.append
    n._pub.publish = lambda m: n.poses.append((m.header.stamp.sec, m.header.stamp.nanosec,
                                                m.pose.position.x, m.pose.position.y, m.pose.position.z))
    yield n
    n.destroy_node()
    rclpy.shutdown()


def image(array: np.ndarray, encoding: str, t: float) -> Image:
    msg = Image()
    msg.header.stamp = ros_io.time_msg(t)
    return ros_io.fill_image(msg, array, encoding)


def feed(node, items) -> None:
    for kind, msg in items:
        node._on_image(kind, msg)


def test_pairs_by_stamp_in_any_order_and_reports_each(node, frames):
    data, info = frames
    node._on_info(info)
    c = [image(rgb, "rgb8", k * 0.1) for k, (rgb, _, _) in enumerate(data)]
    d = [image(depth, "16UC1", k * 0.1) for k, (_, depth, _) in enumerate(data)]
    # Interleaved across frames: depth 0, colour 1, colour 0, depth 2, depth 1, colour 2.
    feed(node, [("depth", d[0]), ("color", c[1]), ("color", c[0]), ("depth", d[2]), ("depth", d[1]),
                ("color", c[2])])
    assert [ros_io.time_s(r.header.stamp) for r in node.reports] == pytest.approx([0.0, 0.1, 0.2])
    assert all(r.seen for r in node.reports)
    for r, (_, _, truth) in zip(node.reports, data, strict=True):
        assert np.linalg.norm(np.array(r.position) - truth) < 0.015
    last = node.reports[-1]
    assert (last.frames_paired, last.frames_seen, last.frames_unpaired, last.frames_refused) == (3, 3, 0, 0)
    assert len(node.poses) == 3


def test_a_lost_half_is_counted_once_it_cannot_be_paired(node, frames):
    data, info = frames
    node._on_info(info)
    rgb, depth, _ = data[0]
    feed(node, [("color", image(rgb, "rgb8", 0.0))])  # its depth never comes
    for k in range(1, 5):
        feed(node, [("color", image(rgb, "rgb8", k * 0.1)), ("depth", image(depth, "16UC1", k * 0.1))])
    assert node.reports[-1].frames_paired == 4
    assert node.reports[-1].frames_unpaired == 1
    # A duplicate of a half still waiting replaces it and counts the first copy lost.
    feed(node, [("color", image(rgb, "rgb8", 1.0)), ("color", image(rgb, "rgb8", 1.0)),
                ("depth", image(depth, "16UC1", 1.0))])
    assert node.reports[-1].frames_unpaired == 2 and node.reports[-1].frames_paired == 5
    # A late half of a frame already paired starts a new wait and is lost in its turn.
    feed(node, [("depth", image(depth, "16UC1", 1.0))])
    for k in range(11, 16):
        feed(node, [("color", image(rgb, "rgb8", k * 0.1)), ("depth", image(depth, "16UC1", k * 0.1))])
    assert node.reports[-1].frames_unpaired == 3


def test_unseen_object_and_malformed_frames_are_reported_not_published(node, frames):
    data, info = frames
    rgb, depth, _ = data[0]
    # Before any camera_info: refused (no intrinsics), reported.
    feed(node, [("color", image(rgb, "rgb8", 0.0)), ("depth", image(depth, "16UC1", 0.0))])
    assert node.reports[-1].frames_refused == 1 and not node.reports[-1].seen
    bad = CameraInfo(k=[0.0] * 9)
    node._on_info(bad)  # refused, the node lives on without intrinsics
    assert node.camera is None
    node._on_info(info)
    grey = np.full_like(rgb, 128)
    feed(node, [("color", image(grey, "rgb8", 0.1)), ("depth", image(depth, "16UC1", 0.1))])
    r = node.reports[-1]
    assert not r.seen and all(math.isnan(v) for v in r.position) and r.frames_seen == 0
    # Depth the size of another camera, and a colour encoding the node does not read.
    feed(node, [("color", image(rgb, "rgb8", 0.2)), ("depth", image(depth[:-8], "16UC1", 0.2))])
    feed(node, [("color", image(depth, "16UC1", 0.3)), ("depth", image(depth, "16UC1", 0.3))])
    assert node.reports[-1].frames_refused == 3
    assert node.poses == []


def test_parameters_are_checked():
    rclpy.init()
    try:
        for name, value in (("pair_window", 0), ("image_queue_depth", 0), ("image_reliability", "sometimes")):
            with pytest.raises(ValueError, match=name):
                PerceptionNode(parameter_overrides=[Parameter(name, value=value)])
    finally:
        rclpy.shutdown()
