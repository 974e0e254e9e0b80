"""``object_perception``: colour + aligned depth + camera_info -> ``object_pose`` in the base frame.

Subscribes (realsense2_camera names, relative): ``<camera>/color/image_raw`` (rgb8 or bgr8),
``<camera>/aligned_depth_to_color/image_raw`` (16UC1 mm), ``<camera>/color/camera_info``.
A colour and a depth image with the same stamp make one measurement (`lps_franka_hw.perception`);
the pose goes out on ``object_pose`` (geometry_msgs/PoseStamped, ``base_frame``, identity
orientation, the images' stamp). Nothing is published when the object is not seen: the policy's
staleness check then holds the arm rather than act on an old position. With ``hold_unseen_s`` > 0
a frame without the object gets the last position seen instead, for that long after the sighting
(the hand hides the object from a fixed camera while it closes on it); the frame's report still
says not seen.
The camera's extrinsics come from the ``camera_pose`` parameter (optical frame in the base frame,
from a hand-eye calibration).

Every processed pair is also reported on ``~/frames`` (lps_msgs/PerceptionFrame: seen or not,
the position, the processing time, the frame's age at the result, and the node's frame counters),
so that losses, misses and latency are visible from outside; a lock-step sim bridge waits for it
before it advances.

Pairing: colour and depth arrive on two topics, in either order and not always both. Each is kept
by stamp until its partner comes, while its stamp is among the last `pair_window` distinct stamps
seen; a half that falls out of that window unpaired is counted lost (`frames_unpaired`). Keeping only the newest of each would
lose every pair whose two halves arrive interleaved with the next frame's. The image subscriptions
keep `image_queue_depth` frames (reliable by default, as realsense2_camera's system-default
publishers offer; `image_reliability: best_effort` for a camera set to SENSOR_DATA): the
middleware's own default depth of 1 loses frames whenever a segmentation takes longer than a frame
period.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from lps_msgs.msg import PerceptionFrame
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_system_default,
)
from sensor_msgs.msg import CameraInfo, Image

from .perception import RED, CameraModel, HsvRange, PerceptionConfig, locate

# Frame reports keep their last ten for late subscribers: an evaluator that has just matched must
# still get the report of the frame a reset published a moment before.
LATCHED_10 = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Longer holds would carry a position across a lock-step sim's reset (which moves time on 1 s) and
# hide a moved object from a robot's safety for longer than a policy period or two.
MAX_HOLD_UNSEEN_S = 0.5

PARAMETERS: dict[str, tuple[Any, str]] = {
    "camera_root": ("camera/camera", "realsense2_camera namespace/name of the input topics"),
    "output_topic": ("object_pose", "geometry_msgs/PoseStamped output"),
    "base_frame": ("fr3_link0", "frame_id of the output (the robot base)"),
    "camera_pose": ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                    "optical frame in the base frame: [x, y, z, qx, qy, qz, qw] (hand-eye calibration)"),
    "hsv_lower": ([float(v) for r in RED for v in r.lower], "HSV lower bounds, 3 per range (flat)"),
    "hsv_upper": ([float(v) for r in RED for v in r.upper], "HSV upper bounds, 3 per range (flat)"),
    "min_area_px": (PerceptionConfig.min_area_px, "smallest blob taken for the object"),
    "center_offset_m": (PerceptionConfig.center_offset_m, "visible surface -> centre along the ray"),
    "max_depth_m": (PerceptionConfig.max_depth_m, "depth beyond this is ignored"),
    "pair_window": (8, "colour or depth frames kept by stamp while their partner is awaited"),
    "image_queue_depth": (10, "queue depth of the image subscriptions"),
    "image_reliability": ("reliable", "image subscriptions: 'reliable' (realsense2_camera's default "
                                      "publishers) or 'best_effort' (its SENSOR_DATA QoS)"),
    "hold_unseen_s": (0.0, "a frame without the object (occluded by the hand at the grasp, say) gets the "
                           "last position seen, stamped with the frame, if that sighting is at most this "
                           f"old (s, at most {MAX_HOLD_UNSEEN_S}); 0: nothing is published, and the policy "
                           "node holds the arm once its object position is older than max_observation_age_ms"),
}


def _image_array(msg: Image) -> np.ndarray:
    if msg.encoding in ("rgb8", "bgr8"):
        arr = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width * 3]
        arr = arr.reshape(msg.height, msg.width, 3)
        return arr[..., ::-1].copy() if msg.encoding == "bgr8" else arr
    if msg.encoding in ("16UC1", "mono16"):
        return np.frombuffer(bytes(msg.data), np.uint16).reshape(msg.height, msg.step // 2)[:, :msg.width]
    raise ValueError(f"image encoding must be rgb8/bgr8 (colour) or 16UC1 (depth), got {msg.encoding!r}")


class PerceptionNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("object_perception", **kwargs)
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text, read_only=True))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        lower, upper = list(p["hsv_lower"]), list(p["hsv_upper"])
        if len(lower) != len(upper) or not lower or len(lower) % 3:
            raise ValueError(f"`hsv_lower` and `hsv_upper` must have the same length, a multiple of 3, "
                             f"got {len(lower)} and {len(upper)}")
        ranges = tuple(HsvRange(tuple(int(v) for v in lower[i:i + 3]), tuple(int(v) for v in upper[i:i + 3]))
                       for i in range(0, len(lower), 3))
        self.config = PerceptionConfig(ranges=ranges, min_area_px=int(p["min_area_px"]),
                                       center_offset_m=float(p["center_offset_m"]),
                                       max_depth_m=float(p["max_depth_m"]))
        self._pose_param = list(p["camera_pose"])
        CameraModel.from_params([1, 0, 0, 0, 1, 0, 0, 0, 1], [], self._pose_param)  # validate now
        if p["image_reliability"] not in ("reliable", "best_effort"):
            raise ValueError(f"`image_reliability` must be 'reliable' or 'best_effort', got {p['image_reliability']!r}")
        if int(p["pair_window"]) < 1 or int(p["image_queue_depth"]) < 1:
            raise ValueError(f"`pair_window` and `image_queue_depth` must be >= 1, got {p['pair_window']} "
                             f"and {p['image_queue_depth']}")
        self._hold_ns = float(p["hold_unseen_s"]) * 1e9
        if not 0.0 <= float(p["hold_unseen_s"]) <= MAX_HOLD_UNSEEN_S:
            raise ValueError(f"`hold_unseen_s` must be in [0, {MAX_HOLD_UNSEEN_S}], got {p['hold_unseen_s']!r}")
        self._last_seen: tuple[int, tuple[float, float, float]] | None = None  # (stamp ns, position)
        self.camera: CameraModel | None = None
        self._window = int(p["pair_window"])
        # stamp (ns) -> (image, arrival time)
        self._pending: dict[str, dict[int, tuple[Image, float]]] = {"color": {}, "depth": {}}
        self._recent: deque[int] = deque(maxlen=self._window)  # the newest distinct stamps seen
        self.detections = 0
        self.misses = 0
        self.paired = 0
        self.unpaired = 0
        self.refused = 0
        root = p["camera_root"].rstrip("/")
        images = QoSProfile(depth=int(p["image_queue_depth"]), history=HistoryPolicy.KEEP_LAST,
                            reliability=(ReliabilityPolicy.RELIABLE if p["image_reliability"] == "reliable"
                                         else ReliabilityPolicy.BEST_EFFORT))
        self.create_subscription(CameraInfo, f"{root}/color/camera_info", self._on_info, qos_profile_system_default)
        self.create_subscription(Image, f"{root}/color/image_raw", lambda m: self._on_image("color", m), images)
        self.create_subscription(Image, f"{root}/aligned_depth_to_color/image_raw",
                                 lambda m: self._on_image("depth", m), images)
        self._pub = self.create_publisher(PoseStamped, p["output_topic"], 10)
        self._frames_pub = self.create_publisher(PerceptionFrame, "~/frames", LATCHED_10)
        self._msg = PoseStamped()
        self._msg.header.frame_id = p["base_frame"]
        self._msg.pose.orientation.w = 1.0
        self._base_frame = p["base_frame"]
        self._last_warn = 0.0
        self.get_logger().info(f"object perception: {root} -> {p['output_topic']} ({p['base_frame']})")

    def _on_info(self, msg: CameraInfo) -> None:
        if self.camera is None or not np.allclose(self.camera.k.reshape(-1), msg.k):
            try:
                self.camera = CameraModel.from_params(list(msg.k), list(msg.d), self._pose_param)
            except ValueError as exc:  # the last good intrinsics stay (none: frames are refused)
                self._warn(f"camera_info refused: {exc}")

    def _on_image(self, kind: str, msg: Image) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        other = self._pending["depth" if kind == "color" else "color"]
        if stamp in other:
            partner, _ = other.pop(stamp)
            color, depth = (msg, partner) if kind == "color" else (partner, msg)
            self._measure(color, depth, time.monotonic())
        else:
            mine = self._pending[kind]
            if stamp in mine:  # a duplicate of a frame still waiting: count the older one lost
                self.unpaired += 1
            mine[stamp] = (msg, time.monotonic())
        if stamp not in self._recent:
            self._recent.append(stamp)
        self._expire()

    def _expire(self) -> None:
        """A half whose stamp is not among the last `pair_window` stamps seen will not be paired."""
        for pending in self._pending.values():
            for stamp in [s for s in pending if s not in self._recent]:
                del pending[stamp]
                self.unpaired += 1

    def _measure(self, c: Image, d: Image, paired_at: float) -> None:
        self.paired += 1
        stamp_ns = c.header.stamp.sec * 1_000_000_000 + c.header.stamp.nanosec
        det = None
        try:
            if self.camera is None:
                raise ValueError("no camera_info received yet")
            det = locate(_image_array(c), _image_array(d), self.camera, self.config)
        except ValueError as exc:
            self.refused += 1
            self._warn(f"frame refused: {exc}")
        else:
            if det is not None:
                self.detections += 1
                self._last_seen = (stamp_ns, tuple(float(v) for v in det.position))
                self._publish(c, self._last_seen[1])
            else:
                self.misses += 1
                last = self._last_seen
                if last is not None and 0 <= stamp_ns - last[0] <= self._hold_ns:
                    self._publish(c, last[1])
                else:
                    self._warn("object not seen (no blob in the colour range with valid depth): nothing published")
        report = PerceptionFrame()
        report.header.stamp = c.header.stamp
        report.header.frame_id = self._base_frame
        report.seen = det is not None
        report.position = [float(v) for v in det.position] if det is not None else [math.nan] * 3
        report.processing_ms = float((time.monotonic() - paired_at) * 1e3)
        report.age_ms = float((self.get_clock().now().nanoseconds - stamp_ns) * 1e-6)
        report.frames_paired, report.frames_seen = self.paired, self.detections
        report.frames_unpaired, report.frames_refused = self.unpaired, self.refused
        self._frames_pub.publish(report)

    def _publish(self, frame: Image, position: Sequence[float]) -> None:
        self._msg.header.stamp = frame.header.stamp
        pos = self._msg.pose.position
        pos.x, pos.y, pos.z = (float(v) for v in position)
        self._pub.publish(self._msg)

    def _warn(self, text: str) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        if now - self._last_warn > 1.0:
            self._last_warn = now
            self.get_logger().warning(text)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = PerceptionNode()
    except ValueError as exc:
        print(f"object_perception: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
