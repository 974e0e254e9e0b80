"""CPU cost of franka_supervisor's FrankaRobotState subscription at 1 kHz vs 100 Hz.

franka_robot_state_broadcaster publishes the whole FrankaRobotState once per update, reliable
(franka_ros2 v3.4.0); at the controller manager's 1 kHz, every message lands in the Python
supervisor. lps_franka_hw/config/fr3_controllers.yaml runs the broadcaster at 100 Hz instead.
Here a publisher process sends the franka_msgs stand-in (tests/hw_fakes/franka_msgs_standin: the real
message's layout and size) at each rate to the installed `franka_supervisor`, whose CPU time is
read from /proc over a fixed window, in interleaved rounds (the median is printed: a shared
machine's load drifts). Printed: CPU % of one core at each rate, with nothing published
(baseline: the supervisor's own 50 Hz readiness timer), and the 1 kHz / 100 Hz ratio.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "franka_standin"))
from harness import franka_msgs_build  # noqa: E402

WARMUP_S, WINDOW_S, ROUNDS = 3.0, 8.0, 3

PUBLISHER = r"""
import sys, time, threading
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from franka_msgs.msg import FrankaRobotState
rate = float(sys.argv[1])
rclpy.init()
node = rclpy.create_node("robot_state_source")
pub = node.create_publisher(FrankaRobotState, "franka_robot_state_broadcaster/robot_state",
                            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
msg = FrankaRobotState()
names = [f"fr3_joint{i}" for i in range(1, 8)]
for js in (msg.measured_joint_state, msg.desired_joint_state, msg.measured_joint_motor_state,
           msg.tau_ext_hat_filtered):
    js.name = names
    js.position = js.velocity = js.effort = [0.1] * 7
msg.robot_mode = FrankaRobotState.ROBOT_MODE_MOVE
print(f"message size: {len(__import__('rclpy.serialization').serialization.serialize_message(msg))} bytes", flush=True)
period, t = 1.0 / rate, time.monotonic()
while rclpy.ok():
    t += period
    msg.header.stamp = node.get_clock().now().to_msg()
    pub.publish(msg)
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(env: dict[str, str], rate: float | None) -> tuple[float, float]:
    """(CPU % of one core over the window, robot states the supervisor took per second)."""
    supervisor = subprocess.Popen([str(ROOT / "ros2_ws/install/lps_franka_hw/lib/lps_franka_hw/franka_supervisor")],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    source = None
    if rate is not None:
        source = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(rate)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        source.stdout.readline()  # the message size line: the publisher is up
    started = time.monotonic()
    try:
        time.sleep(WARMUP_S)
        c0, t0 = cpu_seconds(supervisor.pid), time.monotonic()
        time.sleep(WINDOW_S)
        cpu = 100.0 * (cpu_seconds(supervisor.pid) - c0) / (time.monotonic() - t0)
    finally:
        for proc in filter(None, (source, supervisor)):
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    received = re.search(r"(\d+) robot states received", supervisor.stdout.read())
    return cpu, (int(received.group(1)) if received else 0) / (time.monotonic() - started)


def main() -> int:
    env = franka_msgs_build.environment(franka_msgs_build.ensure_built())
    env.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    print(f"franka_supervisor CPU (% of one core), median of {ROUNDS} rounds of {WINDOW_S:.0f} s:")
    cases = (("nothing published", None), ("100 Hz", 100.0), ("1 kHz", 1000.0))
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in cases}
    for _ in range(ROUNDS):
        for label, rate in cases:
            samples[label].append(measure(env, rate))
    results = {label: statistics.median(c for c, _ in v) for label, v in samples.items()}
    for label, _ in cases:
        taken = statistics.median(n for _, n in samples[label])
        print(f"  {label:>18}: {results[label]:5.1f} %   (rounds: "
              f"{', '.join(f'{c:.1f}' for c, _ in samples[label])}); states taken: about {taken:.0f}/s")
    print("  (best effort, depth 1: a state that arrives while the executor is busy replaces the "
          "one waiting, so a saturated supervisor takes fewer than are sent)")
    base = results["nothing published"]
    ratio = (results["1 kHz"] - base) / max(results["100 Hz"] - base, 1e-9)
    print(f"  subscription cost above baseline: 1 kHz / 100 Hz = {ratio:.1f}x "
          f"(total {results['1 kHz'] / max(results['100 Hz'], 1e-9):.1f}x)")
    print("  target: the 100 Hz subscription a small share of one core, 1 kHz several times more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
