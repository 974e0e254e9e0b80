"""realsense_node over DDS, reading a stand-in pyrealsense2 (tests/hw_fakes) through the real code path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ros_util import Collector, NodeProcess, RosClient
from sensor_msgs.msg import CameraInfo, Image

FAKES = Path(__file__).parent / "hw_fakes"
W, H = 64, 48


def image_array(msg: Image) -> np.ndarray:
    if msg.encoding == "rgb8":
        return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
    return np.frombuffer(bytes(msg.data), np.uint16).reshape(msg.height, msg.width)


@pytest.fixture
def fake_rs_env(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{FAKES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    # A domain of this test's own: a sim bridge of a parallel run publishes the same camera topics.
    monkeypatch.setenv("ROS_DOMAIN_ID", str(120 + os.getpid() % 100))
    return monkeypatch


def start_camera(tmp_path: Path, params: dict | None = None) -> NodeProcess:
    return NodeProcess("lps_franka_hw.realsense_node", tmp_path / "camera.log",
                       params={"width": W, "height": H, "fps": 15, **(params or {})})


def test_publishes_like_realsense2_camera(tmp_path, fake_rs_env):
    # D405-like depth units (0.1 mm) must come out as millimetres.
    fake_rs_env.setenv("FAKE_RS_DEPTH_SCALE", "0.0001")
    fake_rs_env.setenv("FAKE_RS_PLANE_M", "0.6123")
    with RosClient("camera_test") as client:
        color = Collector(client.node, Image, "camera/camera/color/image_raw", 10)
        depth = Collector(client.node, Image, "camera/camera/aligned_depth_to_color/image_raw", 10)
        info = Collector(client.node, CameraInfo, "camera/camera/color/camera_info", 10)
        depth_info = Collector(client.node, CameraInfo, "camera/camera/aligned_depth_to_color/camera_info", 10)
        with start_camera(tmp_path) as node:
            try:
                color.wait_count(3, 30.0)
                depth.wait_count(3, 10.0)
                info.wait_count(1, 10.0)
                depth_info.wait_count(1, 10.0)
            except TimeoutError:
                raise AssertionError(node.log()) from None
    c, d, i = color.snapshot()[-1], depth.snapshot()[-1], info.snapshot()[-1]
    assert (c.encoding, c.width, c.height, c.step) == ("rgb8", W, H, 3 * W)
    assert (d.encoding, d.width, d.height, d.step) == ("16UC1", W, H, 2 * W)
    assert c.header.frame_id == d.header.frame_id == i.header.frame_id == "camera_color_optical_frame"
    assert c.header.stamp == d.header.stamp  # one aligned pair per frame
    rgb = image_array(c)
    np.testing.assert_array_equal(rgb[0, :, 0], np.arange(W) % 256)  # the fake's column code
    np.testing.assert_array_equal(rgb[:, 0, 1], np.arange(H) % 256)
    frame_numbers = [int(image_array(m)[0, 0, 2]) for m in color.snapshot()]
    assert frame_numbers == sorted(frame_numbers) and len(set(frame_numbers)) == len(frame_numbers)
    dep = image_array(d)
    assert np.all(dep[:, 2:] == 612)  # 6123 units of 0.1 mm -> 612 mm (rounded)
    assert np.all(dep[:, :2] == 0)  # the native zero column, aligned to colour: two columns of "no data"
    f = 0.5 * H / np.tan(np.deg2rad(42.0) / 2)
    assert i.k[0] == pytest.approx(f) and i.k[4] == pytest.approx(f)
    assert (i.k[2], i.k[5]) == pytest.approx(((W - 1) / 2, (H - 1) / 2))
    assert (i.width, i.height, i.distortion_model, list(i.d)) == (W, H, "plumb_bob", [0.0] * 5)
    assert list(depth_info.snapshot()[-1].k) == list(i.k)


def test_frozen_camera_stops_the_node(tmp_path, fake_rs_env):
    fake_rs_env.setenv("FAKE_RS_FAIL_AFTER", "2")
    node = start_camera(tmp_path, {"frame_timeout_s": 0.2})
    try:
        node.proc.wait(30)
    finally:
        node.stop()
    log = node.log()
    assert node.proc.returncode == 1, log
    assert "camera delivered no frame 3 times in a row" in log


def test_missing_pyrealsense2_is_named_with_what_to_install():
    try:
        import pyrealsense2  # noqa: F401
        pytest.skip("pyrealsense2 is installed here: the missing-package path cannot be exercised")
    except ImportError:
        pass
    proc = subprocess.run([sys.executable, "-m", "lps_franka_hw.realsense_node"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "needs `pyrealsense2`" in proc.stderr and "pip install pyrealsense2" in proc.stderr
