"""The real policy node driving the sim bridge in lock-step: one command per observation, no stalls."""

from __future__ import annotations

import itertools
import signal
import time
from contextlib import contextmanager

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from lps_msgs.msg import SteeringTelemetry, TaskStatus
from lps_msgs.srv import ResetEpisode
from ros_util import Collector, NodeProcess, RosClient
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory


def _settle(collector: Collector, quiet_s: float = 0.3, timeout_s: float = 5.0) -> None:
    """Until nothing new has arrived on the collector's topic for `quiet_s`."""
    deadline = time.monotonic() + timeout_s
    n = -1
    while n != len(collector.snapshot()) and time.monotonic() < deadline:
        n = len(collector.snapshot())
        time.sleep(quiet_s)


def _clock_publisher(client: RosClient):
    """A /clock publisher of the test's own, once it has matched a reader. The policy node's reader
    may match it later (discovery is not symmetric): clocks published before that are lost to the
    node, so the tests publish theirs repeatedly."""
    pub = client.node.create_publisher(Clock, "/clock", 10)
    deadline = time.monotonic() + 30.0
    while pub.get_subscription_count() < 1:
        assert time.monotonic() < deadline, "nothing subscribes /clock"
        time.sleep(0.02)
    return pub


def _publish_clock(pub, t: float) -> None:
    pub.publish(Clock(clock=Time(sec=int(t), nanosec=int(round((t % 1) * 1e9)))))


def _last_cycle_time(telemetry: Collector) -> float:
    """The sim time of the newest state the node answered (its header stamp is the node's clock,
    which may lag it)."""
    return max(m.observation_stamp.sec + 1e-9 * m.observation_stamp.nanosec for m in telemetry.snapshot())


@contextmanager
def _lockstep_episode(tmp_path, tiny_models, max_age_ms: float, lockstep_timeout_s: float):
    """Bridge (lock-step) + policy node (observation trigger, sim time), active, in a new episode."""
    bridge_params = {"clock_mode": "lockstep", "lockstep_timeout_s": lockstep_timeout_s, "seed": 0}
    policy_params = {"decoder": str(tiny_models.decoder), "trigger": "observation", "use_sim_time": True,
                     "max_observation_age_ms": max_age_ms}
    with (NodeProcess("lps_sim.bridge_node", tmp_path / "bridge.log", bridge_params) as bridge,
          NodeProcess("lps_steering.nodes.policy_node", tmp_path / "policy.log", policy_params,
                      extra_args=["--autostart", "--executor", "single"]) as policy,
          RosClient("bridge_policy_test") as client):
        status = Collector(client.node, TaskStatus, "task_status", 1000)
        # Subscribed and matched before the episode starts: a late match loses the first steps'
        # messages, and on a loaded CI machine that can be all of the steps a test waits for.
        commands = Collector(client.node, JointTrajectory, "fr3_arm_controller/joint_trajectory", 1000)
        telemetry = Collector(client.node, SteeringTelemetry, "policy_node/telemetry", 1000)
        deadline = time.monotonic() + 90.0
        while "active: control loop started" not in policy.log():
            assert time.monotonic() < deadline and policy.proc.poll() is None, policy.log()
            time.sleep(0.2)
        for c in (status, commands, telemetry):
            c.wait_matched(30.0)
        # As the evaluator does: a reset moves the arm without the time a real arm would need,
        # which the running node rightly takes for an implausible measurement; so the node is
        # inactive across the reset and starts afresh from the new pose.
        assert client.change_state("policy_node", "deactivate"), policy.log()
        res = client.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=4), timeout=60.0)
        assert res.success, res.message
        assert client.change_state("policy_node", "activate"), policy.log()

        def at_step(n: int) -> int:
            """Wait until the episode has been driven to step n by the policy; the step reached."""
            msgs = status.wait_for(lambda m: bool(m) and m[-1].episode_id == res.episode_id and (m[-1].step >= n or m[-1].done),
                                   90.0, f"step {n} driven by the policy\n{policy.log()}\n{bridge.log()}")
            return msgs[-1].step

        yield bridge, policy, client, at_step, commands, telemetry


def test_policy_node_drives_the_lockstep_bridge(tmp_path, tiny_models):
    with _lockstep_episode(tmp_path, tiny_models, max_age_ms=1000.0, lockstep_timeout_s=2.0) as (
            _, _, client, at_step, _, _):
        joints = Collector(client.node, JointState, "joint_states", 1000)
        diag = Collector(client.node, DiagnosticArray, "diagnostics", 10)
        joints.wait_matched(30.0)
        diag.wait_matched(30.0)

        def counters() -> dict[str, int]:
            diag.clear()
            return {kv.key: int(float(kv.value)) for kv in diag.wait_count(1, 5.0)[-1].status[0].values
                    if kv.key in ("steps", "commands", "missed_steps", "refused")}

        at_step(20)
        c1 = counters()
        joints.clear()
        at_step(170)
        c2 = counters()
        # Steady state: every period was advanced by exactly one policy command, none timed out.
        assert c2["missed_steps"] == c1["missed_steps"], (c1, c2)
        assert c2["refused"] == 0, c2
        steps, commands = c2["steps"] - c1["steps"], c2["commands"] - c1["commands"]
        # The window is about 150 steps; diagnostics are sampled with some lag, hence >= 50.
        assert steps >= 50 and abs(steps - commands) <= 1, (c1, c2)
        # The policy moved the arm: its tiny random decoder outputs non-zero deltas.
        q = np.array([m.position[:7] for m in joints.snapshot()])
        assert np.abs(q[-1] - q[0]).max() > 1e-3


