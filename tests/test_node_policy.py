"""The lifecycle policy node over real DDS: a node process driven by lifecycle and parameter services.

Models are real tiny ONNX networks built by `lps_train.tiny`; the refused variants are made from
them the way such files go wrong in practice (bytes damaged, a manifest edited by hand, a head
exported against another decoder).
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from lps_msgs.msg import SteeringStatus, SteeringTelemetry
from ros_util import READY_POSE, Collector, JointStateSource, NodeProcess, RosClient
from std_msgs.msg import Float64
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

pytestmark = pytest.mark.ros

NODE = 'policy_node'
MODULE = 'lps_steering.nodes.policy_node'
ARM = [f'fr3_joint{i}' for i in range(1, 8)]
MAX_STEP = 0.02


# ---------------------------------------------------------------------------------------- models
@pytest.fixture(scope='module')
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from lps_train import tiny

    out = tmp_path_factory.mktemp('models')
    built = tiny.build_tiny_models(out)
    paths = {'decoder': Path(built.decoder), **{k: Path(v) for k, v in built.heads.items()}}
    paths.update(_broken_variants(paths, out))
    return paths


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix('.json'), dst.with_suffix('.json'))
    return dst


def _edit_manifest(onnx: Path, **changes: object) -> None:
    path = onnx.with_suffix('.json')
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _broken_variants(p: dict[str, Path], out: Path) -> dict[str, Path]:
    from lps_steering.core import sha256_file

    v = {}
    # A file damaged after export: its hash no longer matches the manifest.
    v['damaged'] = _copy_model(p['lps'], out / 'damaged.onnx')
    data = bytearray(v['damaged'].read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    v['damaged'].write_bytes(bytes(data))
    # Not an ONNX graph at all, with a manifest whose hash was updated to match it: ORT must refuse.
    v['corrupt'] = _copy_model(p['lps'], out / 'corrupt.onnx')
    v['corrupt'].write_bytes(b'this is not a protobuf' * 10)
    _edit_manifest(v['corrupt'], onnx_sha256=sha256_file(v['corrupt']))
    # A head exported against another decoder.
    v['other_decoder'] = _copy_model(p['lps'], out / 'other_decoder.onnx')
    _edit_manifest(v['other_decoder'], decoder_sha256='0' * 64)
    # A manifest whose declared shapes disagree with the graph.
    v['wrong_shape'] = _copy_model(p['lps'], out / 'wrong_shape.onnx')
    manifest = json.loads(v['wrong_shape'].with_suffix('.json').read_text())
    for spec in manifest['outputs']:
        spec['shape'] = [-1, spec['shape'][-1] + 3]
    _edit_manifest(v['wrong_shape'], outputs=manifest['outputs'])
    return v


# ---------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope='module')
def client() -> RosClient:
    with RosClient() as c:
        yield c


def _start(tmp_path: Path, name: str, **params: object) -> NodeProcess:
    return NodeProcess(MODULE, tmp_path / f'{name}.log', params=params)


def _wait_log(proc: NodeProcess, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = proc.log()
        if text in log:
            return log
        time.sleep(0.05)
    raise TimeoutError(f'{text!r} not in the node log after {timeout} s:\n{proc.log()}')


def _last(collector: Collector, timeout: float = 5.0, after: int = 0):
    return collector.wait_count(after + 1, timeout)[-1]


# ---------------------------------------------------------------------------------------- tests
@contextmanager
def _start_lock_step(tmp_path: Path, name: str, client: RosClient, models: dict[str, Path],
                     telemetry: Collector, source: JointStateSource) -> Iterator[NodeProcess]:
    """An active node with trigger=observation whose joint-state source is then silenced, so the
    test publishes every joint state itself (lock-step, like the sim bridge)."""
    with _start(tmp_path, name, decoder=str(models['decoder']), trigger='observation',
                max_observation_age_ms=5000.0, watchdog_timeout_ms=5000.0) as proc:
        client.wait_for_node(NODE)
        # Activation needs a fresh joint state (start-up check), so the source runs until then.
        assert client.change_state(NODE, 'configure') and client.change_state(NODE, 'activate')
        telemetry.wait_count(5, 5.0)
        source.enabled = False
        time.sleep(0.3)
        yield proc


def test_lifecycle_commands_and_holds(tmp_path: Path, client: RosClient, models: dict[str, Path]) -> None:
    """configure refusal -> configure -> activate -> commands -> NaN hold -> stale hold -> deactivate."""
    commands = Collector(client.node, JointTrajectory, 'fr3_arm_controller/joint_trajectory')
    gripper = Collector(client.node, Float64, 'gripper_command')
    telemetry = Collector(client.node, SteeringTelemetry, f'{NODE}/telemetry')
    status = Collector(client.node, SteeringStatus, f'{NODE}/status')
    source = JointStateSource(client)
    # jerk_scale 0: the plain step-limited filter (one hold at the measured pose on deactivation);
    # the jerk-limited default is exercised in test_node_safety.py.
    with _start(tmp_path, 'lifecycle', max_joint_step=MAX_STEP, max_observation_age_ms=150.0,
                jerk_scale=0.0) as proc:
        client.wait_for_node(NODE)
        assert client.get_state(NODE) == 'unconfigured'

        # No decoder: configure fails, the node says why and stays unconfigured.
        assert client.change_state(NODE, 'configure') is False
        assert '`decoder_path` must be a non-empty path' in _wait_log(proc, 'configure failed')
        assert client.get_state(NODE) == 'unconfigured'
        # A decoder file that does not exist: refused with the path in the reason.
        [res] = client.set_parameters(NODE, {'decoder': str(tmp_path / 'nope.onnx')})
        assert res.successful
        assert client.change_state(NODE, 'configure') is False
        assert 'nope.onnx' in _wait_log(proc, 'nope.onnx')

        [res] = client.set_parameters(NODE, {'decoder': str(models['decoder']),
                                             'steering_head': str(models['lps'])})[:1]
        assert res.successful
        assert client.change_state(NODE, 'configure') is True
        assert client.get_state(NODE) == 'inactive'
        # Configure-time parameters are refused while configured, with the reason.
        [res] = client.set_parameters(NODE, {'command_rate_hz': 50.0})
        assert not res.successful and 'cleanup first' in res.reason
        assert commands.snapshot() == []  # inactive: nothing reaches the robot

        assert client.change_state(NODE, 'activate') is True
        msgs = commands.wait_count(30, 5.0)
        for msg in msgs:
            assert list(msg.joint_names) == ARM
            assert len(msg.points) == 1
            q = np.array(msg.points[0].positions)
            assert q.shape == (7,) and np.all(np.isfinite(q))
            # The policy moves from the measured pose by at most the step limit per command.
            assert np.max(np.abs(q - np.array(READY_POSE))) <= MAX_STEP * len(msgs) + 1e-9
            tfs = msg.points[0].time_from_start
            assert (tfs.sec, tfs.nanosec) == (0, 10_000_000)
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (0, 0)
        for a, b in zip(msgs, msgs[1:], strict=False):
            step = np.abs(np.array(b.points[0].positions) - np.array(a.points[0].positions))
            assert step.max() <= MAX_STEP + 1e-9
        assert gripper.wait_count(5, 2.0)
        t = _last(telemetry)
        assert t.head_type == 'lps' and t.decoder_id and t.cycle > 0 and t.chunk_count > 0
        assert math.isfinite(t.inference_ms) and t.inference_ms > 0
        status.wait_for(lambda m: any(s.lifecycle_state == 'active' and s.cycles > 0 for s in m), 3.0)

        # NaN in the joint state: the node holds and says which field; the command stays finite.
        source.q = [math.nan] + list(READY_POSE[1:])
        n = len(telemetry.snapshot())
        held = telemetry.wait_for(lambda m: any(x.safety_state == 2 for x in m[n:]), 3.0, 'NaN hold')
        hold = next(x for x in held[n:] if x.safety_state == 2)
        assert '`position[0]`' in hold.safety_reason and 'not finite' in hold.safety_reason, hold.safety_reason
        assert np.all(np.isfinite(np.array(hold.command)))
        # The fault is latched: resume is refused while it lasts, the hold outlives the cause.
        res = client.call(Trigger, f'{NODE}/resume', Trigger.Request())
        assert not res.success and 'still present' in res.message and 'position[0]' in res.message
        source.q = list(READY_POSE)
        time.sleep(0.3)
        n = len(telemetry.snapshot())
        latched = telemetry.wait_count(n + 10, 3.0)[n:]
        assert all(x.safety_state == 2 and 'waiting for ~/resume' in x.safety_reason for x in latched)
        res = client.call(Trigger, f'{NODE}/resume', Trigger.Request())
        assert res.success, res.message
        n = len(telemetry.snapshot())
        telemetry.wait_for(lambda m: any(x.safety_state != 2 for x in m[n:]), 3.0, 'resumed')

        # Joint states stop: stale -> hold.
        source.enabled = False
        n = len(telemetry.snapshot())
        held = telemetry.wait_for(lambda m: any(x.safety_state == 2 for x in m[n:]), 3.0, 'stale hold')
        reason = next(x for x in held[n:] if x.safety_state == 2).safety_reason
        assert 'stale' in reason or 'old' in reason, reason

        # Deactivate: loop stops, one hold command at the measured (last received) position.
        source.q = [0.1, -0.7, 0.05, -2.3, 0.0, 1.6, 0.8]
        source.enabled = True
        time.sleep(0.3)
        n = len(commands.snapshot())
        assert client.change_state(NODE, 'deactivate') is True
        assert client.get_state(NODE) == 'inactive'
        after = commands.wait_count(n + 1, 3.0)
        time.sleep(0.3)
        assert len(commands.snapshot()) <= len(after) + 0  # nothing after the hold
        np.testing.assert_allclose(after[-1].points[0].positions, source.q, atol=1e-12)
        status.wait_for(lambda m: m[-1].lifecycle_state == 'inactive', 3.0, 'inactive status')

        assert client.change_state(NODE, 'cleanup') is True
        assert client.get_state(NODE) == 'unconfigured'
        # Unconfigured, a configure-time parameter may change again.
        [res] = client.set_parameters(NODE, {'command_rate_hz': 50.0})
        assert res.successful
        assert proc.stop() == 0
    source.close()


def test_head_refusals_keep_running_head(tmp_path: Path, client: RosClient, models: dict[str, Path]) -> None:
    """Each bad head or parameter is refused with its reason; the running head keeps running."""
    telemetry = Collector(client.node, SteeringTelemetry, f'{NODE}/telemetry')
    source = JointStateSource(client)
    with _start(tmp_path, 'refusals', decoder=str(models['decoder']),
                steering_head=str(models['lps'])) as proc:
        client.wait_for_node(NODE)
        assert client.change_state(NODE, 'configure') and client.change_state(NODE, 'activate')
        running = _last(telemetry).head_id
        cases = {
            'missing': (str(tmp_path / 'missing.onnx'), 'missing.onnx'),
            'damaged': (str(models['damaged']), 'onnx_sha256'),
            'corrupt': (str(models['corrupt']), 'corrupt.onnx'),
            'other_decoder': (str(models['other_decoder']), 'decoder_sha256'),
            'wrong_shape': (str(models['wrong_shape']), 'shape'),
            'decoder_as_head': (str(models['decoder']), '`kind`'),
        }
        for case, (path, expected) in cases.items():
            [res] = client.set_parameters(NODE, {'steering_head': path})
            assert not res.successful, case
            assert res.reason.startswith('steering head refused') and expected in res.reason, (case, res.reason)
            assert client.get_parameter(NODE, 'steering_head').string_value == str(models['lps'])
            n = len(telemetry.snapshot())
            t = telemetry.wait_count(n + 2, 3.0)[-1]
            assert t.head_id == running and t.safety_state != 2, case
        # Out-of-range and invalid values: refused by the descriptor or the on-set callback.
        for name, value, expected in [('guard', -1.0, 'guard'), ('command_rate_hz', 5000.0, 'command_rate_hz'),
                                      ('trigger', 'sometimes', 'trigger'),
                                      ('workspace_min', [0.1, 0.2], 'workspace_min')]:
            [res] = client.set_parameters(NODE, {name: value})
            assert not res.successful and expected in res.reason, (name, res.reason)
        assert 'refused' in proc.log()
    source.close()


def test_head_swaps_under_load_miss_no_cycle(tmp_path: Path, client: RosClient, models: dict[str, Path]) -> None:
    """Heads swapped while the node answers a lock-step observation stream: no observation goes
    unanswered (no missed cycle), cycles stay contiguous, no hold, and each head takes over.

    Lock-step (one joint state, then wait for its command) makes "missed" independent of machine
    load; wall-clock lateness under swaps is measured by bench/bench_node_loop.py instead.
    """
    telemetry = Collector(client.node, SteeringTelemetry, f'{NODE}/telemetry', qos=1000)
    commands = Collector(client.node, JointTrajectory, 'fr3_arm_controller/joint_trajectory', qos=1000)
    status = Collector(client.node, SteeringStatus, f'{NODE}/status')
    source = JointStateSource(client)
    order = ['lps', 'lpds', 'none', 'lpds', 'lps', 'none']
    swap_results: list = []

    def swap_all() -> None:
        for head in order:
            path = 'none' if head == 'none' else str(models[head])
            [res] = client.set_parameters(NODE, {'steering_head': path})
            swap_results.append(res)
            n = len(telemetry.snapshot())
            # A new head takes over at the next replan; wait for it before the next swap.
            telemetry.wait_for(lambda m, h=head, n=n: any(x.head_type == h for x in m[n:]), 20.0, head)

    with _start_lock_step(tmp_path, 'swaps', client, models, telemetry, source):
        swapper = threading.Thread(target=swap_all, daemon=True)
        first = len(telemetry.snapshot())
        swapper.start()
        answered = 0
        while swapper.is_alive() or answered < 100:
            n = len(commands.snapshot())
            source.publish()
            commands.wait_count(n + 1, 10.0)  # TimeoutError here is a missed cycle
            answered += 1
        swapper.join(1.0)
        telemetry.wait_count(first + answered, 5.0)  # telemetry follows each command
        assert [r.successful for r in swap_results] == [True] * len(order), [r.reason for r in swap_results]
        msgs = telemetry.snapshot()[first:]
        cycles = [m.cycle for m in msgs]
        # Reliable telemetry with a deep queue: every cycle is seen, in order, none skipped.
        assert cycles == list(range(cycles[0], cycles[0] + len(cycles)))
        assert len(cycles) == answered
        assert all(m.safety_state != SteeringTelemetry.SAFETY_HOLD for m in msgs), \
            {m.safety_reason for m in msgs if m.safety_state == SteeringTelemetry.SAFETY_HOLD}
        taken_over = [h for i, h in enumerate(m.head_type for m in msgs) if i == 0 or msgs[i - 1].head_type != h]
        assert taken_over[-len(order):] == order
        n = len(status.snapshot())
        assert status.wait_count(n + 1, 3.0)[-1].head_swaps == len(order)
    source.close()


def test_observation_trigger_one_cycle_per_joint_state(tmp_path: Path, client: RosClient,
                                                       models: dict[str, Path]) -> None:
    """trigger=observation: no joint state, no cycle; each joint state, exactly one command."""
    telemetry = Collector(client.node, SteeringTelemetry, f'{NODE}/telemetry')
    commands = Collector(client.node, JointTrajectory, 'fr3_arm_controller/joint_trajectory', qos=1000)
    source = JointStateSource(client, rate_hz=50.0)
    with _start_lock_step(tmp_path, 'observation', client, models, telemetry, source):
        got0, cycles0 = len(commands.snapshot()), len(telemetry.snapshot())
        time.sleep(0.3)
        assert len(telemetry.snapshot()) == cycles0  # no observation, no cycle
        for i in range(40):  # lock-step, like the sim bridge: one state, then its command
            source.publish()
            commands.wait_count(got0 + i + 1, 10.0)
        time.sleep(0.3)
        assert len(commands.snapshot()) - got0 == 40, 'a joint state produced more than one command'
    source.close()
