"""``realsense_node``: a RealSense colour + aligned depth stream published like realsense2_camera.

Topics (relative, under ``<camera_namespace>/<camera_name>``, default ``camera/camera``):
``color/image_raw`` (rgb8), ``color/camera_info``, ``aligned_depth_to_color/image_raw`` (16UC1,
mm), ``aligned_depth_to_color/camera_info``; frame ``camera_color_optical_frame``; system-default
QoS, as the sim bridge's camera. Stamps are the node clock at receipt (what the policy's staleness
check compares against). A reader thread blocks on the device; publishing is thread-safe in rclpy.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_system_default
from sensor_msgs.msg import CameraInfo, Image

from .realsense_source import FrameSource, Intrinsics, MissingDependency, RealSenseSource

OPTICAL_FRAME = "camera_color_optical_frame"

PARAMETERS: dict[str, tuple[Any, str]] = {
    "camera_namespace": ("camera", "realsense2_camera's camera_namespace"),
    "camera_name": ("camera", "realsense2_camera's camera_name"),
    "serial_no": ("", "device serial number; empty: first device"),
    "width": (640, "colour and depth width (px)"),
    "height": (480, "colour and depth height (px)"),
    "fps": (30, "frames per second"),
    "frame_timeout_s": (1.0, "a frame wait longer than this is logged; three in a row stop the node"),
}


def camera_info(intr: Intrinsics, frame_id: str) -> CameraInfo:
    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.width, msg.height = intr.width, intr.height
    msg.distortion_model = intr.model
    msg.d = list(intr.coeffs)
    msg.k = intr.k
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class RealSenseNode(Node):
    def __init__(self, source: FrameSource | None = None, **kwargs: Any) -> None:
        super().__init__("realsense_node", **kwargs)
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text, read_only=True))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._p = p
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.source = source or RealSenseSource(p["width"], p["height"], p["fps"], p["serial_no"])
        self.intrinsics = self.source.start()  # MissingDependency / device errors stop the node here
        root = f"{p['camera_namespace']}/{p['camera_name']}"
        qos = qos_profile_system_default
        self._color_pub = self.create_publisher(Image, f"{root}/color/image_raw", qos)
        self._color_info_pub = self.create_publisher(CameraInfo, f"{root}/color/camera_info", qos)
        self._depth_pub = self.create_publisher(Image, f"{root}/aligned_depth_to_color/image_raw", qos)
        self._depth_info_pub = self.create_publisher(CameraInfo, f"{root}/aligned_depth_to_color/camera_info", qos)
        self._info = camera_info(self.intrinsics, OPTICAL_FRAME)
        self.published = 0
        self.failure: str = ""
        self._thread = threading.Thread(target=self._run, name="realsense", daemon=True)
        self._thread.start()
        i = self.intrinsics
        self.get_logger().info(f"realsense: {i.width}x{i.height} @ {p['fps']} fps, fx={i.fx:.1f} fy={i.fy:.1f} "
                               f"-> {root}/color/image_raw, {root}/aligned_depth_to_color/image_raw")

    def _run(self) -> None:
        timeouts = 0
        while not self._stop.is_set() and rclpy.ok(context=self.context):
            try:
                frame = self.source.read(self._p["frame_timeout_s"])
            except RuntimeError as exc:  # pyrealsense2 raises RuntimeError on a wait timeout
                timeouts += 1
                self.get_logger().warn(f"no frame: {exc}")
                if timeouts >= 3:
                    # A frozen camera must not feed the policy stale images: stop and say so.
                    self.failure = f"camera delivered no frame {timeouts} times in a row: {exc}"
                    self.get_logger().error(self.failure)
                    return
                continue
            timeouts = 0
            if frame is not None:
                self._publish(frame)

    def _publish(self, frame: Any) -> None:
        stamp = self.get_clock().now().to_msg()
        color, depth = Image(), Image()
        for msg, array, encoding, step in ((color, frame.color, "rgb8", 3), (depth, frame.depth_mm, "16UC1", 2)):
            msg.header.stamp, msg.header.frame_id = stamp, OPTICAL_FRAME
            msg.height, msg.width = array.shape[:2]
            msg.encoding, msg.is_bigendian, msg.step = encoding, 0, array.shape[1] * step
            msg.data = array.tobytes()
        self._info.header.stamp = stamp
        self._color_pub.publish(color)
        self._color_info_pub.publish(self._info)
        self._depth_pub.publish(depth)
        self._depth_info_pub.publish(self._info)
        self.published += 1

    def destroy_node(self) -> None:
        self._stop.set()
        if self._thread is not None:  # None when start() failed: nothing was opened
            self._thread.join(2.0)
            self.source.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = RealSenseNode()
    except MissingDependency as exc:
        print(f"realsense_node: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        while rclpy.ok() and not node.failure:
            rclpy.spin_once(node, timeout_sec=0.2)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        failed = bool(node.failure)
        node.destroy_node()
        rclpy.try_shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
