"""Hardware-safety wiring of the policy node over real DDS: start-up checks on activate, the
joint-state watchdog and `~/resume`, jerk-limited commands with velocities, decelerating
deactivation and the live `noise_seed`. The node is a real process with real tiny ONNX models; the robot side
is `JointStateSource` (sensor_msgs/JointState as franka_ros2 publishes it).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from lps_msgs.msg import SteeringStatus, SteeringTelemetry
from lps_steering.core.safety import RobotLimits
from ros_util import READY_POSE, Collector, JointStateSource, NodeProcess, RosClient
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

pytestmark = pytest.mark.ros

NODE = 'policy_node'
MODULE = 'lps_steering.nodes.policy_node'
RATE = 100.0
HOLD = 2


@pytest.fixture(scope='module')
def client() -> RosClient:
    with RosClient('safety_test_client') as c:
        yield c


@pytest.fixture
def source(client: RosClient) -> JointStateSource:
    """The test's joint-state publisher; closed even when the test fails, or it would be a second
    publisher on /joint_states for every later test's node."""
    src = JointStateSource(client)
    yield src
    src.close()


def _start(tmp_path: Path, name: str, **params: object) -> NodeProcess:
    return NodeProcess(MODULE, tmp_path / f'{name}.log', params=params)


def _holds(msgs, start: int = 0):
    return [m for m in msgs[start:] if m.safety_state == HOLD]


def test_activation_refused_with_stale_or_out_of_limit_joint_states(
        tmp_path: Path, client: RosClient, source: JointStateSource, tiny_models) -> None:
    status = Collector(client.node, SteeringStatus, f'{NODE}/status')
    commands = Collector(client.node, JointTrajectory, 'fr3_arm_controller/joint_trajectory')
    with _start(tmp_path, 'startup', decoder=str(tiny_models.decoder),
                startup_max_joint_state_age_ms=300.0) as proc:
        client.wait_for_node(NODE)
        # Nothing to resume before the node runs: it says so.
        res = client.call(Trigger, f'{NODE}/resume', Trigger.Request())
        assert not res.success and 'unconfigured' in res.message, res.message

        assert client.change_state(NODE, 'configure')
        time.sleep(0.2)
        # The robot goes silent: its newest joint state grows older than the limit.
        source.enabled = False
        time.sleep(0.5)
        assert client.change_state(NODE, 'activate') is False
        assert client.get_state(NODE) == 'inactive'
        s = status.wait_for(lambda m: any('activation refused' in x.safety_reason for x in m), 5.0)
        refused = next(x for x in s if 'activation refused' in x.safety_reason)
        assert 'joint_states fresh' in refused.safety_reason and 'old' in refused.safety_reason
        assert refused.lifecycle_state == 'inactive' and refused.safety_state == HOLD
        assert 'activation refused: start-up checks failed: joint_states fresh' in proc.log()

        # Fresh states again, but joint 4 beyond its upper limit (FR3: -0.1518 rad).
        source.q = list(READY_POSE[:3]) + [-0.12] + list(READY_POSE[4:])
        source.enabled = True
        time.sleep(0.2)
        assert client.change_state(NODE, 'activate') is False
        n = len(status.snapshot())
        s = status.wait_for(lambda m: any('joint 4' in x.safety_reason for x in m[n:]), 3.0)
        assert 'joint positions inside limits' in next(x for x in s[n:] if 'joint 4' in x.safety_reason).safety_reason
        assert commands.snapshot() == []  # nothing reached the robot while refused

        source.q = list(READY_POSE)
        time.sleep(0.1)
        assert client.change_state(NODE, 'activate') is True
        commands.wait_count(10, 5.0)
        assert 'start-up checks passed' in proc.log()
        # Active and not holding: a resume changes nothing and says so.
        res = client.call(Trigger, f'{NODE}/resume', Trigger.Request())
        assert res.success and 'nothing to resume' in res.message, res.message


