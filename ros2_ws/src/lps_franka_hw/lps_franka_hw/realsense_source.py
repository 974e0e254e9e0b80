"""Frames from an Intel RealSense: colour + depth aligned to colour (no ROS).

`FrameSource` is the interface the camera node reads from; `RealSenseSource` implements it with
pyrealsense2 (imported only when started, so everything else works where it is not installed).
Tests substitute a module that speaks pyrealsense2's API, so the same code path runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class MissingDependency(RuntimeError):
    """pyrealsense2 (librealsense's Python bindings) is not importable."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the colour stream; `coeffs` in OpenCV's plumb_bob order (k1 k2 p1 p2 k3)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    model: str = "plumb_bob"

    @property
    def k(self) -> list[float]:
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]


@dataclass
class Frame:
    color: np.ndarray  # H x W x 3 uint8, RGB
    depth_mm: np.ndarray  # H x W uint16, millimetres, 0 = no data; aligned to colour
    number: int  # frame counter of the device


class FrameSource(Protocol):
    def start(self) -> Intrinsics: ...
    def read(self, timeout_s: float) -> Frame | None: ...
    def stop(self) -> None: ...


def import_pyrealsense2():  # noqa: ANN201 - returns the module
    try:
        return importlib.import_module("pyrealsense2")
    except ImportError as exc:
        raise MissingDependency(
            f"realsense_node needs `pyrealsense2` (librealsense's Python bindings), which is not "
            f"importable ({exc}). Install it with `pip install pyrealsense2` (x86_64 / aarch64 wheels by "
            "Intel) or build librealsense with -DBUILD_PYTHON_BINDINGS=ON; or use the ROS driver "
            "instead: `ros2 launch realsense2_camera rs_launch.py align_depth.enable:=true`, which "
            "publishes the same topics.") from exc


class RealSenseSource:
    """pyrealsense2 pipeline: rgb8 colour + z16 depth at one resolution and rate, depth aligned to colour.

    Args:
        width, height, fps: stream settings of both streams (the D435 supports 640x480 @ 30).
        serial: device serial number; empty takes the first device found.
    """

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30, serial: str = "") -> None:
        for name, value, lo, hi in (("width", width, 16, 4096), ("height", height, 16, 4096), ("fps", fps, 1, 300)):
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"`{name}` must be an integer in [{lo}, {hi}], got {value!r}")
        self.width, self.height, self.fps, self.serial = width, height, fps, serial
        self._rs = None
        self._pipeline = None
        self._align = None
        self._depth_to_mm = 1.0
        self.intrinsics: Intrinsics | None = None

    def start(self) -> Intrinsics:
        rs = import_pyrealsense2()
        self._rs = rs
        config = rs.config()
        if self.serial:
            config.enable_device(self.serial)
        config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
        config.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        pipeline = rs.pipeline()
        profile = pipeline.start(config)
        # Depth units differ per model (D400: 1 mm, D405: 0.1 mm): convert to the ROS 16UC1 convention.
        depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
        if not np.isfinite(depth_scale) or depth_scale <= 0.0:
            pipeline.stop()
            raise RuntimeError(f"RealSense reports depth scale {depth_scale!r} m/unit: expected > 0")
        self._depth_to_mm = depth_scale * 1000.0
        self._pipeline = pipeline
        self._align = rs.align(rs.stream.color)
        color_profile = profile.get_stream(rs.stream.color).as_video_stream_profile()
        self.intrinsics = self._intrinsics(color_profile.get_intrinsics())
        return self.intrinsics

    @staticmethod
    def _intrinsics(intr) -> Intrinsics:  # noqa: ANN001 - pyrealsense2.intrinsics
        # The D400 colour stream reports (inverse) Brown-Conrady with coefficients that are ~0;
        # they are passed on as plumb_bob, as realsense2_camera does.
        return Intrinsics(int(intr.width), int(intr.height), float(intr.fx), float(intr.fy),
                          float(intr.ppx), float(intr.ppy), tuple(float(c) for c in intr.coeffs))

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        """Next aligned frame pair, or None if the device gave an incomplete set."""
        if self._pipeline is None:
            raise RuntimeError("RealSenseSource.read() before start()")
        frames = self._pipeline.wait_for_frames(int(timeout_s * 1000))
        aligned = self._align.process(frames)
        color, depth = aligned.get_color_frame(), aligned.get_depth_frame()
        if not color or not depth:
            return None
        rgb = np.asanyarray(color.get_data())
        raw = np.asanyarray(depth.get_data())
        if rgb.shape != (self.intrinsics.height, self.intrinsics.width, 3) or raw.shape != rgb.shape[:2]:
            raise RuntimeError(f"RealSense frame shapes colour {rgb.shape}, depth {raw.shape}: expected "
                               f"({self.intrinsics.height}, {self.intrinsics.width}, 3) and aligned depth "
                               "of the same height and width")
        if self._depth_to_mm == 1.0:
            depth_mm = np.array(raw, dtype=np.uint16)
        else:
            depth_mm = np.minimum(np.rint(raw.astype(np.float64) * self._depth_to_mm), 65535).astype(np.uint16)
        return Frame(np.ascontiguousarray(rgb, dtype=np.uint8), depth_mm, int(color.get_frame_number()))

    def stop(self) -> None:
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None
