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
    """Subscribes (raw, no deserialisation) to `topics` and writes every message to `path`."""

    def __init__(self, node: Node, path: Path, topics: list[tuple[str, type]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._node = node
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = Writer(self._file)
        self._writer.start(profile="ros2", library="lps_steering.evaluation")
        self._lock = threading.Lock()
        self._subs = []
        self._seq = 0
        schemas: dict[str, int] = {}
        for topic, msg_type in topics:
            name = _type_name(msg_type)
            if name not in schemas:
                schemas[name] = self._writer.register_schema(
                    name=name, encoding="ros2msg", data=message_definition(name).encode())
            channel = self._writer.register_channel(topic=topic, message_encoding="cdr",
                                                    schema_id=schemas[name])
            self._subs.append(node.create_subscription(
                msg_type, topic, lambda data, c=channel: self._write(c, data), 1000, raw=True))

    def _write(self, channel: int, data: bytes) -> None:
        now = time.time_ns()
        with self._lock:
            if self._writer is None:
                return
            self._writer.add_message(channel_id=channel, log_time=now, publish_time=now, data=data,
                                     sequence=self._seq)
            self._seq += 1

    def close(self) -> None:
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs = []
        with self._lock:
            if self._writer is not None:
                self._writer.finish()
                self._file.close()
                self._writer = None
