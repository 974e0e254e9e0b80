"""Check and time how 640x480 rgb8 images cross between two ROS 2 processes.

Used by the test suite (does an image get through with `config/fastdds_localhost.xml`?) and by
hand on a deployment machine, to see whether a Fast DDS profile is picked up and pays off:

    scripts/with-env python docker/fastdds_probe.py compare --frames 150

`compare` runs the same publisher/subscriber pair twice, once with Fast DDS's built-in transports
and once with the profile, and prints latency percentiles plus the ratio between the two. `pub`
and `sub` are the two halves; each is its own process so that the transport really is crossed.

Every process inherits the caller's ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE, which the
caller must set (scripts/with-env and tests/conftest.py do); `compare` refuses to run without
LOCALHOST so that a measurement never sends discovery traffic off the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = REPO / "config" / "fastdds_localhost.xml"
WIDTH, HEIGHT, CHANNELS = 640, 480, 3
# A handful of distinct frames, built once: filling a 900 KiB message costs ~1.6 ms, which would
# otherwise be counted as transport latency.
N_PATTERNS = 8
# Fast DDS names its shared-memory segments like this in /dev/shm (2.x "fastrtps_", 3.x "fastdds_").
SHM_PREFIXES = ("/dev/shm/fastdds_", "/dev/shm/fastrtps_")


def _frame_bytes(pattern: int) -> bytes:
    import numpy as np

    base = np.arange(WIDTH * HEIGHT * CHANNELS, dtype=np.uint32)
    return ((base * 7 + pattern * 31) % 251).astype(np.uint8).tobytes()


def _qos():
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    # realsense2_camera's default for images is reliable; keep the same here.
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


def shm_segment_sizes() -> list[int]:
    """Sizes in bytes of the Fast DDS shared-memory files this process has mapped."""
    sizes: dict[str, int] = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) < 6 or not parts[5].startswith(SHM_PREFIXES):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            sizes[parts[5]] = sizes.get(parts[5], 0) + end - start
    return sorted(sizes.values(), reverse=True)


def run_pub(topic: str, frames: int, rate_hz: float, match_timeout_s: float) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("lps_fastdds_probe_pub")
    pub = node.create_publisher(Image, topic, _qos())
    messages = []
    for pattern in range(N_PATTERNS):
        msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", is_bigendian=0, step=WIDTH * CHANNELS)
        data = _frame_bytes(pattern)
        msg.data = data
        messages.append((msg, zlib.crc32(data)))
    deadline = time.monotonic() + match_timeout_s
    while pub.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print(f"pub: no subscriber matched on {topic} within {match_timeout_s} s", file=sys.stderr)
            return 2
        rclpy.spin_once(node, timeout_sec=0.05)
    # Discovery of the reader's endpoints by the writer can trail the match count slightly.
    time.sleep(0.3)
    period = 1.0 / rate_hz
    next_t = time.monotonic()
    for i in range(frames):
        msg, crc = messages[i % N_PATTERNS]
        msg.header.frame_id = f"{i}:{crc}"
        now_ns = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
        pub.publish(msg)
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    # Stay up a moment so reliable delivery of the last frames can finish.
    time.sleep(1.5)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_sub(topic: str, frames: int, timeout_s: float) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("lps_fastdds_probe_sub")
    latencies_ms: list[float] = []
    bad: list[str] = []
    seen: set[int] = set()

    def on_image(msg: Image) -> None:
        recv_ns = time.time_ns()
        sent_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies_ms.append((recv_ns - sent_ns) / 1e6)
        index, crc = (int(x) for x in msg.header.frame_id.split(":"))
        seen.add(index)
        shape = (msg.height, msg.width, msg.encoding, msg.step, len(msg.data))
        if shape != (HEIGHT, WIDTH, "rgb8", WIDTH * CHANNELS, WIDTH * HEIGHT * CHANNELS):
            bad.append(f"frame {index}: got (height, width, encoding, step, bytes) = {shape}")
        elif zlib.crc32(msg.data) != crc:
            bad.append(f"frame {index}: pixel data differs from what was sent (crc32)")

    node.create_subscription(Image, topic, on_image, _qos())
    deadline = time.monotonic() + timeout_s
    while len(latencies_ms) < frames and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    result = {
        "received": len(latencies_ms),
        "distinct": len(seen),
        "expected": frames,
        "latencies_ms": latencies_ms,
        "errors": bad,
        "shm_segments": shm_segment_sizes(),
        "profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", ""),
    }
    print(json.dumps(result))
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_pair(frames: int, rate_hz: float, profile: Path | None, topic: str, timeout_s: float) -> dict:
    """Start a subscriber and a publisher process; return the subscriber's report."""
    env = dict(os.environ)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--topic", topic, "--frames", str(frames)]
    sub = subprocess.Popen([*me, "sub", *common, "--timeout", str(timeout_s)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pub = subprocess.Popen([*me, "pub", *common, "--rate", str(rate_hz), "--match-timeout", str(timeout_s)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sub_out, sub_err = sub.communicate(timeout=timeout_s + 30)
        _, pub_err = pub.communicate(timeout=30)
    finally:
        for proc in (sub, pub):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if sub.returncode != 0 or not sub_out.strip():
        raise RuntimeError(f"subscriber exited {sub.returncode}: {sub_err[-2000:]}")
    report = json.loads(sub_out.strip().splitlines()[-1])
    report["pub_returncode"] = pub.returncode
    report["pub_stderr"] = pub_err[-2000:]
    report["sub_stderr"] = sub_err[-2000:]
    return report


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
            "p99": float(np.percentile(arr, 99)), "max": float(arr.max())}


def run_compare(frames: int, rate_hz: float, profile: Path, timeout_s: float) -> int:
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
        print("compare: set ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (use scripts/with-env)", file=sys.stderr)
        return 2
    rows = {}
    for label, prof in (("built-in transports", None), (f"profile {profile.name}", profile)):
        report = run_pair(frames, rate_hz, prof, f"lps_probe/image_{os.getpid()}", timeout_s)
        # The first frames include discovery and allocation of buffers; leave them out.
        warm = report["latencies_ms"][min(10, frames // 10):]
        rows[label] = (report, percentiles(warm))
    print(f"640x480 rgb8 images, {frames} frames at {rate_hz:g} Hz, reliable, two processes, "
          f"ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}")
    print(f"{'transport':<34}{'received':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}  shm segment")
    for label, (report, pct) in rows.items():
        seg = report["shm_segments"][0] if report["shm_segments"] else 0
        print(f"{label:<34}{report['received']:>6}/{frames:<3}{pct['p50']:>9.2f}{pct['p90']:>9.2f}"
              f"{pct['p99']:>9.2f}{pct['max']:>9.2f}  {seg / 2**20:.1f} MiB")
        for err in report["errors"][:3]:
            print(f"   error: {err}")
    (base, base_pct), (_, prof_pct) = rows.values()
    print(f"p50 ratio built-in / profile: {base_pct['p50'] / prof_pct['p50']:.1f}x "
          f"(p99: {base_pct['p99'] / prof_pct['p99']:.1f}x)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=("pub", "sub", "compare"))
    parser.add_argument("--topic", default="lps_probe/image")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rate", type=float, default=30.0, help="publish rate in Hz (camera-like)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds the subscriber waits in all")
    parser.add_argument("--match-timeout", type=float, default=20.0)
    parser.add_argument("--profile", type=Path, default=DEFAULT_PROFILE)
    args = parser.parse_args(argv)
    if args.role == "pub":
        return run_pub(args.topic, args.frames, args.rate, args.match_timeout)
    if args.role == "sub":
        return run_sub(args.topic, args.frames, args.timeout)
    return run_compare(args.frames, args.rate, args.profile.resolve(), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