def test_watchdog_latches_on_frozen_stamps_and_resume_restarts_from_the_measured_pose(
        tmp_path: Path, client: RosClient, source: JointStateSource, tiny_models) -> None:
    telemetry = Collector(client.node, SteeringTelemetry, f'{NODE}/telemetry', qos=1000)
    commands = Collector(client.node, JointTrajectory, 'fr3_arm_controller/joint_trajectory', qos=1000)
    # The watchdog timeout leaves room for the test's own publisher thread to be late on a
    # loaded 2-core machine: a late message would be a second, real silence fault.
    with _start(tmp_path, 'watchdog', decoder=str(tiny_models.decoder), watchdog_timeout_ms=300.0,
                max_observation_age_ms=1000.0):
        client.wait_for_node(NODE)
        assert client.change_state(NODE, 'configure') and client.change_state(NODE, 'activate')
        telemetry.wait_for(lambda m: len(m) > 20 and m[-1].safety_state != HOLD, 5.0, 'running')
        # Messages keep coming, their stamp does not move (a driver replaying its last state).
        source.frozen_stamp = client.node.get_clock().now().to_msg()
        n = len(telemetry.snapshot())
        msgs = telemetry.wait_for(lambda m: _holds(m, n), 3.0, 'watchdog hold')
        hold = _holds(msgs, n)[0]
        assert 'stamp has not advanced' in hold.safety_reason, hold.safety_reason
        assert np.all(np.isfinite(hold.command))
        time.sleep(0.3)
        held = telemetry.snapshot()
        assert all(m.safety_state == HOLD for m in held[-10:]), 'the hold is latched while stamps stay frozen'
        res = client.call(Trigger, f'{NODE}/resume', Trigger.Request())
        assert not res.success and 'stamp has not advanced' in res.message, res.message
        # Fresh stamps again: the hold stays (latched) until resume, which is then accepted.
        source.frozen_stamp = None
        time.sleep(0.4)
        n = len(telemetry.snapshot())
        latched = telemetry.wait_count(n + 10, 3.0)[n:]
        assert all(m.safety_state == HOLD and 'waiting for ~/resume' in m.safety_reason for m in latched), \
            [m.safety_reason for m in latched]
        # The arm was moved meanwhile (by hand, or the driver restarted elsewhere): the first
        # command after resume starts from where it is measured, within one allowed step.
        source.q = [0.2] + list(READY_POSE[1:])
        time.sleep(0.3)
        n_hold = len(commands.snapshot())
        res = client.call(Trigger, f'{NODE}/resume', Trigger.Request())
        assert res.success, res.message
        # Hold commands (the held pose) may still be on their way: the resumed stream begins with
        # the first command that differs from them.
        held = np.array(commands.snapshot()[n_hold - 1].points[0].positions)

        def resumed(m: list) -> list:
            return [np.array(x.points[0].positions) for x in m[n_hold:]
                    if np.max(np.abs(np.array(x.points[0].positions) - held)) > 1e-9]
        first = resumed(commands.wait_for(lambda m: resumed(m), 3.0, 'resumed stream'))[0]
        assert np.max(np.abs(first - np.array(source.q))) <= 0.02 + 1e-9, first - np.array(source.q)
        msgs = telemetry.wait_for(lambda m: any(x.safety_state != HOLD and x.replanned for x in m[n:]),
                                  3.0, 'release')
        # Silence: the same watchdog (or the stale observation) holds again.
        source.enabled = False
        n = len(telemetry.snapshot())
        msgs = telemetry.wait_for(lambda m: _holds(m, n), 3.0, 'silence hold')
        assert 'no joint_states' in _holds(msgs, n)[0].safety_reason or 'old' in _holds(msgs, n)[0].safety_reason
    source.frozen_stamp = None


