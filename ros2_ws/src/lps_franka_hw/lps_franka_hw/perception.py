"""Object position from one RGB-D frame: colour segmentation + aligned depth + intrinsics + extrinsics.

No ROS. Steps: HSV thresholds (OpenCV) -> largest connected blob -> erode (edge pixels mix object
and background depth) -> deproject every blob pixel with valid depth through the pinhole
(undistorting when the camera reports distortion) -> mean of the 3D points in the optical frame
-> pushed `center_offset_m` further along the viewing ray (the camera sees the object's near
surface, the policy wants its centre) -> base frame through the camera's extrinsics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class HsvRange:
    """OpenCV HSV bounds (H in [0, 180), S and V in [0, 255]), inclusive."""

    lower: tuple[int, int, int]
    upper: tuple[int, int, int]


# Red wraps around hue 0, so it needs two ranges.
RED = (HsvRange((0, 120, 60), (10, 255, 255)), HsvRange((170, 120, 60), (180, 255, 255)))


@dataclass(frozen=True)
class PerceptionConfig:
    """Segmentation and geometry settings.

    Attributes:
        ranges: HSV ranges whose union is the object's colour.
        min_area_px: smaller blobs are not the object (noise, specks): no detection.
        erode_px: pixels eroded from the blob border before depth is read.
        min_depth_m, max_depth_m: depth readings outside are ignored (0 = RealSense "no data").
        min_depth_pixels: fewer valid depth pixels than this: no detection.
        center_offset_m: distance from the visible surface to the object's centre along the
            viewing ray (about half the object's size; 0 reports the surface point).
    """

    ranges: tuple[HsvRange, ...] = RED
    min_area_px: int = 20
    erode_px: int = 1
    min_depth_m: float = 0.1
    max_depth_m: float = 3.0
    min_depth_pixels: int = 5
    center_offset_m: float = 0.0

    def __post_init__(self) -> None:
        if not self.ranges:
            raise ValueError("`ranges` must hold at least one HSV range, got none")
        for r in self.ranges:
            for name, bound in (("lower", r.lower), ("upper", r.upper)):
                if len(bound) != 3 or not (0 <= bound[0] <= 180 and 0 <= bound[1] <= 255 and 0 <= bound[2] <= 255):
                    raise ValueError(f"HSV `{name}` must be (H in [0, 180], S, V in [0, 255]), got {bound}")
        if self.min_area_px < 1 or self.erode_px < 0 or self.min_depth_pixels < 1:
            raise ValueError(f"`min_area_px` >= 1, `erode_px` >= 0, `min_depth_pixels` >= 1 expected, got "
                             f"{self.min_area_px}, {self.erode_px}, {self.min_depth_pixels}")
        if not 0.0 <= self.min_depth_m < self.max_depth_m:
            raise ValueError(f"`min_depth_m` must be in [0, max_depth_m ({self.max_depth_m})), got {self.min_depth_m}")
        if not math.isfinite(self.center_offset_m) or not 0.0 <= self.center_offset_m <= 0.5:
            raise ValueError(f"`center_offset_m` must be in [0, 0.5] m, got {self.center_offset_m}")


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics (K row-major 3x3, plumb_bob D) and the optical frame's pose in the base frame."""

    k: np.ndarray
    d: np.ndarray
    rotation: np.ndarray  # base_R_optical, 3x3
    translation: np.ndarray  # optical frame origin in base, 3

    @classmethod
    def from_params(cls, k: Sequence[float], d: Sequence[float], pose_xyz_qxyzw: Sequence[float]) -> CameraModel:
        k_arr = np.asarray(k, dtype=np.float64).reshape(-1)
        if k_arr.shape != (9,) or not np.all(np.isfinite(k_arr)) or k_arr[0] <= 0 or k_arr[4] <= 0:
            raise ValueError(f"camera `K` must be 9 finite numbers with fx, fy > 0, got {list(k_arr)}")
        pose = np.asarray(pose_xyz_qxyzw, dtype=np.float64).reshape(-1)
        if pose.shape != (7,) or not np.all(np.isfinite(pose)):
            raise ValueError(f"`camera_pose` must be [x, y, z, qx, qy, qz, qw] (optical frame in base), got {list(pose)}")
        q = pose[3:]
        n = np.linalg.norm(q)
        if abs(n - 1.0) > 1e-3:
            raise ValueError(f"`camera_pose` quaternion must have unit norm, got norm {n:.6f}")
        return cls(k_arr.reshape(3, 3), np.asarray(d, dtype=np.float64).reshape(-1),
                   quat_xyzw_to_matrix(q / n), pose[:3].copy())


def quat_xyzw_to_matrix(q: Sequence[float]) -> np.ndarray:
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat_xyzw(r: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w), w >= 0."""
    m = np.asarray(r, dtype=np.float64)
    w = math.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    x = math.copysign(math.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
    q = np.array([x, y, z, w])
    return q / np.linalg.norm(q)


@dataclass(frozen=True)
class Detection:
    position: np.ndarray  # base frame, m
    position_optical: np.ndarray  # optical frame, m
    pixel: tuple[float, float]  # blob centroid (u, v)
    area_px: int
    depth_pixels: int


def segment(rgb: np.ndarray, ranges: Sequence[HsvRange], min_area_px: int) -> np.ndarray | None:
    """Mask (bool H x W) of the largest blob in the colour ranges, or None if none is big enough."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8 RGB, got shape {rgb.shape} dtype {rgb.dtype}")
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    mask = np.zeros(rgb.shape[:2], dtype=np.uint8)
    for r in ranges:
        mask |= cv2.inRange(hsv, np.array(r.lower, np.uint8), np.array(r.upper, np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < min_area_px:
        return None
    return labels == best


def locate(rgb: np.ndarray, depth_mm: np.ndarray, camera: CameraModel,
           config: PerceptionConfig | None = None) -> Detection | None:
    """The object's position in the base frame, or None when it is not seen (or has no depth)."""
    cfg = config or PerceptionConfig()
    if depth_mm.shape != rgb.shape[:2]:
        raise ValueError(f"depth {depth_mm.shape} must be aligned to colour {rgb.shape[:2]} (same H x W)")
    mask = segment(rgb, cfg.ranges, cfg.min_area_px)
    if mask is None:
        return None
    area = int(mask.sum())
    vs, us = np.nonzero(mask)
    pixel = (float(us.mean()), float(vs.mean()))
    core = mask
    if cfg.erode_px > 0:
        kernel = np.ones((2 * cfg.erode_px + 1, 2 * cfg.erode_px + 1), np.uint8)
        eroded = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
        if eroded.sum() >= cfg.min_depth_pixels:
            core = eroded
    z = depth_mm.astype(np.float64) * 1e-3
    valid = core & (z >= max(cfg.min_depth_m, 1e-6)) & (z <= cfg.max_depth_m)
    n = int(valid.sum())
    if n < cfg.min_depth_pixels:
        return None
    vs, us = np.nonzero(valid)
    zs = z[vs, us]
    pts = np.stack([us, vs], axis=1).astype(np.float64)
    k = camera.k
    if camera.d.size and np.any(camera.d != 0.0):
        norm = cv2.undistortPoints(pts.reshape(-1, 1, 2), k, camera.d).reshape(-1, 2)
    else:
        norm = np.stack([(pts[:, 0] - k[0, 2]) / k[0, 0], (pts[:, 1] - k[1, 2]) / k[1, 1]], axis=1)
    cloud = np.stack([norm[:, 0] * zs, norm[:, 1] * zs, zs], axis=1)
    p_opt = cloud.mean(axis=0)
    if cfg.center_offset_m > 0.0:
        p_opt = p_opt + cfg.center_offset_m * p_opt / np.linalg.norm(p_opt)
    p_base = camera.rotation @ p_opt + camera.translation
    return Detection(p_base, p_opt, pixel, area, n)
