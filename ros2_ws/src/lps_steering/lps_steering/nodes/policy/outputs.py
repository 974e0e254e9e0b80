"""What the policy node publishes: arm and gripper commands, per-cycle telemetry, slow status.

Messages are preallocated; a cycle only fills in numbers. Telemetry fields are defined in
lps_msgs/SteeringTelemetry; `header.stamp` is the instant the arm command went out, so
`header.stamp - observation_stamp` is the observation-to-command latency end to end.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from lps_msgs.msg import SteeringStatus, SteeringTelemetry
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from lps_steering.core import SAFETY_HOLD, CycleResult
from lps_steering.nodes.policy.timing import duration_msg, time_msg


class CommandOutput:
    """The arm's JointTrajectory (one point per command) and the gripper width."""

    def __init__(self, node: Any, arm_names: list[str], command_topic: str, gripper_topic: str,
                 period_s: float) -> None:
        self._node = node
        self.arm = node.create_publisher(JointTrajectory, command_topic, 10)
        self.gripper = node.create_publisher(Float64, gripper_topic, 10)
        self._traj = JointTrajectory(joint_names=list(arm_names))
        self._traj.points = [JointTrajectoryPoint(time_from_start=duration_msg(period_s))]
        self._grip = Float64()

    def send(self, q: np.ndarray, velocity: np.ndarray | None) -> Any:
        """Publish one arm command; returns when it went out (builtin_interfaces/Time)."""
        point = self._traj.points[0]
        point.positions = q
        # Velocities make joint_trajectory_controller join points with cubic splines that match
        # the filter's velocity, instead of velocity jumps at every point.
        point.velocities = velocity if velocity is not None else [0.0] * len(q)
        stamp = self._node.get_clock().now().to_msg()
        self.arm.publish(self._traj)
        return stamp

    def send_gripper(self, width: float) -> None:
        self._grip.data = width
        self.gripper.publish(self._grip)

    def destroy(self) -> None:
        self._node.destroy_publisher(self.arm)
        self._node.destroy_publisher(self.gripper)


class TelemetryOutput:
    def __init__(self, node: Any) -> None:
        self._node = node
        self.pub = node.create_publisher(SteeringTelemetry, '~/telemetry', 100)
        self._msg = SteeringTelemetry()

    def publish(self, c: Any, cycle: int, result: CycleResult | None, reason: str, sent: Any,
                observation_stamp: Any, started: float) -> SteeringTelemetry:
        t = self._msg
        t.header.stamp = sent if sent is not None else self._node.get_clock().now().to_msg()
        t.decoder_id, t.head_id, t.head_type = c.decoder_id, c.head_id, c.head_type
        t.cycle = cycle
        t.trust_region_delta = c.trust_region_delta
        if result is None:
            t.safety_state, t.safety_reason = SAFETY_HOLD, reason
            t.command, t.gripper_command = [], math.nan
            t.replanned, t.inference_ms, t.observation_age_ms = False, math.nan, math.nan
            t.delta_sq_norm = t.guard_scale = t.latent_norm = math.nan
        else:
            # The joint state's own stamp (its publisher's clock), as the message defines it.
            t.observation_stamp = (observation_stamp if observation_stamp is not None
                                   else time_msg(result.observation_stamp_s))
            t.chunk_count, t.chunk_index = result.chunk_count, result.chunk_index
            t.replanned = result.replanned
            t.inference_ms = result.inference_ms
            t.observation_age_ms = result.observation_age_ms
            t.delta_sq_norm, t.guard_scale = result.delta_sq_norm, result.guard_scale
            t.latent_norm = result.latent_norm
            t.safety_state, t.safety_reason = result.safety_state, reason
            t.command = result.command
            t.gripper_command = result.gripper
        t.cycle_ms = (time.perf_counter() - started) * 1e3
        self.pub.publish(t)
        return t

    def destroy(self) -> None:
        self._node.destroy_publisher(self.pub)


class StatusOutput:
    """~/status: about 1 Hz on steady time (never on a sim clock that may stop) and on changes."""

    def __init__(self, node: Any) -> None:
        self._node = node
        self.pub = node.create_publisher(SteeringStatus, '~/status', 10)
        self._rate_mark = (time.monotonic(), 0)
        self._achieved = 0.0

    def reset_rate(self) -> None:
        self._rate_mark = (time.monotonic(), 0)
        self._achieved = 0.0

    def publish(self, *, state: str, c: Any, head_path: str, period_s: float, cycles: int, missed: int,
                last_swap_error: str, safety_state: int, safety_reason: str) -> None:
        s = SteeringStatus()
        s.header.stamp = self._node.get_clock().now().to_msg()
        s.lifecycle_state = state
        s.safety_state = max(safety_state, 0)
        s.safety_reason = safety_reason
        if c is None or not c.configured:
            s.head_id = s.head_type = 'none'
            self.pub.publish(s)
            return
        s.decoder_id = c.decoder_id
        s.decoder_sha256 = c.decoder.sha256 if c.decoder is not None else ''
        s.head_id, s.head_type = c.head_id, c.head_type
        s.head_path = head_path
        s.head_sha256 = c.head.sha256 if c.head is not None else ''
        s.providers = c.providers
        s.policy_rate_hz = c.policy_rate_hz
        s.command_rate_hz = 1.0 / period_s
        now = time.monotonic()
        mark_t, mark_c = self._rate_mark
        if now - mark_t >= 0.5:
            self._achieved = (cycles - mark_c) / (now - mark_t) if state == 'active' else 0.0
            self._rate_mark = (now, cycles)
        s.achieved_rate_hz = self._achieved
        s.cycles, s.missed_cycles = cycles, missed
        s.head_swaps = c.head_swaps
        s.last_swap_error = last_swap_error
        self.pub.publish(s)
