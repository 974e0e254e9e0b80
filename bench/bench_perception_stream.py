"""Camera frames between processes: what object_perception gets of a RealSense-rate stream.

The sim bridge in real-time mode streams colour + aligned depth (system-default QoS, as
realsense2_camera publishes) at a resolution and rate; ``object_perception`` runs with its shipped
QoS and pairing (reliable, queue 10, pairs by stamp within 8 frames) and, as the baseline in the
same run, with queue depth 1 and only the newest colour and depth kept, and, for
frames larger than Fast DDS's built-in 512 KiB shared-memory segment, with the shipped settings over
`config/fastdds_localhost.xml` (what the evaluation and the robot's compose file use). Counted
over LPS_BENCH_SECONDS (default 10 s) of wall time per setting, from the node's own frame reports:
frames the bridge published, pairs perception processed, halves it lost unpaired, and its
processing time per pair. Prints numbers and the ratio delivered / published; asserts nothing.

Target: the shipped settings deliver every published frame (ratio 1.00) at 640 x 480 and 30 Hz.
The bridge may not keep real time while it renders (its real-time factor is printed): the rate
that matters is frames per simulated second, which it keeps.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("ROS_HOME", tempfile.mkdtemp(prefix="lps-bench-ros-"))
os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lps_msgs.msg import PerceptionFrame  # noqa: E402
from lps_steering.evaluation.runner import BUILTIN_SHM_SEGMENT_BYTES, FASTDDS_PROFILE  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from ros_util import Collector, NodeProcess, RosClient, bridge_counters, stack_node_parameters  # noqa: E402

SECONDS = float(os.environ.get("LPS_BENCH_SECONDS", "10"))
SETTINGS = ((640, 480, 30.0), (320, 240, 60.0), (1280, 720, 15.0))
BASELINE = {"image_queue_depth": 1, "pair_window": 1}
# The shared-memory profile the evaluation and the robot's compose file use for frames larger than
# Fast DDS's built-in segment.
PROFILE = Path(__file__).resolve().parents[1] / FASTDDS_PROFILE
console = Console()


def measure(client: RosClient, tmp: Path, w: int, h: int, rate: float, perception_overrides: dict,
            profile: Path | None = None) -> dict:
    name = f"{w}x{h}_{rate:g}_{'baseline' if perception_overrides else 'shipped'}{'_shm' if profile else ''}"
    # The two node processes inherit this process's environment; the profile is theirs only.
    with mock.patch.dict(os.environ, {"FASTDDS_DEFAULT_PROFILES_FILE": str(profile)} if profile else {}):
        return _measure(client, tmp, name, w, h, rate, perception_overrides)


def _measure(client: RosClient, tmp: Path, name: str, w: int, h: int, rate: float, perception_overrides: dict) -> dict:
    frames = Collector(client.node, PerceptionFrame, "object_perception/frames", 10_000)
    diag = Collector(client.node, DiagnosticArray, "diagnostics", 10)
    params = stack_node_parameters("sim", "object_perception", perception="true") | perception_overrides
    with NodeProcess("lps_franka_hw.perception_node", tmp / f"perception_{name}.log", params) as node, \
            NodeProcess("lps_sim.bridge_node", tmp / f"bridge_{name}.log", {
                "clock_mode": "realtime", "object_pose_from_camera": True, "camera_width": w,
                "camera_height": h, "camera_rate_hz": rate}) as bridge:
        try:
            frames.wait_count(3, 60.0)  # both up and matched: frames are flowing
        except TimeoutError:
            raise RuntimeError(f"no frames reported for {name}:\n{node.log()[-2000:]}\n{bridge.log()[-2000:]}") from None
        before, first = bridge_counters(diag, 10.0), frames.snapshot()[-1]
        t0 = time.monotonic()
        time.sleep(SECONDS)
        after = bridge_counters(diag, 10.0)
        time.sleep(0.5)  # the last frames' reports
        last = frames.snapshot()[-1]
        wall = time.monotonic() - t0
    published = int(after["frames"]) - int(before["frames"])
    paired = last.frames_paired - first.frames_paired
    processing = [f.processing_ms for f in frames.snapshot()[-max(paired, 1):]]
    return {"published": published, "paired": paired, "lost": last.frames_unpaired - first.frames_unpaired,
            "seen": last.frames_seen - first.frames_seen, "processing_p50": float(np.median(processing)),
            "processing_p99": float(np.percentile(processing, 99)), "rtf": float(after["real_time_factor"]),
            "wall": wall}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lps-bench-perception-"))
    console.print(f"camera stream -> object_perception, {SECONDS:.0f} s per setting; logs in {tmp}")
    table = Table(title="frames object_perception processed of those published (real-time sim bridge)")
    for col in ("stream", "perception", "published", "paired", "lost unpaired", "delivered / published",
                "processing p50 / p99 (ms)", "sim real-time factor", "target"):
        table.add_column(col)
    with RosClient("lps_bench_perception") as client:
        for w, h, rate in SETTINGS:
            results = {label: measure(client, tmp, w, h, rate, overrides)
                       for label, overrides in (("shipped", {}), ("depth 1, newest only", BASELINE))}
            if w * h * 3 > BUILTIN_SHM_SEGMENT_BYTES:
                results["shipped, shared-memory profile"] = measure(client, tmp, w, h, rate, {}, PROFILE)
            for label, r in results.items():
                table.add_row(f"{w}x{h} @ {rate:g} Hz", label, str(r["published"]), str(r["paired"]), str(r["lost"]),
                              f"{r['paired'] / max(r['published'], 1):.2f}",
                              f"{r['processing_p50']:.1f} / {r['processing_p99']:.1f}", f"{r['rtf']:.2f}",
                              "1.00" if label.startswith("shipped") and (w, h) == (640, 480) else "")
    console.print(table)


if __name__ == "__main__":
    main()
