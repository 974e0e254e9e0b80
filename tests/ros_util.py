"""Test harness for real ROS nodes: start them as processes, drive them over DDS.

Everything here speaks the real interfaces: lifecycle services (`<node>/change_state`,
`<node>/get_state`), parameter services (`<node>/set_parameters`) and topics. A background
executor spins the test's own client node; every wait has a timeout, so a dead node fails a
test instead of hanging it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue, SetParametersResult
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.exceptions import InvalidHandle
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

TRANSITIONS = {
    'configure': Transition.TRANSITION_CONFIGURE,
    'cleanup': Transition.TRANSITION_CLEANUP,
    'activate': Transition.TRANSITION_ACTIVATE,
    'deactivate': Transition.TRANSITION_DEACTIVATE,
    'shutdown_unconfigured': Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    'shutdown_inactive': Transition.TRANSITION_INACTIVE_SHUTDOWN,
    'shutdown_active': Transition.TRANSITION_ACTIVE_SHUTDOWN,
}


def _param_value(value: Any) -> ParameterValue:
    v = ParameterValue()
    if isinstance(value, bool):
        v.type, v.bool_value = ParameterType.PARAMETER_BOOL, value
    elif isinstance(value, int):
        v.type, v.integer_value = ParameterType.PARAMETER_INTEGER, value
    elif isinstance(value, float):
        v.type, v.double_value = ParameterType.PARAMETER_DOUBLE, value
    elif isinstance(value, str):
        v.type, v.string_value = ParameterType.PARAMETER_STRING, value
    elif isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
        v.type, v.string_array_value = ParameterType.PARAMETER_STRING_ARRAY, list(value)
    elif isinstance(value, (list, tuple)):
        v.type, v.double_array_value = ParameterType.PARAMETER_DOUBLE_ARRAY, [float(x) for x in value]
    else:
        raise TypeError(f'no ROS parameter type for {value!r}')
    return v


def ros_arg(name: str, value: Any) -> str:
    """`-p` argument text for a parameter value (YAML syntax, as rcl parses it)."""
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, (list, tuple)):
        text = '[' + ', '.join(repr(x) if isinstance(x, str) else str(x) for x in value) + ']'
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = str(value)
    return f'{name}:={text}'


class NodeProcess:
    """A node module run as its own process (`python -m module --ros-args ...`), logs to a file.

    Stopped with SIGINT (the node's clean path), then SIGKILL if it does not exit in time.
    """

    def __init__(self, module: str, log_path: Path, params: dict[str, Any] | None = None,
                 name: str | None = None, extra_args: Iterable[str] = (),
                 executable: str | None = None) -> None:
        # `executable`: an installed console script instead of `python -m module`.
        cmd = [executable] if executable else [sys.executable, '-m', module]
        cmd += [*extra_args, '--ros-args']
        if name:
            cmd += ['-r', f'__node:={name}']
        for key, value in (params or {}).items():
            cmd += ['-p', ros_arg(key, value)]
        self.log_path = log_path
        self._log = open(log_path, 'w')  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0')
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Collector:
    """Keeps every message received on a topic; `wait_for` polls a predicate with a timeout."""

    def __init__(self, node: Node, msg_type: type, topic: str, qos: QoSProfile | int = 100) -> None:
        self.messages: list[Any] = []
        self.stamps: list[int] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.hooks: list[Callable[[Any], None]] = []
        self.sub = node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg: Any) -> None:
        now = time.monotonic_ns()
        for hook in self.hooks:
            hook(msg)
        with self._cond:
            self.messages.append(msg)
            self.stamps.append(now)
            self._cond.notify_all()

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.stamps.clear()

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float, what: str = '') -> list[Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f'timed out after {timeout} s waiting for {what or predicate}; '
                                       f'{len(self.messages)} messages received')
                self._cond.wait(min(left, 0.1))
            return list(self.messages)

    def wait_count(self, n: int, timeout: float) -> list[Any]:
        return self.wait_for(lambda m: len(m) >= n, timeout, f'{n} messages on {self.sub.topic_name}')

    def wait_matched(self, timeout: float = 20.0) -> None:
        """Until a publisher is matched: what it sends before that is lost to this subscription."""
        deadline = time.monotonic() + timeout
        while self.sub.get_publisher_count() < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f'no publisher matched {self.sub.topic_name} within {timeout} s')
            time.sleep(0.02)


class RosClient:
    """The test's own node, spun in a background thread, with blocking helpers with timeouts."""

    def __init__(self, name: str = 'lps_test_client') -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._clients: dict[tuple[type, str], Any] = {}

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except InvalidHandle:
                # A publisher or subscription the test destroyed while this thread waited on it:
                # the executor builds its wait set afresh on the next call.
                continue
            except Exception:  # context shut down under the executor at teardown
                if self.context.ok():
                    raise
                return

    def close(self) -> None:
        rclpy.try_shutdown(context=self.context)
        self._thread.join(5)
        self.executor.shutdown(timeout_sec=1.0)

    def __enter__(self) -> RosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 10.0,
             resend_every: float | None = None) -> Any:
        """One service call; `resend_every` repeats the request (idempotent services only).

        A server that was just restarted under the same name is matched by `wait_for_service`
        through its dead predecessor's endpoints until their DDS lease runs out, and a request
        written before the new server's reader matched is never delivered: the call would wait
        for an answer that cannot come. Repeating the request reaches the new server.
        """
        key = (srv_type, name)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, name)
        client = self._clients[key]
        deadline = time.monotonic() + timeout
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'service {name} not available after {timeout} s')
        done = threading.Event()
        futures: list[Any] = []
        while not done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                for f in futures:
                    client.remove_pending_request(f)
                raise TimeoutError(f'service {name} did not answer in {timeout} s '
                                   f'({len(futures)} request(s) sent)')
            future = client.call_async(request)
            future.add_done_callback(lambda _f: done.set())
            futures.append(future)
            done.wait(left if resend_every is None else min(left, resend_every))
        answered = next(f for f in futures if f.done())
        for f in futures:
            if f is not answered and not f.done():
                client.remove_pending_request(f)
        return answered.result()

    def change_state(self, node: str, transition: str, timeout: float = 20.0) -> bool:
        req = ChangeState.Request()
        req.transition.id = TRANSITIONS[transition]
        return self.call(ChangeState, f'{node}/change_state', req, timeout).success

    def get_state(self, node: str, timeout: float = 10.0) -> str:
        return self.call(GetState, f'{node}/get_state', GetState.Request(), timeout,
                         resend_every=2.0).current_state.label

    def set_parameters(self, node: str, values: dict[str, Any], timeout: float = 20.0) -> list[SetParametersResult]:
        req = SetParameters.Request()
        req.parameters = [Parameter(name=k, value=_param_value(v)) for k, v in values.items()]
        return list(self.call(SetParameters, f'{node}/set_parameters', req, timeout, resend_every=2.0).results)

    def get_parameter(self, node: str, name: str, timeout: float = 10.0) -> ParameterValue:
        req = GetParameters.Request(names=[name])
        return self.call(GetParameters, f'{node}/get_parameters', req, timeout, resend_every=2.0).values[0]

    def wait_for_node(self, node: str, timeout: float = 20.0) -> None:
        """Blocks until the node's lifecycle services answer (the process is up and discovered)."""
        self.get_state(node, timeout)


