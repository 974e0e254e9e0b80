"""`--autostart`: bring the node up at the robot's pace, from the process itself.

A robot comes up at its own pace (franka's bring-up: controller manager, hardware, then
broadcasters, often well over 2 s), and a launch sends one activate request and never retries. So
with `--autostart` the process configures the node, then retries activation until
`startup_timeout_s`, logging every few seconds what is still missing (joint states on which
topic, readiness on which topic, another publisher).

On time-out the node stays configured and inactive with the reason in ~/status, and the process
keeps running: a lab fixes what is missing (starts the driver, releases the stop) and activates
it through its lifecycle service without reloading the models; exiting would also take down a
launch whose other nodes are fine. Every transition runs in the executor thread, so no service
call can race it, and the executor keeps serving services meanwhile.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from rclpy.lifecycle import TransitionCallbackReturn

AUTOSTART_RETRY_S = 0.25
AUTOSTART_LOG_EVERY_S = 5.0
STOP_GRACE_S = 0.5


def _in_executor(executor: Any, stop: threading.Event, fn: Any) -> Any:
    """Run `fn` in the executor thread (serialised with every service call) and wait for it; None
    if a stop came and it did not finish within STOP_GRACE_S."""
    task = executor.create_task(fn)
    while not task.done():
        if stop.wait(0.02):
            # The executor finishes the callback it is in before it stops: a transition under way
            # when the stop comes still ends, and what it did must be reported, not lost.
            deadline = time.monotonic() + STOP_GRACE_S
            while not task.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            return task.result() if task.done() else None
    return task.result()


def _unless_stopped(stop: threading.Event, fn: Any) -> Any:
    return None if stop.is_set() else fn()


def autostart(node: Any, executor: Any, stop: threading.Event) -> bool:
    """Configure, then activate once joint states (and readiness) are there; True when active."""
    log = node.get_logger()
    if _in_executor(executor, stop, node.trigger_configure) != TransitionCallbackReturn.SUCCESS:
        if not stop.is_set():  # a stop during a long configure (the models loading) is no failure
            log.error('autostart: configure failed (reason above); the node stays unconfigured')
        return False
    timeout = node.settings.startup_timeout_s
    started = time.monotonic()
    last_log = started
    while not stop.is_set():
        missing = _in_executor(executor, stop, node.missing_for_startup)
        if missing is None:
            return False
        if not missing:
            # Once a stop is set the activation never starts: checked in the executor thread, where
            # it runs, so a stop that came during the input check counts.
            activate = functools.partial(_unless_stopped, stop, node.trigger_activate)
            if _in_executor(executor, stop, activate) == TransitionCallbackReturn.SUCCESS:
                log.info(f'autostart: active after {time.monotonic() - started:.1f} s')
                return True
            missing = node.safety_reason
        waited = time.monotonic() - started
        if stop.is_set():
            return False
        if waited >= timeout:
            reason = f'autostart gave up after {waited:.1f} s (startup_timeout_s): {missing}'
            log.error(f'{reason}; the node stays inactive: activate it through its lifecycle '
                      'service once this is fixed')
            _in_executor(executor, stop, functools.partial(node.report_refusal, reason))
            return False
        if time.monotonic() - last_log >= AUTOSTART_LOG_EVERY_S:
            last_log = time.monotonic()
            log.warning(f'autostart: waiting ({waited:.0f} of {timeout:g} s): {missing}')
        stop.wait(AUTOSTART_RETRY_S)
    return False
