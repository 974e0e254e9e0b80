"""Policy node timing over real DDS: loop rate and jitter, observation -> command latency, head swaps.

Prints numbers, the targets beside them and ratios against baselines measured in the same run;
asserts nothing. Every process runs with loopback-only discovery in a domain of its own.

  1. timer trigger at 100 Hz for LPS_BENCH_SECONDS (default 60 s): achieved rate, period jitter
     p50/p99/max from the telemetry stamps, missed cycles. Baseline: a bare rclpy timer at 100 Hz
     in its own process (SingleThreadedExecutor, no policy) measured the same way.
  2. observation -> command latency across processes, p50/p99 (trigger=observation): this
     process publishes JointState at 100 Hz and times until the JointTrajectory comes back, for
     the SingleThreaded and the MultiThreaded executor serving the node's services (joint states
     and poses are taken by the control thread itself in both). Baseline: an echo node that
     answers each JointState with a JointTrajectory at once (transport round trip, no policy).
     The round trip counts two DDS hops; the one-hop figure (the target's) comes from telemetry:
     the command's publish stamp minus the joint state's own stamp, both on this machine's clock.
  3. missed cycles during 20 head swaps at 100 Hz (status counter, and telemetry gaps).

Targets: jitter p99 <= 1 ms; obs -> command p99 <= 1 ms; zero missed cycles during swaps.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
os.environ.setdefault('ROS_HOME', tempfile.mkdtemp(prefix='lps-bench-ros-'))
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

import rclpy  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from lps_msgs.msg import SteeringStatus, SteeringTelemetry  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from ros_util import READY_POSE, Collector, NodeProcess, RosClient  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

NODE = 'policy_node'
RATE_HZ = 100.0
SECONDS = float(os.environ.get('LPS_BENCH_SECONDS', '60'))
LATENCY_SECONDS = max(5.0, SECONDS / 4)
SWAPS = 20
console = Console()

BASELINE_TIMER = '''
import sys, rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Header
rclpy.init()
node = rclpy.create_node('bare_timer')
pub = node.create_publisher(Header, 'bare_timer', 1000)
msg = Header()
def tick():
    msg.stamp = node.get_clock().now().to_msg()
    pub.publish(msg)
node.create_timer(1.0 / float(sys.argv[1]), tick)
ex = SingleThreadedExecutor(); ex.add_node(node)
try:
    ex.spin()
except BaseException:
    pass
'''

ECHO_NODE = str(Path(__file__).resolve().parent / 'echo_node.py')  # the no-policy baseline peer


def stats_ms(values_s: np.ndarray) -> tuple[float, float, float]:
    v = np.asarray(values_s) * 1e3
    return float(np.percentile(v, 50)), float(np.percentile(v, 99)), float(v.max())


def stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class StatePublisher:
    """JointState at a fixed rate from a thread sleeping to absolute deadlines; records send times."""

    def __init__(self, client: RosClient, rate_hz: float = RATE_HZ) -> None:
        self.pub = client.node.create_publisher(JointState, 'joint_states', 10)
        self.period = 1.0 / rate_hz
        self.sent: list[int] = []
        self.running = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._msg = JointState(name=[f'fr3_joint{i}' for i in range(1, 8)] + ['fr3_finger_joint1', 'fr3_finger_joint2'],
                               position=list(READY_POSE) + [0.04, 0.04], velocity=[0.0] * 9)
        self._clock = client.node.get_clock()
        # The tiny models observe an object position: a static pose stands in for perception.
        self.pose_pub = client.node.create_publisher(PoseStamped, 'object_pose', 10)
        self._pose = PoseStamped()
        self._pose.pose.position.x, self._pose.pose.position.z = 0.5, 0.05

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            deadline += self.period
            wait = deadline - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            self._msg.header.stamp = self._pose.header.stamp = self._clock.now().to_msg()
            self.pose_pub.publish(self._pose)
            self.sent.append(time.monotonic_ns())
            self.pub.publish(self._msg)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


def node_process(tmp: Path, name: str, params: dict, executor: str = 'single') -> NodeProcess:
    return NodeProcess('lps_steering.nodes.policy_node', tmp / f'{name}.log', params=params,
                       extra_args=['--executor', executor])


def start_node(client: RosClient, proc: NodeProcess) -> None:
    client.wait_for_node(NODE, 30.0)
    if not (client.change_state(NODE, 'configure', 60.0) and client.change_state(NODE, 'activate')):
        raise RuntimeError(f'policy node did not start:\n{proc.log()}')


def periods_from(stamps: list[float]) -> np.ndarray:
    return np.diff(np.asarray(stamps))


def bench_baseline_timer(client: RosClient, tmp: Path, seconds: float) -> dict:
    got = Collector(client.node, Header, 'bare_timer', qos=1000)
    log = open(tmp / 'bare_timer.log', 'w')  # noqa: SIM115
    import subprocess
    proc = subprocess.Popen([sys.executable, '-c', BASELINE_TIMER, str(RATE_HZ)], stdout=log, stderr=log)
    try:
        got.wait_count(10, 30.0)
        got.clear()
        time.sleep(seconds)
        msgs = got.snapshot()
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        client.node.destroy_subscription(got.sub)
    periods = periods_from([stamp_s(m.stamp) for m in msgs])
    return {'n': len(msgs), 'rate': 1.0 / periods.mean(), 'jitter': stats_ms(np.abs(periods - 1 / RATE_HZ))}


def bench_timer_loop(client: RosClient, tmp: Path, models: dict, seconds: float) -> dict:
    telemetry = Collector(client.node, SteeringTelemetry, f'{NODE}/telemetry', qos=1000)
    status = Collector(client.node, SteeringStatus, f'{NODE}/status')
    states = StatePublisher(client)
    states.start()
    params = {'decoder': str(models['decoder']), 'steering_head': str(models['lps']),
              'command_rate_hz': RATE_HZ}
    with node_process(tmp, 'timer', params) as proc:
        start_node(client, proc)
        telemetry.wait_count(20, 10.0)
        telemetry.clear()
        n_status = len(status.snapshot())
        with console.status(f'timer trigger, {seconds:.0f} s at {RATE_HZ:.0f} Hz'):
            time.sleep(seconds)
        msgs = telemetry.snapshot()
        s = status.wait_count(n_status + 1, 3.0)[-1]
        swap = bench_swaps(client, telemetry, status, models)
    states.stop()
    for c in (telemetry, status):
        client.node.destroy_subscription(c.sub)
    periods = periods_from([stamp_s(m.header.stamp) for m in msgs])
    inference = np.array([m.inference_ms for m in msgs if m.replanned]) / 1e3
    cycle = np.array([m.cycle_ms for m in msgs]) / 1e3
    return {'n': len(msgs), 'rate': 1.0 / periods.mean(), 'jitter': stats_ms(np.abs(periods - 1 / RATE_HZ)),
            'missed': s.missed_cycles, 'cycles': s.cycles, 'inference': stats_ms(inference),
            'cycle': stats_ms(cycle), 'holds': sum(m.safety_state == 2 for m in msgs), 'swap': swap}


def bench_swaps(client: RosClient, telemetry: Collector, status: Collector, models: dict) -> dict:
    before = status.wait_count(len(status.snapshot()) + 1, 3.0)[-1].missed_cycles
    telemetry.clear()
    load_ms = []
    for i in range(SWAPS):
        path = str(models['lpds' if i % 2 == 0 else 'lps'])
        t0 = time.perf_counter()
        [res] = client.set_parameters(NODE, {'steering_head': path})
        load_ms.append((time.perf_counter() - t0) * 1e3)
        if not res.successful:
            raise RuntimeError(f'head swap {i} refused: {res.reason}')
        time.sleep(0.25)
    after = status.wait_count(len(status.snapshot()) + 1, 3.0)[-1]
    msgs = telemetry.snapshot()
    cycles = [m.cycle for m in msgs]
    gaps = int(sum(b - a - 1 for a, b in zip(cycles, cycles[1:], strict=False)))
    periods = periods_from([stamp_s(m.header.stamp) for m in msgs])
    return {'missed': after.missed_cycles - before, 'swaps': after.head_swaps, 'gaps': gaps,
            'late': int(np.sum(periods > 2.0 / RATE_HZ)), 'jitter': stats_ms(np.abs(periods - 1 / RATE_HZ)),
            'call_ms': stats_ms(np.array(load_ms) / 1e3)}


def bench_latency(client: RosClient, tmp: Path, models: dict | None, executor: str, seconds: float) -> dict:
    commands = Collector(client.node, JointTrajectory, 'fr3_arm_controller/joint_trajectory', qos=1000)
    # One hop: the node stamps telemetry when it publishes the command, and carries the joint
    # state's own stamp (set here just before publishing): same machine, same clock.
    telemetry = Collector(client.node, SteeringTelemetry, f'{NODE}/telemetry', qos=1000) if models else None
    states = StatePublisher(client)
    if models is None:
        import subprocess
        log = open(tmp / 'echo.log', 'w')  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, ECHO_NODE], stdout=log, stderr=log)
        time.sleep(2.0)

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()
    else:
        params = {'decoder': str(models['decoder']), 'steering_head': str(models['lps']),
                  'trigger': 'observation', 'command_rate_hz': RATE_HZ,
                  'max_observation_age_ms': 2000.0}
        node = node_process(tmp, f'latency_{executor}', params, executor)
        # Activation's start-up checks need fresh joint states.
        states.start()
        try:
            start_node(client, node)
        except Exception:
            node.stop()
            raise
        finally:
            states.stop()
        stop = node.stop
    try:
        # Warm up discovery, then measure from a clean slate: k-th state <-> k-th command.
        states.start()
        commands.wait_count(20, 20.0)
        states.stop()
        time.sleep(0.2)
        commands.clear()
        states.sent.clear()
        if telemetry is not None:
            telemetry.clear()
        states.start()
        time.sleep(seconds)
        states.stop()
        time.sleep(0.2)
        received = list(commands.stamps)
    finally:
        stop()
        client.node.destroy_subscription(commands.sub)
    # Each state is answered by the first command that arrives before the next state is sent;
    # a state with no command in its period counts as unanswered.
    sent, recv = np.array(states.sent), np.array(received)
    idx = np.searchsorted(recv, sent)
    ok = idx < len(recv)
    nxt = np.append(sent[1:], np.iinfo(np.int64).max)
    ok[ok] &= recv[idx[ok]] < nxt[ok]
    lat = (recv[idx[ok]] - sent[ok]) * 1e-9
    out = {'sent': len(sent), 'received': int(ok.sum()), 'latency': stats_ms(lat)}
    if telemetry is not None:
        msgs = [m for m in telemetry.snapshot() if m.command]
        hop = np.array([stamp_s(m.header.stamp) - stamp_s(m.observation_stamp) for m in msgs])
        out['one_hop'] = stats_ms(hop)
    return out


def main() -> None:
    from lps_train import tiny

    tmp = Path(tempfile.mkdtemp(prefix='lps-bench-node-'))
    built = tiny.build_tiny_models(tmp / 'models')
    models = {'decoder': built.decoder, **built.heads}
    console.print(f'policy node benchmark: {RATE_HZ:.0f} Hz, timer run {SECONDS:.0f} s, latency runs '
                  f'{LATENCY_SECONDS:.0f} s, {SWAPS} head swaps; logs in {tmp}')
    with RosClient('lps_bench') as client:
        base = bench_baseline_timer(client, tmp, min(SECONDS, 20.0))
        loop = bench_timer_loop(client, tmp, models, SECONDS)
        echo = bench_latency(client, tmp, None, 'single', LATENCY_SECONDS)
        lat = {ex: bench_latency(client, tmp, models, ex, LATENCY_SECONDS) for ex in ('single', 'multi')}

    def fmt(t: tuple[float, float, float]) -> str:
        return f'{t[0]:.3f} / {t[1]:.3f} / {t[2]:.3f}'

    table = Table(title='policy node loop (ms: p50 / p99 / max)')
    for col in ('measure', 'policy node', 'baseline', 'ratio p99', 'target'):
        table.add_column(col)
    table.add_row('achieved rate (Hz)', f"{loop['rate']:.2f}", f"{base['rate']:.2f}", '', f'{RATE_HZ:.0f}')
    table.add_row('period jitter |T - 10 ms|', fmt(loop['jitter']), fmt(base['jitter']),
                  f"{loop['jitter'][1] / base['jitter'][1]:.2f}", 'p99 <= 1 ms')
    table.add_row('missed cycles', f"{loop['missed']} of {loop['cycles']}", '', '', '0')
    table.add_row('cycle wall time', fmt(loop['cycle']), '', '', '')
    table.add_row('inference (replans)', fmt(loop['inference']), '', '', '')
    table.add_row('hold cycles', str(loop['holds']), '', '', '0')
    for ex, r in lat.items():
        table.add_row(f'obs -> command round trip ({ex} executor)', fmt(r['latency']), fmt(echo['latency']),
                      f"{r['latency'][1] / echo['latency'][1]:.2f}", 'p99 <= 1 ms')
        table.add_row(f'  one hop: state stamp -> command publish ({ex})', fmt(r['one_hop']), '', '',
                      'p99 <= 1 ms')
        table.add_row(f'  states sent / answered ({ex})', f"{r['sent']} / {r['received']}",
                      f"{echo['sent']} / {echo['received']}", '', 'equal')
    sw = loop['swap']
    table.add_row(f'missed cycles during {SWAPS} swaps', f"{sw['missed']} (status), {sw['gaps']} cycle gaps, "
                  f"{sw['late']} periods > 20 ms", '', '', '0')
    table.add_row('jitter during swaps', fmt(sw['jitter']), fmt(base['jitter']),
                  f"{sw['jitter'][1] / base['jitter'][1]:.2f}", 'p99 <= 1 ms')
    table.add_row('set_parameters call (load + validate)', fmt(sw['call_ms']), '', '', '')
    console.print(table)
    console.print('baselines: bare rclpy 100 Hz timer (SingleThreadedExecutor, no policy); echo node answering each '
                  'JointState at once (transport round trip, no policy)')


if __name__ == '__main__':
    rclpy.logging.set_logger_level('lps_bench', rclpy.logging.LoggingSeverity.WARN)
    main()
