"""Node demo (`make demo-node`): fake arm + lifecycle policy node over DDS, loop statistics at the end.

1. builds a tiny decoder and heads with `lps_train.tiny` into build/demo-models (once; kept
   while their manifests still validate),
2. starts `fake_robot` (a kinematic arm) and `policy_node` as processes, loopback-only DDS,
3. drives the policy node through configure and activate, swaps the steering head half-way,
4. after the run prints rate, jitter, inference and safety statistics, and shuts down cleanly.

`make demo` (the evaluation through the MuJoCo bridge) is the main job; this one needs no trained
models and shows the node alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

REPO = Path(__file__).resolve().parents[1]
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_HOME', str(REPO / '.ros'))


@dataclass
class Args:
    seconds: float = 15.0
    """how long the policy runs"""
    rate_hz: float = 100.0
    """command rate of the policy node"""
    build_dir: Path = REPO / 'build' / 'demo-models'
    """where the tiny models are built (reused when valid)"""
    domain_id: int = 0
    """ROS_DOMAIN_ID of the demo graph; 0 picks one from the process id"""


def build_models(out: Path) -> dict[str, Path]:
    from lps_steering.core import ManifestError, load_manifest

    names = ['tiny_decoder', 'tiny_head_lps', 'tiny_head_lpds']
    paths = {n: out / f'{n}.onnx' for n in names}
    try:
        for p in paths.values():
            load_manifest(p)
        return paths
    except (ManifestError, OSError):
        pass
    from lps_train import tiny

    out.mkdir(parents=True, exist_ok=True)
    tiny.build_tiny_models(out, head_types=('lps', 'lpds'))
    return paths


def start(module: str, log: Path, *args: str) -> subprocess.Popen:
    with open(log, 'w') as f:
        return subprocess.Popen([sys.executable, '-m', module, *args], stdout=f, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONUNBUFFERED='1'))


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def main(args: Args) -> int:
    os.environ['ROS_DOMAIN_ID'] = str(args.domain_id or 150 + os.getpid() % 80)
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    console = Console()
    models = build_models(args.build_dir)
    console.print(f'models: {", ".join(str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in models.values())}')

    import rclpy
    from lifecycle_msgs.srv import ChangeState
    from lps_msgs.msg import SteeringTelemetry
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import SingleThreadedExecutor

    logs = Path(tempfile.mkdtemp(prefix='lps-demo-'))
    robot = start('lps_steering.nodes.fake_robot', logs / 'fake_robot.log')
    policy = start('lps_steering.nodes.policy_node', logs / 'policy_node.log', '--ros-args',
                   '-p', f'decoder:={models["tiny_decoder"]}', '-p', f'steering_head:={models["tiny_head_lps"]}',
                   '-p', f'command_rate_hz:={args.rate_hz}')
    rclpy.init()
    node = rclpy.create_node('lps_demo')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    telemetry: list[SteeringTelemetry] = []
    node.create_subscription(SteeringTelemetry, 'policy_node/telemetry', telemetry.append, 1000)
    spinner = threading.Thread(target=lambda: _spin(executor), daemon=True)
    spinner.start()

    def call(srv_type, name, request, timeout=30.0):
        client = node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'{name} not available after {timeout} s (see {logs})')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f'{name} did not answer in {timeout} s (see {logs})')
        return future.result()

    def transition(label: str) -> None:
        req = ChangeState.Request()
        req.transition.label = label
        if not call(ChangeState, 'policy_node/change_state', req).success:
            raise RuntimeError(f'policy_node refused {label}; log: {logs / "policy_node.log"}')

    def set_head(path: Path) -> str:
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(path))
        req = SetParameters.Request(parameters=[Parameter(name='steering_head', value=value)])
        res = call(SetParameters, 'policy_node/set_parameters', req).results[0]
        return '' if res.successful else res.reason

    rc = 1
    try:
        transition('configure')
        transition('activate')
        swapped = False
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task('policy running', total=args.seconds)
            t0 = time.monotonic()
            while (elapsed := time.monotonic() - t0) < args.seconds:
                if not swapped and elapsed > args.seconds / 2:
                    reason = set_head(models['tiny_head_lpds'])
                    console.print(f'head swap to lpds: {"ok" if not reason else reason}')
                    swapped = True
                progress.update(task, completed=elapsed)
                time.sleep(0.1)
        transition('deactivate')
        rc = 0
    finally:
        codes = {'policy_node': stop(policy), 'fake_robot': stop(robot)}
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
        spinner.join(2)
    msgs = list(telemetry)
    if not msgs:
        console.print(f'[red]no telemetry received; logs in {logs}')
        return 1
    print_stats(console, Table, msgs, args.rate_hz, codes)
    console.print(f'logs: {logs}')
    return rc if all(c == 0 for c in codes.values()) else 1


def _spin(executor) -> None:
    import rclpy

    while rclpy.ok():
        try:
            executor.spin_once(timeout_sec=0.05)
        except Exception:  # the context went down under the executor at shutdown
            return


def print_stats(console, Table, msgs, rate_hz: float, codes: dict[str, int]) -> None:
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs])
    periods = np.diff(stamps)
    jitter = np.abs(periods - 1.0 / rate_hz) * 1e3
    inference = np.array([m.inference_ms for m in msgs if m.replanned])
    cycle = np.array([m.cycle_ms for m in msgs])
    states = np.array([m.safety_state for m in msgs])
    heads = sorted({m.head_id for m in msgs})
    table = Table(title=f'policy node, {len(msgs)} cycles')
    table.add_column('measure')
    table.add_column('value')
    table.add_row('achieved rate', f'{1.0 / periods.mean():.2f} Hz (target {rate_hz:g})')
    table.add_row('period jitter p50 / p99 / max', ' / '.join(f'{np.percentile(jitter, q):.3f}' for q in (50, 99))
                  + f' / {jitter.max():.3f} ms')
    table.add_row('inference p50 / p99', f'{np.percentile(inference, 50):.3f} / {np.percentile(inference, 99):.3f} ms'
                  f' ({len(inference)} chunks)')
    table.add_row('cycle wall time p50 / p99', f'{np.percentile(cycle, 50):.3f} / {np.percentile(cycle, 99):.3f} ms')
    table.add_row('safety ok / limited / hold', ' / '.join(str(int((states == s).sum())) for s in (0, 1, 2)))
    reasons = sorted({m.safety_reason for m in msgs if m.safety_state != 0})
    table.add_row('safety reasons', '; '.join(reasons)[:200] or '-')
    table.add_row('heads', ', '.join(heads))
    table.add_row('exit codes', ', '.join(f'{k} {v}' for k, v in codes.items()))
    console.print(table)


if __name__ == '__main__':
    sys.exit(main(tyro.cli(Args)))
