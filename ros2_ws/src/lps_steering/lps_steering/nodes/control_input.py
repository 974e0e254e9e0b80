"""Subscriptions that the control thread waits on and takes from itself, bypassing the executor.

Why: through an rclpy executor a joint state reaches the control thread only after the executor
thread has rebuilt its wait set (every lifecycle, parameter and node service is in it), run the
callback and handed over through an Event and the GIL. On the 2-core reference machine that cost
2-4 ms at p99 between the joint state's stamp and the command, against a 1 ms budget (one
Franka control cycle). Waiting on a wait set that holds only the observation's subscriptions, in
the thread that runs the cycle, leaves DDS delivery plus the cycle itself. The poses that
complete the observation come the same way, so a cycle sees the poses published before its joint
state (a lock-step sim publishes them first) without racing the executor.

Inputs that only inform a cycle (a copy of /clock under sim time, readiness) are subscribed with
`wakes=False`: taken on the owner's turns, they never end its wait.

The executor must never take these messages, so the subscriptions sit in a callback group that
refuses execution; rclpy's executors skip entities whose group refuses (`Executor.can_execute`).
The wait set is rclpy's own (`rclpy.wait_for_message` uses the same calls).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node


class _ControlThreadOnly(CallbackGroup):
    """Entities no executor may wait on or dispatch."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


def _ignore(*_: Any) -> None:
    pass


class ControlThreadInput:
    """One subscription of a `ControlThreadInputs`; `take` it from the owning thread only."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub

    def take(self) -> tuple[Any, float] | None:
        """The next queued message and how long ago it arrived (s), or None.

        The age comes from the middleware's receive timestamp (system clock), so a message that
        waited in the queue (e.g. while the node was inactive) is not mistaken for a fresh one.
        Middlewares that do not fill it in give age 0 (arrival = take).
        """
        sub = self.sub
        with sub.handle:
            taken = sub.handle.take_message(sub.msg_type, sub.raw)
        if taken is None:
            return None
        msg, info = taken
        received_ns = info.get('received_timestamp', 0) if isinstance(info, dict) else 0
        age_s = (time.time_ns() - received_ns) * 1e-9 if received_ns > 0 else 0.0
        return msg, max(0.0, age_s)


class ControlThreadInputs:
    """Subscriptions plus a wake-up guard condition, waited on by exactly one thread.

    `wait(timeout_s)` blocks until a message is ready on any of them, `wake()` is called from
    another thread, or the timeout passes. Only the owning thread may call `wait` and `take`
    (or any one thread while the owner is not running).
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self._group = _ControlThreadOnly()
        self._inputs: list[ControlThreadInput] = []
        self._waking: list[ControlThreadInput] = []
        # Not node.create_guard_condition: that registers it with the node, where executors would
        # see it (and the EventsExecutor refuses guard conditions altogether).
        self._wake = GuardCondition(None, None, context=node.context)
        self._wait_set: Any = None

    def subscribe(self, msg_type: Any, topic: str, qos: Any, wakes: bool = True) -> ControlThreadInput:
        """`wakes` False: taken by the owner on its own turns, never a reason to end a `wait`
        (a /clock at the sim's rate must not double the control thread's wake-ups)."""
        sub = self._node.create_subscription(msg_type, topic, _ignore, qos, callback_group=self._group)
        item = ControlThreadInput(sub)
        self._inputs.append(item)
        if wakes:
            self._waking.append(item)
        self._wait_set = _rclpy.WaitSet(len(self._waking), 1, 0, 0, 0, 0, self._node.context.handle)
        return item

    def wait(self, timeout_s: float) -> bool:
        """Block until a message may be taken (True), or a wake-up / the timeout (False)."""
        ws = self._wait_set
        ws.clear_entities()
        with ExitStack() as stack:
            for item in self._waking:
                stack.enter_context(item.sub.handle)
                ws.add_subscription(item.sub.handle)
            stack.enter_context(self._wake.handle)
            ws.add_guard_condition(self._wake.handle)
            ws.wait(max(0, int(timeout_s * 1e9)))
        return bool(ws.get_ready_entities('subscription'))

    def wake(self) -> None:
        """Make a blocked `wait` return now (from any thread)."""
        self._wake.trigger()

    def destroy(self) -> None:
        for item in self._inputs:
            self._node.destroy_subscription(item.sub)
        self._inputs = []
        self._waking = []
        self._wake.destroy()
