"""The generic readiness input: may the robot move now, as a hardware supervisor judges it.

The policy node knows no robot driver. Where a supervisor exists (on a Franka, lps_franka_hw's,
from franka_msgs/FrankaRobotState), it publishes lps_msgs/RobotReadiness on `readiness_topic`;
the node refuses to activate without a fresh `ready: true`, and holds (latched) when `ready`
turns false or the messages stop. The thread that asks takes the messages itself (`control_input`,
never the executor): activation runs inside the executor, so a readiness that went through it
would age by the activation's own wait. Their receipt time is steady time taken from the
middleware's receive time (it must not depend on a sim clock, and a message that waited in the
queue is as old as it is).
"""

from __future__ import annotations

import time
from typing import Any

from lps_msgs.msg import RobotReadiness
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from lps_steering.core.startup import CheckResult, check_readiness
from lps_steering.nodes.control_input import ControlThreadInputs

# Reliable, volatile: matches reliable publishers of either durability. Readiness must be
# published periodically (faster than `readiness_timeout_ms`) anyway, or it goes stale.
QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                 durability=QoSDurabilityPolicy.VOLATILE)


class ReadinessInput:
    """Owned by one thread at a time: the activating one, then the control thread."""

    def __init__(self, node: Any, topic: str, timeout_s: float) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._ready: bool | None = None
        self._reason = ''
        self._received = -1.0
        self._inputs = ControlThreadInputs(node)
        self._input = self._inputs.subscribe(RobotReadiness, topic, QOS, wakes=False)
        self.resolved = self._input.sub.topic_name

    def take(self) -> None:
        while (taken := self._input.take()) is not None:
            msg, age = taken
            self._ready, self._reason, self._received = bool(msg.ready), msg.reason, time.monotonic() - age

    def startup_check(self) -> CheckResult:
        self.take()
        ready, reason, received = self._ready, self._reason, self._received
        age = time.monotonic() - received if ready is not None else None
        return check_readiness(self.resolved, ready, reason, age, self.timeout_s)

    def fault(self) -> tuple[str, bool]:
        """(reason to hold, whether it is staleness); ('', False) while ready and fresh."""
        self.take()
        ready, reason, received = self._ready, self._reason, self._received
        if ready is None:
            return f'readiness: nothing received on {self.resolved}', True
        age = time.monotonic() - received
        if age > self.timeout_s:
            return f'readiness: {self.resolved} silent for {age:.3f} s (timeout {self.timeout_s} s)', True
        if not ready:
            return f'readiness: robot not ready ({reason or "no reason given"})', False
        return '', False

    def destroy(self) -> None:
        self._inputs.destroy()
