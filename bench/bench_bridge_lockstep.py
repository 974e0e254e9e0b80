"""Sim bridge throughput over real DDS: lock-step control steps per second, real-time factor.

Prints numbers, targets beside them and ratios against baselines measured in the same run; asserts
nothing. Every process runs with loopback-only discovery in a domain of its own.

  1. lock-step, the real policy node (tiny decoder from ``lps_train.tiny``, trigger=observation,
     use_sim_time, SingleThreadedExecutor: with its default EventsExecutor the node was never
     discovered on the loaded shared machine) + ``sim_bridge``: control steps per wall second over LPS_BENCH_SECONDS (default
     10 s), missed steps (lock-step timeouts) and the real-time factor that gives.
  2. lock-step, a minimal responder instead of the policy (answers each joint state with a
     JointTrajectory holding the measured position): the bridge + transport alone.
  3. the task stepped in this process with no ROS at all (``FrankaTask.step``): the physics ceiling.
  4. real-time mode, responder attached: achieved real-time factor from /clock against the wall clock.
  5. the rendering cost: lock-step with the responder and the camera on (30 Hz colour + depth), then
     with perception in the loop (``object_pose_from_camera``: each frame waits for
     ``object_perception``'s report), at 640 x 480 (the D435's stream on the robot) and 320 x 240,
     against the responder without a camera (2).

Targets: lock-step with the policy >= 100 steps/s (faster than real time at 100 Hz control, so
evaluation is never the bottleneck); real-time mode factor >= 0.95.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("ROS_HOME", tempfile.mkdtemp(prefix="lps-bench-ros-"))
os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lps_msgs.msg import TaskStatus  # noqa: E402
from lps_msgs.srv import ResetEpisode  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402
from ros_util import Collector, NodeProcess, RosClient, bridge_counters, stack_node_parameters  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

SECONDS = float(os.environ.get("LPS_BENCH_SECONDS", "10"))
START_TIMEOUT_S = 60.0  # a peer that drives no steps by then is reported unusable
CONTROL_HZ = 100.0
POLICY = "policy_node"
console = Console()

RESPONDER = str(Path(__file__).resolve().parent / 'echo_node.py')  # the no-policy baseline peer


def _progress(seconds: float, what: str) -> None:
    with Progress(transient=True, console=console) as progress:
        task = progress.add_task(what, total=seconds)
        t0 = time.monotonic()
        while (left := seconds - (time.monotonic() - t0)) > 0:
            time.sleep(min(0.25, left))
            progress.update(task, completed=time.monotonic() - t0)


def _bridge(tmp: Path, name: str, **params: object) -> NodeProcess:
    return NodeProcess("lps_sim.bridge_node", tmp / f"{name}.log", params=params)


def _responder(tmp: Path) -> subprocess.Popen:
    log = open(tmp / "responder.log", "w")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, RESPONDER], stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(2)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def bench_lockstep(client: RosClient, topics: dict[str, Collector], tmp: Path, name: str, seconds: float,
                   start_peer, **bridge_params: object) -> dict:
    """Steps per wall second of a lock-step bridge driven by the peer ``start_peer()`` starts."""
    status, diag = topics["status"], topics["diag"]
    params = {"clock_mode": "lockstep", "lockstep_timeout_s": 1.0, **bridge_params}
    with _bridge(tmp, f"bridge_{name.replace(' ', '_')}", **params) as bridge:
        stop_peer = start_peer()
        try:
            # The reset publishes the episode's first observation: the loop runs from here on.
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                res = client.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=0), timeout=30.0)
                status.clear()
                try:
                    status.wait_count(20, 5.0)  # the peer answers: steps are flowing
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no steps from the {name} loop:\n{bridge.log()}") from None
            before = bridge_counters(diag)
            t0 = time.monotonic()
            _progress(seconds, f"lock-step with {name}")
            after = bridge_counters(diag)
            wall = time.monotonic() - t0
        finally:
            stop_peer()
    steps = int(after["steps"]) - int(before["steps"])
    missed = int(after["missed_steps"]) - int(before["missed_steps"])
    frames = int(after.get("frames", 0)) - int(before.get("frames", 0))
    timeouts = int(after.get("perception_timeouts", 0)) - int(before.get("perception_timeouts", 0))
    return {"rate": steps / wall, "steps": steps, "missed": missed, "rtf": steps / CONTROL_HZ / wall,
            "reset_ok": res.success, "frames": frames, "perception_timeouts": timeouts}


def bench_raw_task(seconds: float) -> dict:
    from lps_sim.tasks import make_task

    task = make_task("pick_place", robot="fr3")
    obs = task.reset(seed=0, profile="nominal")
    q = obs["arm_joint_positions"]
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        for _ in range(50):
            task.step(q, 0.08)
        n += 50
    return {"rate": n / (time.monotonic() - t0)}


def bench_realtime(client: RosClient, topics: dict[str, Collector], tmp: Path, seconds: float) -> dict:
    clock, diag = topics["clock"], topics["diag"]
    clock.clear()
    with _bridge(tmp, "bridge_realtime", clock_mode="realtime"):
        peer = _responder(tmp)
        try:
            client.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=0), timeout=30.0)
            clock.wait_count(2, 10.0)
            sim0, wall0 = clock.snapshot()[-1].clock, time.monotonic()
            _progress(seconds, "real-time mode")
            sim1, wall1 = clock.snapshot()[-1].clock, time.monotonic()
            c = bridge_counters(diag)
        finally:
            _stop(peer)
    sim = (sim1.sec - sim0.sec) + (sim1.nanosec - sim0.nanosec) * 1e-9
    return {"rtf": sim / (wall1 - wall0), "rtf_node": float(c["real_time_factor"]),
            "overruns": int(c["overruns"])}


def main() -> None:
    from lps_train import tiny

    tmp = Path(tempfile.mkdtemp(prefix="lps-bench-bridge-"))
    models = tiny.build_tiny_models(tmp / "models")
    console.print(f"sim bridge benchmark: {SECONDS:.0f} s per run, control {CONTROL_HZ:.0f} Hz; logs in {tmp}")
    with RosClient("lps_bench_bridge") as client:
        # Made once: destroying subscriptions under the spinning executor thread is not safe.
        topics = {"status": Collector(client.node, TaskStatus, "task_status", 100),
                  "diag": Collector(client.node, DiagnosticArray, "diagnostics", 10),
                  "clock": Collector(client.node, Clock, "/clock", 100)}
        def start_policy():
            proc = NodeProcess("lps_steering.nodes.policy_node", tmp / "policy.log", params={
                "decoder": str(models.decoder), "trigger": "observation", "use_sim_time": True,
                "max_observation_age_ms": 1000.0}, extra_args=["--autostart", "--executor", "single"])
            return proc.stop

        def start_responder():
            proc = _responder(tmp)
            return lambda: _stop(proc)

        try:
            policy = bench_lockstep(client, topics, tmp, "policy node", SECONDS, start_policy)
        except RuntimeError as exc:
            policy = None
            console.print(f"[red]policy node not usable, lock-step measured with the responder only[/red]: "
                          f"{str(exc).splitlines()[0]} (logs in {tmp})")
        echo = bench_lockstep(client, topics, tmp, "responder", SECONDS, start_responder)
        raw = bench_raw_task(min(SECONDS, 5.0))
        camera = {}
        for w, h in ((640, 480), (320, 240)):
            size = dict(camera_width=w, camera_height=h)
            camera[(w, h, False)] = bench_lockstep(client, topics, tmp, f"responder camera {w}x{h}", SECONDS,
                                                   start_responder, camera_enabled=True, **size)

            def start_loop(w: int = w):
                stop = start_responder()
                perception = NodeProcess("lps_franka_hw.perception_node", tmp / f"perception_{w}.log",
                                         params=stack_node_parameters("eval", "object_perception", perception="true"))
                return lambda: (perception.stop(), stop())

            camera[(w, h, True)] = bench_lockstep(client, topics, tmp, f"perception {w}x{h}", SECONDS, start_loop,
                                                  object_pose_from_camera=True, **size)
        rt = bench_realtime(client, topics, tmp, SECONDS)

    table = Table(title="sim bridge (lock-step: control steps per wall second)")
    for col in ("measure", "value", "baseline", "ratio", "target"):
        table.add_column(col)
    if policy is not None:
        table.add_row("lock-step, policy node + bridge", f"{policy['rate']:.0f} steps/s",
                      f"{echo['rate']:.0f} (responder)", f"{policy['rate'] / echo['rate']:.2f}", ">= 100 steps/s")
        table.add_row("  = real-time factor", f"{policy['rtf']:.2f}", f"{echo['rtf']:.2f}", "", ">= 1")
        table.add_row("  missed steps (timeouts)", f"{policy['missed']} of {policy['steps']}",
                      f"{echo['missed']} of {echo['steps']}", "", "0")
    else:
        table.add_row("lock-step, policy node + bridge", "not usable (see above)", "", "", ">= 100 steps/s")
        table.add_row("  responder: real-time factor, missed", f"{echo['rtf']:.2f}, {echo['missed']} of "
                      f"{echo['steps']}", "", "", ">= 1, 0")
    table.add_row("lock-step, responder + bridge", f"{echo['rate']:.0f} steps/s",
                  f"{raw['rate']:.0f} (task.step, no ROS)", f"{echo['rate'] / raw['rate']:.2f}", "")
    table.add_row("real-time mode factor (/clock vs wall)", f"{rt['rtf']:.3f}", "1.0", f"{rt['rtf']:.3f}",
                  ">= 0.95")
    table.add_row("  node's own factor (last ~2 s), overruns", f"{rt['rtf_node']:.3f}, {rt['overruns']}", "", "",
                  "")
    for (w, h, loop), r in camera.items():
        what = "camera + object_perception in the loop" if loop else "camera on, no perception"
        table.add_row(f"lock-step, responder + {what}, {w}x{h}", f"{r['rate']:.0f} steps/s",
                      f"{echo['rate']:.0f} (no camera)", f"{r['rate'] / echo['rate']:.2f}", "")
        table.add_row("  frames, perception time-outs, missed steps", f"{r['frames']}, {r['perception_timeouts']}, "
                      f"{r['missed']}", "", "", "-, 0, 0")
    console.print(table)

    console.print(f"peer measured: {'policy node' if policy is not None else 'responder only'}. "
                  "peers: the policy node runs the tiny decoder (no head) with trigger=observation and "
                  "use_sim_time; the responder answers each joint state with a hold command at once.")


if __name__ == "__main__":
    main()
