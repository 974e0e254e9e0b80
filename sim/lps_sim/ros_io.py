"""What the sim bridge node does besides ROS plumbing: message <-> numpy, camera intrinsics, commands.

Message types only (sensor_msgs, geometry_msgs, ...), never rclpy, so every function here is tested
without a ROS graph (``tests/test_bridge_io.py``) and the node (``lps_sim.bridge_node``) stays a shell.

Conventions copied from the real drivers the bridge stands in for:

- ``realsense2_camera``: colour ``rgb8``, aligned depth ``16UC1`` in millimetres with 0 = no data,
  both in the colour optical frame (x right, y down, z forward), ``plumb_bob`` with zero distortion.
- franka_ros2's joint trajectory controller: a JointTrajectory replaces the trajectory in force; its
  last point is reached ``time_from_start`` after the header stamp (zero stamp: start now), moving
  linearly from the position commanded at that moment, so a new command never makes the target jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image
from trajectory_msgs.msg import JointTrajectory

# The D435 colour imager: 69 x 42 degrees at 16:9. Its pixels are square, and 4:3 modes crop the
# sides, so the vertical angle is the one that holds at every resolution.
D435_COLOR_VFOV_DEG = 42.0
D435_COLOR_HFOV_DEG = 69.0
# Beyond this the D435 returns no depth (0 in the 16UC1 image), as realsense2_camera publishes it.
D435_MAX_DEPTH_M = 10.0


class CommandError(ValueError):
    """A command the bridge refuses; the message names the field, what was expected and what came."""


# ----------------------------------------------------------------------------------------- time
def time_msg(seconds: float) -> Time:
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def time_s(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


# --------------------------------------------------------------------------------------- camera
@dataclass(frozen=True)
class CameraIntrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def k(self) -> list[float]:
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.fx)))


def pinhole_intrinsics(width: int, height: int, vfov_deg: float = D435_COLOR_VFOV_DEG) -> CameraIntrinsics:
    """Intrinsics of a square-pixel pinhole whose image spans ``vfov_deg`` vertically.

    This is how MuJoCo renders a camera of ``fovy = vfov_deg``: the frustum spans the image edges and
    pixel centres sit at half-integers of it, so in ROS/OpenCV pixel coordinates (centre of pixel 0
    at 0) the principal point is ((W - 1) / 2, (H - 1) / 2).
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got width={width}, height={height}")
    if not 1.0 <= vfov_deg <= 170.0:
        raise ValueError(f"`vfov_deg` must be in [1, 170], got {vfov_deg}")
    f = (height / 2.0) / math.tan(math.radians(vfov_deg) / 2.0)
    return CameraIntrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


def camera_info_msg(intr: CameraIntrinsics, frame_id: str) -> CameraInfo:
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.width, msg.height = intr.width, intr.height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = intr.k
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def depth_to_mm(depth_m: np.ndarray, max_depth_m: float = D435_MAX_DEPTH_M) -> np.ndarray:
    """Metres (float) -> uint16 millimetres; beyond range or non-finite -> 0 (RealSense's "no data")."""
    d = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0.0) & (d <= max_depth_m)
    out = np.zeros(d.shape, dtype=np.uint16)
    out[valid] = np.minimum(np.rint(d[valid] * 1000.0), 65535).astype(np.uint16)
    return out


def fill_image(msg: Image, array: np.ndarray, encoding: str) -> Image:
    """Fill ``msg`` in place from an [H, W] or [H, W, C] array (little endian, rows packed)."""
    a = np.ascontiguousarray(array)
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(a.strides[0])
    msg.data = a.tobytes()
    return msg


def image_to_array(msg: Image) -> np.ndarray:
    """Inverse of ``fill_image`` for rgb8 / 16UC1 (used by tests and tools)."""
    dtypes = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "16UC1": (np.uint16, 1), "mono8": (np.uint8, 1)}
    if msg.encoding not in dtypes:
        raise ValueError(f"`encoding` must be one of {sorted(dtypes)}, got {msg.encoding!r}")
    dtype, channels = dtypes[msg.encoding]
    a = np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.step // np.dtype(dtype).itemsize)
    a = a[:, : msg.width * channels]
    return a.reshape(msg.height, msg.width, channels) if channels > 1 else a


