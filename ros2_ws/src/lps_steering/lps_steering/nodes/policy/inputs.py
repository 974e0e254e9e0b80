"""The observation inputs as the control thread takes them: joint states and poses.

Messages are taken by the control thread itself (`control_input`: no executor pass), decoded
(`decoding`), time-checked by the watchdog (future, out-of-order and frozen stamps, silence) and
kept as the newest good sample. A message that fails any of that leaves the last good sample in
place and sets an error (message and field) until a good one from the same topic arrives; the
node then holds. Each pose topic has its own error: a good target pose says nothing about a bad
object pose. A refusal is also kept until the next cycle has seen it (`fault`), so a bad message
followed by a good one within one period still holds.

Receipt times are on the node's clock. Under sim time that clock follows /clock through the
executor, which lags (and stands still while a lifecycle transition runs in it); so these inputs
also take /clock themselves and stamp receipts with the newest /clock they saw, never earlier
than the message's own stamp (wall-clock age means nothing while a lock-step sim waits). A
/clock that goes back is a restarted simulation: everything received before it (samples, poses,
the watchdog's history) is forgotten and `restart` says why until a joint state and every pose
arrived again. The future-stamp check (off under sim time, where the node's clock lags the sim's
by design) compares the stamp with the clock itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

from lps_steering.core.startup import StateWatchdog
from lps_steering.nodes.control_input import ControlThreadInputs
from lps_steering.nodes.policy.decoding import InputError, JointSample, JointStateDecoder, decode_position
from lps_steering.nodes.policy.timing import seconds

POSE_SOURCES = (('object_position', 'object_pose_topic'), ('target_position', 'target_pose_topic'))
# As rclpy's TimeSource subscribes: only the newest /clock matters.
CLOCK_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.BEST_EFFORT)


class ObservationInputs:
    """Joint states and poses for one configured node; owned by one thread at a time."""

    def __init__(self, node: Any, robot: str, joint_topic: str, pose_topics: dict[str, str],
                 watchdog: StateWatchdog, now_s: Callable[[], float], sim_time: bool) -> None:
        self._now_s = now_s
        self._sim_time = sim_time
        self.watchdog = watchdog
        self.wait_set = ControlThreadInputs(node)
        self._joint = self.wait_set.subscribe(JointState, joint_topic, 10)
        self.joint_topic = self._joint.sub.topic_name
        self.decoder = JointStateDecoder(robot, self.joint_topic)
        self._poses = {src: self.wait_set.subscribe(PoseStamped, topic, 10) for src, topic in pose_topics.items()}
        self._clock = (self.wait_set.subscribe(Clock, '/clock', CLOCK_QOS, wakes=False) if sim_time else None)
        self.sim_clock_s = float('nan')            # newest /clock taken here (sim time only)
        self.restart = ''                          # why the history was dropped (see the module doc)
        self.restarts = 0                          # simulation restarts seen so far
        self._restart_unseen = ''                  # a restart no cycle has reported yet
        self.reset()

    def reset(self) -> None:
        self.sample: JointSample | None = None   # newest good joint sample
        self.received_s = float('nan')            # its receipt time (node clock; see the module doc)
        self.arrival_ns = 0                       # its arrival (steady, ns): the cycle's latency base
        self.heard_ns = 0                         # newest joint state taken or refused for its content
        self.stamp_msg: Any = None                 # its header.stamp, for telemetry
        self.error = ''                            # why the newest joint state was refused
        self.pose_errors: dict[str, str] = {}      # per pose source: why its newest pose was refused
        self.poses: dict[str, tuple[np.ndarray, float]] = {}
        self.refused = 0                           # refused messages since the last good one
        self._unseen = ''                          # newest refusal no cycle has reported yet

    @property
    def pose_error(self) -> str:
        return '; '.join(self.pose_errors.values())

    def fault(self) -> str:
        """Why the inputs hold now: a refusal still in force, else one since the last call."""
        reason = self.error or self.pose_error or self._unseen
        self._unseen = ''
        return reason

    def restart_fault(self) -> str:
        """Why the inputs were forgotten: while the restart is not over, or once after it."""
        reason = self.restart or self._restart_unseen
        self._restart_unseen = ''
        return reason

    def clock_s(self) -> float:
        """The time receipts are stamped with: the newest /clock seen here under sim time."""
        if self._sim_time and not math.isnan(self.sim_clock_s):
            return self.sim_clock_s
        return self._now_s()

    def _take_clock(self) -> None:
        while (taken := self._clock.take()) is not None:
            newest = seconds(taken[0].clock)
            if newest < self.sim_clock_s:
                self._restarted(self.sim_clock_s, newest)
            self.sim_clock_s = newest

    def _restarted(self, before: float, now: float) -> None:
        self.reset()
        self.watchdog.reset()
        self.restarts += 1
        self.restart = self._restart_unseen = (
            f'sim time went back from {before:.3f} s to {now:.3f} s (the simulation restarted): '
            'every input from before it is forgotten')

    def _note_restart_over(self) -> None:
        if self.restart and self.sample is not None and set(self.poses) == set(self._poses):
            self.restart = ''

    def wait(self, timeout_s: float) -> bool:
        return self.wait_set.wait(timeout_s)

    def wake(self) -> None:
        self.wait_set.wake()

    def _received_at(self, stamp_s: float, age_s: float) -> float:
        if self._sim_time:
            return max(self.clock_s(), stamp_s)
        return self._now_s() - age_s

    def take(self) -> bool:
        """Take every queued pose and joint state (newest wins); True if a joint state came.

        /clock first (a restart forgets what came before it), then poses: a cycle triggered by a
        joint state then sees the poses published before it.
        """
        if self._clock is not None:
            self._take_clock()
        for source, item in self._poses.items():
            while (taken := item.take()) is not None:
                msg, age = taken
                try:
                    xyz = decode_position(item.sub.topic_name, msg)
                except InputError as exc:
                    self.pose_errors[source] = self._unseen = str(exc)
                    continue
                self.pose_errors.pop(source, None)
                self.poses[source] = (xyz, self._received_at(seconds(msg.header.stamp), age))
        took = False
        while (taken := self._joint.take()) is not None:
            took = self._on_joint_state(*taken) or took
        if self.restart:
            self._note_restart_over()
        return took

    def _on_joint_state(self, msg: JointState, age_s: float) -> bool:
        """False only for a message dropped as out of order (it calls for no cycle)."""
        try:
            sample = self.decoder.decode(msg)
        except InputError as exc:
            self.error = self._unseen = str(exc)
            self.refused += 1
            # The robot talks, if in nonsense; unlike a stamp out of its time line, which may
            # be a restarted publisher's.
            self.heard_ns = time.monotonic_ns() - int(age_s * 1e9)
            return True
        received = self._received_at(sample.stamp_s, age_s)
        # The future check is against the clock itself (receipt time is clamped under sim time).
        clock_received = self.clock_s() - (0.0 if self._sim_time else age_s)
        refusal = self.watchdog.feed(clock_received, sample.stamp_s)
        if refusal:
            # The watchdog reports a future stamp itself (a time fault, `check`); an
            # out-of-order one is only dropped: the arm was already seen later.
            self.refused += 1
            return 'future' in refusal
        self.error = ''
        self.refused = 0
        self.sample = sample
        self.received_s = received
        self.arrival_ns = self.heard_ns = time.monotonic_ns() - int(age_s * 1e9)
        self.stamp_msg = msg.header.stamp
        return True

    def destroy(self) -> None:
        self.wait_set.destroy()