def test_jerk_limited_commands_carry_velocities_and_deactivation_decelerates_to_rest(
        tmp_path: Path, client: RosClient, source: JointStateSource, tiny_models) -> None:
    commands = Collector(client.node, JointTrajectory, 'fr3_arm_controller/joint_trajectory', qos=1000)
    limits = RobotLimits.for_robot('fr3')
    # A small step limit keeps the move slow (0.3 rad/s): the deactivation, a service call that
    # takes its time on a loaded machine, still lands while the arm moves.
    max_step, velocity_scale, acceleration_scale = 0.003, 0.5, 0.5
    v_max = np.minimum(max_step * RATE, velocity_scale * limits.dq_max)
    a_max = acceleration_scale * limits.ddq_max
    with _start(tmp_path, 'jerk', decoder=str(tiny_models.decoder), jerk_scale=0.5,
                max_joint_step=max_step) as proc:
        client.wait_for_node(NODE)
        assert client.change_state(NODE, 'configure') and client.change_state(NODE, 'activate')
        commands.wait_count(20, 5.0)
        # The measured arm moves away (0.2 rad on joint 1 in 0.5 s, a speed the robot can have, so
        # the plausibility checks accept it): chunks are deltas from the measured pose, so the
        # commands travel there, under the velocity, acceleration and jerk limits.
        n0 = len(commands.snapshot())
        for k in range(1, 51):
            source.q = [0.2 * k / 50] + list(READY_POSE[1:])
            time.sleep(0.01)
        # The next chunk (one every 0.4 s) starts the move; deactivate while the arm is moving.
        commands.wait_for(lambda m: any(abs(x.points[0].velocities[0]) > 0.15 for x in m[n0:]), 3.0, 'motion')
        n = len(commands.snapshot())
        assert client.change_state(NODE, 'deactivate') is True
        time.sleep(0.3)
        msgs = commands.snapshot()
        after = msgs[n:]
        assert 2 < len(after) <= int(2.0 * RATE) + 2, f'{len(after)} commands after deactivation started'
        q = np.array([m.points[0].positions for m in msgs])
        v = np.array([m.points[0].velocities for m in msgs])
        assert v.shape == q.shape == (len(msgs), 7), 'every point carries 7 velocities'
        # The streamed velocity is the motion of the positions: v_k = (q_k - q_{k-1}) / dt.
        np.testing.assert_allclose(v[1:], np.diff(q, axis=0) * RATE, atol=1e-6)
        assert np.all(np.abs(v) <= v_max * (1 + 1e-6))
        assert np.abs(v[n - 1]).max() > 0.01, 'the arm was moving when deactivated'
        acc = np.diff(v, axis=0) * RATE
        assert np.all(np.abs(acc) <= a_max * (1 + 1e-6))
        # The deceleration ends at rest, and then nothing more is sent.
        np.testing.assert_array_equal(v[-1], np.zeros(7))
        np.testing.assert_array_equal(q[-1], q[-2])
        assert 'deactivated: at rest after' in proc.log()
        count = len(msgs)
        time.sleep(0.2)
        assert len(commands.snapshot()) == count


def test_noise_seed_is_live_and_range_checked(
        tmp_path: Path, client: RosClient, source: JointStateSource, tiny_models) -> None:
    telemetry = Collector(client.node, SteeringTelemetry, f'{NODE}/telemetry')
    with _start(tmp_path, 'seed', decoder=str(tiny_models.decoder)):
        client.wait_for_node(NODE)
        assert client.change_state(NODE, 'configure') and client.change_state(NODE, 'activate')
        telemetry.wait_count(5, 5.0)
        [res] = client.set_parameters(NODE, {'noise_seed': 1234})
        assert res.successful, res.reason
        assert client.get_parameter(NODE, 'noise_seed').integer_value == 1234
        [res] = client.set_parameters(NODE, {'noise_seed': -3})
        assert not res.successful and 'noise_seed' in res.reason
        # Configure-time parameters stay refused while active.
        [res] = client.set_parameters(NODE, {'jerk_scale': 0.2})
        assert not res.successful and 'cleanup first' in res.reason
        [res] = client.set_parameters(NODE, {'watchdog_timeout_ms': 0.0})
        assert not res.successful
        n = len(telemetry.snapshot())
        assert telemetry.wait_count(n + 10, 3.0)[-1].safety_state != HOLD


def test_a_velocity_decoder_holds_until_joint_states_carry_velocities(
        tmp_path: Path, client: RosClient, source: JointStateSource, tmp_path_factory) -> None:
    from lps_train.tiny import build_tiny_models

    models = build_tiny_models(tmp_path_factory.mktemp('tiny_velocity'), seed=2, head_types=(),
                               joint_velocities=True)
    telemetry = Collector(client.node, SteeringTelemetry, f'{NODE}/telemetry')
    status = Collector(client.node, SteeringStatus, f'{NODE}/status')
    commands = Collector(client.node, JointTrajectory, 'fr3_arm_controller/joint_trajectory')
    source.velocity = None  # positions only: the decoder's arm_joint_velocities never arrive
    with _start(tmp_path, 'velocity', decoder=str(models.decoder)):
        client.wait_for_node(NODE)
        assert client.change_state(NODE, 'configure')
        client.change_state(NODE, 'activate')
        s = status.wait_for(lambda m: any('arm_joint_velocities' in x.safety_reason for x in m), 5.0)
        assert next(x for x in s if 'arm_joint_velocities' in x.safety_reason).safety_state == HOLD
        moving = [c for c in commands.snapshot() if not np.allclose(c.points[0].positions, source.q, atol=1e-6)]
        assert moving == []  # the arm was only ever told to stay where it is
        source.velocity = [0.05] * 7
        if client.get_state(NODE) != 'active':
            assert client.change_state(NODE, 'activate')
        n = len(telemetry.snapshot())
        assert telemetry.wait_count(n + 10, 5.0)[-1].safety_state != HOLD
