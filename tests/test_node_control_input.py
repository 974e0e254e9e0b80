"""The policy node's control-thread inputs: subscriptions no executor may take from.

A publisher in one context, the subscribing node in another (separate DDS participants, as
between processes), a SingleThreadedExecutor spinning the subscribing node the whole time: every
message must reach the owner's `take`, in order, with a plausible age, and `wake` must end a
blocked `wait` early.
"""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from lps_steering.nodes.control_input import ControlThreadInputs
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Header

pytestmark = pytest.mark.ros


@pytest.fixture
def two_contexts():
    contexts = [rclpy.Context(), rclpy.Context()]
    for c in contexts:
        rclpy.init(context=c)
    yield contexts
    for c in contexts:
        rclpy.try_shutdown(context=c)


def test_the_executor_never_takes_what_the_control_thread_owns(two_contexts) -> None:
    pub_ctx, sub_ctx = two_contexts
    sender = rclpy.create_node('input_sender', context=pub_ctx)
    owner = rclpy.create_node('input_owner', context=sub_ctx)
    stolen: list[Header] = []
    # A normal subscription on the same topic in the same node: the executor does serve it.
    owner.create_subscription(Header, 'control_input_test', stolen.append, 100)
    inputs = ControlThreadInputs(owner)
    source = inputs.subscribe(Header, 'control_input_test', 100)
    executor = SingleThreadedExecutor(context=sub_ctx)
    executor.add_node(owner)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(0.05)

    spinner = threading.Thread(target=spin)
    spinner.start()
    pub = sender.create_publisher(Header, 'control_input_test', 100)
    try:
        deadline = time.monotonic() + 10.0
        while pub.get_subscription_count() < 2:
            assert time.monotonic() < deadline, 'subscriptions not matched'
            time.sleep(0.05)
        n = 50
        for i in range(n):
            pub.publish(Header(frame_id=str(i)))
            time.sleep(0.002)
        got: list[str] = []
        ages: list[float] = []
        deadline = time.monotonic() + 5.0
        while len(got) < n and time.monotonic() < deadline:
            if inputs.wait(0.5):
                while (taken := source.take()) is not None:
                    got.append(taken[0].frame_id)
                    ages.append(taken[1])
        assert got == [str(i) for i in range(n)]  # all of them, in order, none lost to the executor
        assert all(0.0 <= a < 2.0 for a in ages)
        # The executor was alive all along: it delivered the ordinary subscription's copies.
        deadline = time.monotonic() + 2.0
        while len(stolen) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(stolen) == n

        # A message left in the queue ages: take() reports how long it waited.
        pub.publish(Header(frame_id='late'))
        time.sleep(0.3)
        assert inputs.wait(1.0)
        msg, age = source.take()
        assert msg.frame_id == 'late' and 0.25 <= age < 2.0

        # wake() ends a wait that would otherwise block for 5 s.
        threading.Timer(0.2, inputs.wake).start()
        t0 = time.monotonic()
        assert inputs.wait(5.0) is False
        assert time.monotonic() - t0 < 2.0
    finally:
        stop.set()
        spinner.join(5.0)
        inputs.destroy()
        executor.shutdown()
        owner.destroy_node()
        sender.destroy_node()


def test_a_quiet_subscription_is_taken_but_never_ends_a_wait(two_contexts) -> None:
    """/clock and readiness are taken on the owner's turns; they must not wake the control thread."""
    pub_ctx, sub_ctx = two_contexts
    sender = rclpy.create_node('quiet_sender', context=pub_ctx)
    owner = rclpy.create_node('quiet_owner', context=sub_ctx)
    inputs = ControlThreadInputs(owner)
    loud = inputs.subscribe(Header, 'loud_input', 10)
    quiet = inputs.subscribe(Header, 'quiet_input', 10, wakes=False)
    loud_pub = sender.create_publisher(Header, 'loud_input', 10)
    quiet_pub = sender.create_publisher(Header, 'quiet_input', 10)
    try:
        deadline = time.monotonic() + 10.0
        while loud_pub.get_subscription_count() < 1 or quiet_pub.get_subscription_count() < 1:
            assert time.monotonic() < deadline, 'subscriptions not matched'
            time.sleep(0.05)
        quiet_pub.publish(Header(frame_id='quiet'))
        time.sleep(0.3)
        assert inputs.wait(0.3) is False, 'a quiet subscription ended the wait'
        msg, _ = quiet.take()
        assert msg.frame_id == 'quiet'
        loud_pub.publish(Header(frame_id='loud'))
        assert inputs.wait(5.0) is True
        assert loud.take()[0].frame_id == 'loud'
        assert quiet.take() is None
    finally:
        inputs.destroy()
        owner.destroy_node()
        sender.destroy_node()
