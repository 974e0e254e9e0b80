"""``object_perception``: colour + aligned depth + camera_info -> ``object_pose`` in the base frame.

Subscribes (realsense2_camera names, relative): ``<camera>/color/image_raw`` (rgb8 or bgr8),
``<camera>/aligned_depth_to_color/image_raw`` (16UC1 mm), ``<camera>/color/camera_info``.
A colour and a depth image with the same stamp make one measurement (`lps_franka_hw.perception`);
the pose goes out on ``object_pose`` (geometry_msgs/PoseStamped, ``base_frame``, identity
orientation, the images' stamp). Nothing is published when the object is not seen: the policy's
staleness check then holds the arm rather than act on an old position.
The camera's extrinsics come from the ``camera_pose`` parameter (optical frame in the base frame,
from a hand-eye calibration).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_system_default
from sensor_msgs.msg import CameraInfo, Image

from .perception import RED, CameraModel, HsvRange, PerceptionConfig, locate

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
        self.camera: CameraModel | None = None
        self._color: Image | None = None
        self._depth: Image | None = None
        self.detections = 0
        self.misses = 0
        root = p["camera_root"].rstrip("/")
        qos = qos_profile_system_default
        self.create_subscription(CameraInfo, f"{root}/color/camera_info", self._on_info, qos)
        self.create_subscription(Image, f"{root}/color/image_raw", self._on_color, qos)
        self.create_subscription(Image, f"{root}/aligned_depth_to_color/image_raw", self._on_depth, qos)
        self._pub = self.create_publisher(PoseStamped, p["output_topic"], 10)
        self._msg = PoseStamped()
        self._msg.header.frame_id = p["base_frame"]
        self._msg.pose.orientation.w = 1.0
        self._last_warn = 0.0
        self.get_logger().info(f"object perception: {root} -> {p['output_topic']} ({p['base_frame']})")

    def _on_info(self, msg: CameraInfo) -> None:
        if self.camera is None or not np.allclose(self.camera.k.reshape(-1), msg.k):
            self.camera = CameraModel.from_params(list(msg.k), list(msg.d), self._pose_param)

    def _on_color(self, msg: Image) -> None:
        self._color = msg
        self._try_pair()

    def _on_depth(self, msg: Image) -> None:
        self._depth = msg
        self._try_pair()

    def _try_pair(self) -> None:
        c, d = self._color, self._depth
        if c is None or d is None or self.camera is None or c.header.stamp != d.header.stamp:
            return
        self._color = self._depth = None
        try:
            det = locate(_image_array(c), _image_array(d), self.camera, self.config)
        except ValueError as exc:
            self._warn(f"frame refused: {exc}")
            return
        if det is None:
            self.misses += 1
            self._warn("object not seen (no blob in the colour range with valid depth): nothing published")
            return
        self.detections += 1
        self._msg.header.stamp = c.header.stamp
        pos = self._msg.pose.position
        pos.x, pos.y, pos.z = (float(v) for v in det.position)
        self._pub.publish(self._msg)

    def _warn(self, text: str) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        if now - self._last_warn > 1.0:
            self._last_warn = now
            self.get_logger().warn(text)


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