READY_POSE = (0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398)


class JointStateSource:
    """Publishes fr3 joint states at a fixed rate from the test process; `q` may be changed live.

    Stands in for the robot where a test needs exact control of what the policy sees (NaN
    values, silence); the real interface (sensor_msgs/JointState, names, stamps) is kept.
    """

    def __init__(self, client: RosClient, rate_hz: float = 100.0, topic: str = 'joint_states',
                 robot: str = 'fr3', object_position: tuple[float, float, float] | None = (0.5, 0.0, 0.05)) -> None:
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState

        self.q = list(READY_POSE)
        self.width = 0.08
        # Arm joint velocities; None publishes a JointState without any (positions only).
        self.velocity: list[float] | None = [0.0] * 7
        self.enabled = True
        # A builtin_interfaces/Time to stamp every message with (a frozen publisher), or None.
        self.frozen_stamp = None
        self.published = 0
        self._node = client.node
        self._msg = JointState()
        self._msg.name = [f'{robot}_joint{i}' for i in range(1, 8)] + [
            f'{robot}_finger_joint1', f'{robot}_finger_joint2']
        self._pub = client.node.create_publisher(JointState, topic, 10)
        # The perception side: a static object pose, published with every joint state.
        self.object_position = object_position
        self._pose = PoseStamped()
        self._pose.header.frame_id = 'base'
        self._pose_pub = client.node.create_publisher(PoseStamped, 'object_pose', 10)
        self._timer = client.node.create_timer(1.0 / rate_hz, self._tick)

    def _tick(self) -> None:
        if self.enabled:
            self.publish()

    def publish(self) -> None:
        """Publish one joint state (and object pose) now, whether or not the timer is enabled."""
        msg = self._msg
        msg.header.stamp = self.frozen_stamp or self._node.get_clock().now().to_msg()
        msg.position = list(self.q) + [self.width / 2, self.width / 2]
        msg.velocity = [] if self.velocity is None else list(self.velocity) + [0.0, 0.0]
        if self.object_position is not None:
            self._pose.header.stamp = msg.header.stamp
            p = self._pose.pose.position
            p.x, p.y, p.z = self.object_position
            self._pose_pub.publish(self._pose)
        self._pub.publish(msg)
        self.published += 1

    def close(self) -> None:
        self._timer.cancel()
        self._node.destroy_timer(self._timer)


REPO = Path(__file__).resolve().parents[1]
# Where this repository's packages keep their `config/` in the source tree.
PACKAGE_SOURCES = {'lps_steering': REPO / 'ros2_ws' / 'src' / 'lps_steering',
                   'lps_franka_hw': REPO / 'ros2_ws' / 'src' / 'lps_franka_hw', 'lps_sim': REPO / 'sim'}


def stack_node_parameters(stack: str, node: str, **arguments: str) -> dict[str, Any]:
    """A node's parameters as `launch/stacks.yaml` starts it: its parameter files in order (from the
    source tree), then the stack's overrides, for these launch argument values."""
    import yaml

    sys.path.insert(0, str(REPO / 'launch'))
    import lps_stacks

    nodes, _ = lps_stacks.resolve(lps_stacks.load().stack(stack), arguments,
                                  lambda pkg: str(PACKAGE_SOURCES[pkg]))
    spec = next(n for n in nodes if n.name == node)
    params: dict[str, Any] = {}
    for path in spec.parameter_files:
        data = yaml.safe_load(Path(path).read_text()) or {}
        for key in ('/**', '**', node, f'/{node}', f'/**/{node}'):
            params.update((data.get(key) or {}).get('ros__parameters', {}))
    return params | spec.parameters


def bridge_counters(diagnostics: Collector, timeout: float = 5.0) -> dict[str, str]:
    """The sim bridge's counters (`diagnostics` key -> value) from its next 1 Hz message."""
    diagnostics.clear()
    return {kv.key: kv.value for kv in diagnostics.wait_count(1, timeout)[-1].status[0].values}