def test_a_stalled_lockstep_bridge_gets_no_extra_commands(tmp_path, tiny_models):
    """A lock-step sim that answers late (a loaded machine; here the bridge is stopped with
    SIGSTOP) must not receive commands the node would not have sent otherwise: each one advances
    the sim a period, so the episode would depend on machine load. Sim time has not moved, so no
    cycle is due, however long the wall-clock silence (max_observation_age_ms is 100 here)."""
    with _lockstep_episode(tmp_path, tiny_models, max_age_ms=100.0, lockstep_timeout_s=5.0) as (
            bridge, policy, client, at_step, commands, telemetry):
        at_step(20)
        bridge.proc.send_signal(signal.SIGSTOP)
        try:
            _settle(commands)  # the answer to the last state before the stop may still be on its way
            commands.clear()
            time.sleep(1.5)  # 15 times max_observation_age
            during = len(commands.snapshot())
        finally:
            bridge.proc.send_signal(signal.SIGCONT)
        assert during == 0, f"{during} commands sent to a stalled lock-step sim\n{policy.log()[-2000:]}"
        # A stalled sim that has published the next period's /clock but not yet its joint state
        # (published after it): still no cycle, however long the joint state takes.
        clock_pub = _clock_publisher(client)
        bridge.proc.send_signal(signal.SIGSTOP)
        try:
            _settle(commands)
            _settle(telemetry)
            commands.clear()
            next_period = _last_cycle_time(telemetry) + 0.01  # the bridge's next period, 100 Hz
            for _ in range(15):  # the same clock again and again: a reader that matched late gets it too
                _publish_clock(clock_pub, next_period)
                time.sleep(0.1)
            early = len(commands.snapshot())
        finally:
            bridge.proc.send_signal(signal.SIGCONT)
        assert early == 0, f"{early} commands for a period whose joint state had not come\n{policy.log()[-2000:]}"
        # The episode goes on from where it stopped: the node answers every new state again.
        at_step(at_step(0) + 30)
        assert "hold" not in policy.log().split("active: control loop started")[-1].lower(), policy.log()[-2000:]


def test_sim_time_moving_on_without_joint_states_still_makes_the_node_hold(tmp_path, tiny_models):
    """The other side of the gate above: when sim time does move but no joint state comes (a sim
    whose robot side died while its clock runs on), the idle cycles run and the node's joint-state
    watchdog holds the arm."""
    with _lockstep_episode(tmp_path, tiny_models, max_age_ms=100.0, lockstep_timeout_s=5.0) as (
            bridge, policy, client, at_step, commands, telemetry):
        at_step(20)
        telemetry.wait_count(1, 30.0)
        clock_pub = _clock_publisher(client)
        bridge.proc.send_signal(signal.SIGSTOP)
        try:
            _settle(commands)
            sim_now = _last_cycle_time(telemetry)
            commands.clear()
            telemetry.clear()
            # Sim time runs on, 0.1 s per 0.1 s, with no joint state: at least fifteen periods, and
            # on until the node has held three times (a loaded machine may match the node's /clock
            # reader to this publisher late, and clocks before that are lost to it).
            deadline = time.monotonic() + 30.0
            for k in itertools.count(1):
                _publish_clock(clock_pub, sim_now + 0.1 * k)
                time.sleep(0.1)
                held = [m for m in telemetry.snapshot() if m.safety_state == SteeringTelemetry.SAFETY_HOLD]
                if (k >= 15 and len(held) >= 3) or time.monotonic() > deadline:
                    break
        finally:
            bridge.proc.send_signal(signal.SIGCONT)
        assert len(held) >= 3, policy.log()[-2000:]
        assert "no joint_states" in held[-1].safety_reason, [m.safety_reason for m in telemetry.snapshot()]
        # The brake runs to rest; then nothing goes to a robot side that does not answer.
        sent = commands.snapshot()
        assert not sent or list(sent[-1].points[0].velocities) == [0.0] * 7, sent[-1].points[0]
        # At rest, only the idle cycles (one per 0.1 s) within the watchdog time (0.2 s) of the last
        # joint state still send, not the fifteen or more of the outage.
        moving = [m for m in sent if any(v != 0.0 for v in m.points[0].velocities)]
        assert len(sent) - len(moving) <= 3, f'{len(sent) - len(moving)} commands at rest to a silent robot'