# ---------------------------------------------------------------------------------------- poses
def fill_pose(msg: PoseStamped, position: np.ndarray, quat_wxyz: np.ndarray | None = None) -> PoseStamped:
    p, o = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    if quat_wxyz is None:
        o.w, o.x, o.y, o.z = 1.0, 0.0, 0.0, 0.0
    else:
        o.w, o.x, o.y, o.z = (float(v) for v in quat_wxyz)
    return msg


# ------------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class TrajectoryCommand:
    positions: np.ndarray  # [7] rad, in the bridge's joint order
    duration_s: float  # time_from_start of the last point
    start_s: float | None  # header stamp in seconds; None = start on receipt


def parse_trajectory(msg: JointTrajectory, arm_joint_names: tuple[str, ...] | list[str]) -> TrajectoryCommand:
    """Validate a JointTrajectory for the arm and reorder its last point to ``arm_joint_names``.

    Raises:
        CommandError: names missing, repeated or foreign, no points, wrong position count,
            non-finite values or a negative ``time_from_start``.
    """
    names = list(msg.joint_names)
    expected = list(arm_joint_names)
    if sorted(names) != sorted(expected) or len(set(names)) != len(names):
        raise CommandError(f"`joint_names` must be the arm joints {expected} (any order), got {names}")
    if not msg.points:
        raise CommandError("`points` must hold at least one point, got none")
    last = msg.points[-1]
    if len(last.positions) != len(names):
        raise CommandError(f"`points[-1].positions` must have {len(names)} values (one per joint name), "
                           f"got {len(last.positions)}")
    q = np.asarray(last.positions, dtype=np.float64)
    if not np.all(np.isfinite(q)):
        raise CommandError(f"`points[-1].positions` must be finite, got {q.tolist()}")
    duration = time_s(last.time_from_start)
    if duration < 0.0 or not math.isfinite(duration):
        raise CommandError(f"`points[-1].time_from_start` must be >= 0 s, got {duration}")
    order = [names.index(n) for n in expected]
    stamp = time_s(msg.header.stamp)
    return TrajectoryCommand(q[order], duration, stamp if stamp > 0.0 else None)


def check_gripper_width(width: float, max_width: float) -> float:
    """A commanded finger opening in metres, refused (not clipped) when outside [0, max_width]."""
    w = float(width)
    if not math.isfinite(w) or w < 0.0 or w > max_width:
        raise CommandError(f"gripper `data` must be a width in [0, {max_width}] m, got {width}")
    return w


class TrajectoryFollower:
    """The arm's position target over time: linear from the target in force to the newest goal.

    All times are the bridge's simulated seconds. ``sample(t)`` is what the position servos get for
    the control period that ends at ``t``.
    """

    def __init__(self, q: np.ndarray) -> None:
        self.reset(q)

    def reset(self, q: np.ndarray) -> None:
        q = np.array(q, dtype=np.float64)
        self._start, self._goal = q, q.copy()
        self._t0 = self._t1 = -math.inf

    @property
    def goal(self) -> np.ndarray:
        return self._goal.copy()

    def sample(self, t: float) -> np.ndarray:
        if t >= self._t1:
            return self._goal.copy()
        if t <= self._t0:
            return self._start.copy()
        a = (t - self._t0) / (self._t1 - self._t0)
        return self._start + a * (self._goal - self._start)

    def command(self, now: float, cmd: TrajectoryCommand) -> None:
        """A new trajectory replaces the one in force, starting from where the target is now."""
        start_time = now if cmd.start_s is None else cmd.start_s
        self._start = self.sample(now)
        self._goal = np.array(cmd.positions, dtype=np.float64)
        self._t0 = max(now, start_time)
        self._t1 = start_time + cmd.duration_s
        if self._t1 <= self._t0:
            self._t0 = self._t1 = now if start_time <= now else start_time
            if start_time <= now:
                self._start = self._goal.copy()

    def hold(self, now: float) -> None:
        """Stop where the target is now (a refused command or a fault: never move on doubt)."""
        q = self.sample(now)
        self._start, self._goal = q, q.copy()
        self._t0 = self._t1 = -math.inf
