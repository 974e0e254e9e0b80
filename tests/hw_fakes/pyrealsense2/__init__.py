"""A stand-in for pyrealsense2 (librealsense's Python bindings) with the same API surface.

Only what `lps_franka_hw.realsense_source` touches: config / pipeline / align / frames /
profiles / intrinsics. Put the parent folder on PYTHONPATH (before site-packages) to use it.
The device is synthetic and deterministic, so a test can check what arrives over DDS:
- colour (rgb8): R = column mod 256, G = row mod 256, B = frame number mod 256;
- depth (z16, native at half the colour resolution, like a device whose depth and colour
  sensors differ): a plane at FAKE_RS_PLANE_M metres, in units of FAKE_RS_DEPTH_SCALE m,
  with zero ("no data") in the left-most native column; `align.process` resamples it to colour.
FAKE_RS_FAIL_AFTER=N makes wait_for_frames raise RuntimeError after N frames (a frozen camera).
"""

from __future__ import annotations

import enum
import os
import time

import numpy as np


class stream(enum.IntEnum):  # noqa: N801 - pyrealsense2's names
    any = 0
    depth = 1
    color = 2


class format(enum.IntEnum):  # noqa: N801, A001
    any = 0
    z16 = 1
    rgb8 = 5


class distortion(enum.IntEnum):  # noqa: N801
    none = 0
    modified_brown_conrady = 1
    inverse_brown_conrady = 2
    brown_conrady = 4


class intrinsics:  # noqa: N801
    def __init__(self, width: int, height: int, fx: float, fy: float, ppx: float, ppy: float) -> None:
        self.width, self.height, self.fx, self.fy, self.ppx, self.ppy = width, height, fx, fy, ppx, ppy
        self.model = distortion.inverse_brown_conrady
        self.coeffs = [0.0, 0.0, 0.0, 0.0, 0.0]


class video_stream_profile:  # noqa: N801
    def __init__(self, kind: stream, intr: intrinsics, fps: int) -> None:
        self._kind, self._intr, self._fps = kind, intr, fps

    def as_video_stream_profile(self) -> video_stream_profile:
        return self

    def get_intrinsics(self) -> intrinsics:
        return self._intr

    def stream_type(self) -> stream:
        return self._kind

    def fps(self) -> int:
        return self._fps


class depth_sensor:  # noqa: N801
    def get_depth_scale(self) -> float:
        return float(os.environ.get("FAKE_RS_DEPTH_SCALE", "0.001"))


class device:  # noqa: N801
    def first_depth_sensor(self) -> depth_sensor:
        return depth_sensor()


class pipeline_profile:  # noqa: N801
    def __init__(self, profiles: dict[stream, video_stream_profile]) -> None:
        self._profiles = profiles

    def get_device(self) -> device:
        return device()

    def get_stream(self, kind: stream) -> video_stream_profile:
        return self._profiles[kind]


class frame:  # noqa: N801
    def __init__(self, data: np.ndarray, number: int, profile: video_stream_profile) -> None:
        self._data, self._number, self._profile = data, number, profile

    def __bool__(self) -> bool:
        return self._data is not None

    def get_data(self) -> np.ndarray:
        return self._data

    def get_frame_number(self) -> int:
        return self._number

    def get_timestamp(self) -> float:
        return time.time() * 1e3

    def get_profile(self) -> video_stream_profile:
        return self._profile


class composite_frame:  # noqa: N801
    def __init__(self, color: frame, depth: frame) -> None:
        self._color, self._depth = color, depth

    def get_color_frame(self) -> frame:
        return self._color

    def get_depth_frame(self) -> frame:
        return self._depth


class config:  # noqa: N801
    def __init__(self) -> None:
        self.streams: dict[stream, tuple[int, int, format, int]] = {}
        self.serial = ""

    def enable_stream(self, kind: stream, width: int, height: int, fmt: format, fps: int) -> None:
        self.streams[kind] = (width, height, fmt, fps)

    def enable_device(self, serial: str) -> None:
        self.serial = serial


class pipeline:  # noqa: N801
    def __init__(self) -> None:
        self._cfg: config | None = None
        self._n = 0
        self._period = 1.0 / 30

    def start(self, cfg: config) -> pipeline_profile:
        if stream.color not in cfg.streams or stream.depth not in cfg.streams:
            raise RuntimeError("fake pyrealsense2: enable both colour and depth streams")
        w, h, fmt, fps = cfg.streams[stream.color]
        if fmt != format.rgb8 or cfg.streams[stream.depth][2] != format.z16:
            raise RuntimeError("fake pyrealsense2: colour must be rgb8 and depth z16")
        self._cfg, self._period = cfg, 1.0 / fps
        f = 0.5 * h / np.tan(np.deg2rad(42.0) / 2)  # D435 colour: 42 degrees vertical
        self._color_profile = video_stream_profile(stream.color, intrinsics(w, h, f, f, (w - 1) / 2, (h - 1) / 2), fps)
        dw, dh = max(w // 2, 1), max(h // 2, 1)
        self._depth_profile = video_stream_profile(stream.depth, intrinsics(dw, dh, f / 2, f / 2, (dw - 1) / 2, (dh - 1) / 2), fps)
        self._next = time.monotonic()
        return pipeline_profile({stream.color: self._color_profile, stream.depth: self._depth_profile})

    def wait_for_frames(self, timeout_ms: int = 5000) -> composite_frame:
        if self._cfg is None:
            raise RuntimeError("wait_for_frames cannot be called before start()")
        fail_after = int(os.environ.get("FAKE_RS_FAIL_AFTER", "-1"))
        if 0 <= fail_after <= self._n:
            time.sleep(min(timeout_ms, 200) / 1e3)
            raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + self._period, time.monotonic())
        self._n += 1
        w, h = self._color_profile._intr.width, self._color_profile._intr.height
        rows, cols = np.mgrid[0:h, 0:w]
        rgb = np.stack([cols % 256, rows % 256, np.full((h, w), self._n % 256)], axis=-1).astype(np.uint8)
        dw, dh = self._depth_profile._intr.width, self._depth_profile._intr.height
        scale = depth_sensor().get_depth_scale()
        plane = float(os.environ.get("FAKE_RS_PLANE_M", "0.75"))
        raw = np.full((dh, dw), int(round(plane / scale)), dtype=np.uint16)
        raw[:, 0] = 0
        return composite_frame(frame(rgb, self._n, self._color_profile), frame(raw, self._n, self._depth_profile))

    def stop(self) -> None:
        self._cfg = None


class align:  # noqa: N801
    def __init__(self, to: stream) -> None:
        if to != stream.color:
            raise RuntimeError("fake pyrealsense2: only alignment to colour is emulated")

    def process(self, frames: composite_frame) -> composite_frame:
        color, depth = frames.get_color_frame(), frames.get_depth_frame()
        h, w = color.get_data().shape[:2]
        raw = depth.get_data()
        rows = np.arange(h) * raw.shape[0] // h
        cols = np.arange(w) * raw.shape[1] // w
        aligned = raw[rows[:, None], cols[None, :]]
        return composite_frame(color, frame(aligned, depth.get_frame_number(), color.get_profile()))
