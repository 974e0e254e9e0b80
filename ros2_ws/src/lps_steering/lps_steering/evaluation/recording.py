"""Per-episode MCAP recording of ROS topics, as serialized CDR with ros2msg schemas.

Files open in Foxglove and decode with `mcap_ros2.reader` (or `rclpy.serialization`) like a
rosbag2 MCAP: the schema of each type is its .msg text with every nested definition appended, the
format rosbag2 writes. Definitions are read from the packages' share folders (ament index).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from ament_index_python.packages import get_package_share_directory
from mcap.writer import Writer
from rclpy.node import Node

_BUILTIN = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
            "uint32", "int64", "uint64", "string", "wstring"}
_SEPARATOR = "=" * 80


def _type_name(msg_type: type) -> str:
    module = msg_type.__module__.split(".")[0]
    return f"{module}/msg/{msg_type.__name__}"


def _msg_text(pkg: str, name: str) -> str:
    return (Path(get_package_share_directory(pkg)) / "msg" / f"{name}.msg").read_text()


def message_definition(type_name: str) -> str:
    """ros2msg schema text of `pkg/msg/Name`: its .msg plus all nested definitions, depth first."""
    pkg, _, name = type_name.split("/")
    text = _msg_text(pkg, name)
    seen: list[str] = []

    def nested(owner_pkg: str, body: str) -> None:
        for raw in body.splitlines():
            parts = raw.split("#", 1)[0].split()
            if len(parts) < 2:
                continue
            base = re.sub(r"(<=\d+)?(\[[^\]]*\])?$", "", parts[0])
            base = re.sub(r"<=\d+$", "", base)
            if base in _BUILTIN:
                continue  # constants are always of built-in types
            full = base if "/" in base else f"{owner_pkg}/{base}"
            p, n = full.split("/")[0], full.split("/")[-1]
            key = f"{p}/{n}"
            if key in seen:
                continue
            seen.append(key)
            sub = _msg_text(p, n)
            nested(p, sub)
            defs.append(f"{_SEPARATOR}\nMSG: {key}\n{sub}")

    defs: list[str] = []
    nested(pkg, text)
    return "\n".join([text, *defs])


class McapRecorder:
    """Raw subscriptions (no deserialisation) to `topics`, made once; `open(path)` starts a file that
    receives every message until `close()`.

    The subscriptions live across episodes because matching a new subscription with the publishers
    takes a while, in which a lock-step episode runs on unrecorded.
    """

    def __init__(self, node: Node, topics: list[tuple[str, type]]) -> None:
        self._node = node
        self._topics = [(topic, _type_name(msg_type)) for topic, msg_type in topics]
        self._lock = threading.Lock()
        self._file: Any = None
        self._writer: Writer | None = None
        self._channels: dict[str, int] = {}
        self._seq = 0
        self._subs = [node.create_subscription(msg_type, topic, lambda data, t=topic: self._write(t, data),
                                               1000, raw=True)
                      for topic, msg_type in topics]

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._close_file()
            self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
            writer = Writer(self._file)
            writer.start(profile="ros2", library="lps_steering.evaluation")
            schemas: dict[str, int] = {}
            self._channels = {}
            for topic, name in self._topics:
                if name not in schemas:
                    schemas[name] = writer.register_schema(
                        name=name, encoding="ros2msg", data=message_definition(name).encode())
                self._channels[topic] = writer.register_channel(topic=topic, message_encoding="cdr",
                                                                schema_id=schemas[name])
            self._writer, self._seq = writer, 0

    def _write(self, topic: str, data: bytes) -> None:
        now = time.time_ns()
        with self._lock:
            if self._writer is None:
                return
            self._writer.add_message(channel_id=self._channels[topic], log_time=now, publish_time=now,
                                     data=data, sequence=self._seq)
            self._seq += 1

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.finish()
            self._file.close()
            self._writer = self._file = None

    def close(self) -> None:
        """End the current file (if any); the subscriptions stay for the next one."""
        with self._lock:
            self._close_file()

    def destroy(self) -> None:
        self.close()
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs = []
