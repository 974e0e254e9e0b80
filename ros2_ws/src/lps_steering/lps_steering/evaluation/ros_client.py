"""The evaluator's ROS side: runs episodes through a running eval stack, the way a user would.

The stack is the sim bridge in lock-step plus the policy node triggered by observations
(`launch/stacks.yaml`, stack `eval`). Per run (head x profile) the head is swapped through the
policy node's `steering_head` parameter; per episode:

    deactivate policy (it decelerates to rest)  ->  reset_episode(task, seed, profile)
    ->  noise_seed = seed  ->  activate policy
    ->  task_status until done (success / timeout / failure) or our own sim-time limit

The policy is inactive across the reset, so no command meant for one episode reaches the next,
and activation starts the first chunk from the measured position of the new episode. Its noise
generator restarts from the episode seed, so an episode's result depends on its seed (and head,
profile), not on which episodes ran before it. Every wait has
a wall-clock limit: a dead node ends the evaluation with a message instead of hanging it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from lps_msgs.msg import PerceptionFrame, SteeringTelemetry, TaskStatus
from lps_msgs.srv import ResetEpisode
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory

from .config import EvalConfig
from .stats import EpisodeRecord, mean_squared_jerk, perception_record

SAFETY_HOLD = 2
# franka_robot_state_broadcaster's convenience topics are best effort (franka_ros2 >= 2.4.0).
BEST_EFFORT = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
LATCHED = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
SERVICE_TIMEOUT_S = 30.0
RESEND_S = 5.0  # reads (lifecycle state, parameters) are sent again this often until answered (see _call)
# Topics written to MCAP when recording: what a reviewer needs to replay an episode.
# Everything `lps-train convert --source mcap` needs to rebuild observations, actions and outcomes.
RECORDED = (("task_status", TaskStatus), ("joint_states", JointState),
            ("fr3_arm_controller/joint_trajectory", JointTrajectory), ("object_pose", PoseStamped),
            ("target_pose", PoseStamped), ("gripper_command", Float64), ("object_pose_truth", PoseStamped))
# A hold for this reason is perception's doing (stale or missing object position).
OBJECT_SOURCE = "object_position"
ACTIVATION_ATTEMPTS = 3  # resets of one episode before a refused activation ends the evaluation
PERCEPTION_WARM_UP_RESETS = 5  # resets before the first episode until perception reports a frame


def _stamp_s(stamp: Any) -> float:
    """Stamps as dictionary keys: seconds rounded to the microsecond (sim stamps are whole periods)."""
    return round(stamp.sec + 1e-9 * stamp.nanosec, 6)


class EvaluationError(RuntimeError):
    """The stack did not behave (a service missing, a head refused, the sim stalled)."""


class TransitionRefused(EvaluationError):
    """The policy node answered a lifecycle transition with a refusal (its log says why)."""


def _join(namespace: str, name: str) -> str:
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"


class EvaluationClient:
    """One rclpy node in its own context (in `domain_id`, else ROS_DOMAIN_ID), spun in a background thread."""

    def __init__(self, config: EvalConfig, domain_id: int | None = None,
                 stack_failure: Callable[[], str] | None = None) -> None:
        """`stack_failure`, for a stack this process launched, says why it has died ("" while it
        runs): every wait then ends as soon as the stack is gone, with that reason."""
        self.config = config
        self._stack_failure = stack_failure
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        # One name per domain: parallel workers share this process's rosout logger names.
        name = "lps_evaluator" if domain_id is None else f"lps_evaluator_d{domain_id}"
        self.node = rclpy.create_node(name, context=self.context)
        # Not the EventsExecutor, though it would halve this process's CPU: in the sim bridge it once
        # stopped delivering messages on a loaded machine (sim_bridge's main).
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        ns, policy = config.namespace, config.policy_node
        self.policy = _join(ns, policy)
        self._cond = threading.Condition()
        self._status: TaskStatus | None = None
        self._status_count = 0
        self._telemetry: list[SteeringTelemetry] = []
        self._tcp: list[tuple[float, float, float, float]] = []  # (sim stamp, x, y, z)
        # The episode being watched: (episode_id, sim-time limit); its end is decided in the status
        # callback, on the first status past the limit, not when this thread gets to look (the
        # lock-step sim runs on meanwhile).
        self._watch: tuple[int, float] | None = None
        self._end: TaskStatus | None = None
        self._first_success = math.nan
        # Perception in the loop: frame reports (stamp, seen, xyz) and the truth by stamp, kept from
        # before each reset (the reset's own frame is reported before reset_episode answers).
        self._frames: list[tuple[float, bool, tuple[float, ...], float]] = []
        self._truth: dict[float, tuple[float, float, float]] = {}
        self.recorder: Any = None
        if config.record_mcap:
            from .recording import McapRecorder

            topics = [(_join(ns, t), ty) for t, ty in RECORDED] + [(f"{self.policy}/telemetry", SteeringTelemetry)]
            self.recorder = McapRecorder(self.node, topics)
        n = self.node
        n.create_subscription(TaskStatus, _join(ns, "task_status"), self._on_status, 100)
        n.create_subscription(SteeringTelemetry, f"{self.policy}/telemetry", self._on_telemetry, 1000)
        n.create_subscription(PoseStamped, _join(ns, "franka_robot_state_broadcaster/current_pose"),
                              self._on_tcp, BEST_EFFORT)
        if config.perception:
            # Transient local, as both are published: the reports just before this node matched come too.
            n.create_subscription(PerceptionFrame, _join(ns, "object_perception/frames"), self._on_frame, LATCHED)
            n.create_subscription(PoseStamped, _join(ns, "object_pose_truth"), self._on_truth, LATCHED)
        self._clients: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._spin, name="evaluator-executor", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------------------- plumbing
    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down under the executor on close()
                if self.context.ok():
                    raise
                return

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.destroy()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(5.0)
        self.executor.shutdown(timeout_sec=1.0)

    def __enter__(self) -> EvaluationClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sliced(self, wait: Callable[[float], bool], timeout: float) -> bool:
        """`wait(seconds)` in slices of at most 0.5 s until it returns True (True) or `timeout` has
        passed (False); a launched stack that died in between ends it with the stack's reason."""
        deadline = time.monotonic() + timeout
        while not wait(min(0.5, max(0.0, deadline - time.monotonic()))):
            self._check_stack()
            if time.monotonic() >= deadline:
                return False
        return True

    def _service(self, srv_type: type, name: str, timeout: float) -> Any:
        """The client of `name`, once its server is there."""
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv_type, name)
        client = self._clients[name]
        if not self._sliced(lambda s: client.wait_for_service(timeout_sec=s), timeout):
            raise EvaluationError(f"service {name} is not available after {timeout:g} s: is the eval stack "
                                  f"running (scripts/launch_stack.py eval, or ros2 launch launch/eval.launch.py)?")
        return client

    def _call(self, srv_type: type, name: str, request: Any, timeout: float = SERVICE_TIMEOUT_S,
              available_within: float | None = None, resend_s: float | None = None) -> Any:
        """Call `name` and wait for the answer; `available_within` bounds the wait for the server
        (default `timeout`).

        `resend_s` (only for requests that may be answered twice) sends the request again whenever
        that long passes without an answer. A server just discovered may not yet have matched our
        request writer or response reader: a loaded machine loses the first request or its answer,
        and waiting longer for it never helps.
        """
        client = self._service(srv_type, name, timeout if available_within is None else available_within)
        done = threading.Event()
        futures: list[Any] = []

        def send() -> None:
            future = client.call_async(request)
            future.add_done_callback(lambda _f: done.set())
            futures.append(future)

        send()
        deadline = time.monotonic() + timeout
        try:
            while not self._sliced(done.wait, min(resend_s or timeout, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    raise EvaluationError(f"service {name} did not answer within {timeout} s "
                                          f"({len(futures)} request{'s' if len(futures) > 1 else ''} sent)")
                send()
            return next(f for f in futures if f.done()).result()
        finally:
            for f in futures:  # the client keeps unanswered requests until told otherwise
                if not f.done():
                    client.remove_pending_request(f)

    def _check_stack(self) -> None:
        failure = self._stack_failure() if self._stack_failure is not None else ""
        if failure:
            raise EvaluationError(failure)

    def _on_status(self, msg: TaskStatus) -> None:
        with self._cond:
            self._status = msg
            self._status_count += 1
            watch = self._watch
            if watch is not None and self._end is None and msg.episode_id == watch[0]:
                if msg.success and math.isnan(self._first_success):
                    self._first_success = msg.sim_time
                if msg.done or msg.sim_time >= watch[1] - 1e-9:
                    self._end = msg
            self._cond.notify_all()

    def _on_telemetry(self, msg: SteeringTelemetry) -> None:
        with self._cond:
            self._telemetry.append(msg)

    def _on_frame(self, msg: PerceptionFrame) -> None:
        with self._cond:
            self._frames.append((_stamp_s(msg.header.stamp), bool(msg.seen), tuple(msg.position), float(msg.age_ms)))

    def _on_truth(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        with self._cond:
            self._truth[_stamp_s(msg.header.stamp)] = (p.x, p.y, p.z)

    def _on_tcp(self, msg: PoseStamped) -> None:
        p, t = msg.pose.position, msg.header.stamp
        with self._cond:
            self._tcp.append((t.sec + 1e-9 * t.nanosec, p.x, p.y, p.z))

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EvaluationError(f"timed out after {timeout:g} s waiting for {what}")
                self._cond.wait(min(left, 0.1))

    # ----------------------------------------------------------------------------- policy node
    def lifecycle_state(self) -> str:
        return self._call(GetState, f"{self.policy}/get_state", GetState.Request(),
                          resend_s=RESEND_S).current_state.label

    def transition(self, transition_id: int, label: str) -> None:
        req = ChangeState.Request()
        req.transition.id = transition_id
        if not self._call(ChangeState, f"{self.policy}/change_state", req, 120.0).success:
            raise TransitionRefused(f"{label} of {self.policy} was refused (its log says why)")

    def prepare(self, startup_timeout_s: float = SERVICE_TIMEOUT_S) -> None:
        """Policy node configured and inactive, sim bridge reachable.

        `startup_timeout_s` bounds the wait for the policy node to appear: a stack this process has
        just launched needs longer than one already running (model loading, MuJoCo compilation,
        other stacks starting beside it).
        """
        state = self._call(GetState, f"{self.policy}/get_state", GetState.Request(),
                           available_within=startup_timeout_s, resend_s=RESEND_S).current_state.label
        if state == "unconfigured":
            self.transition(Transition.TRANSITION_CONFIGURE, "configure")
        elif state == "active":
            self.transition(Transition.TRANSITION_DEACTIVATE, "deactivate")
        elif state != "inactive":
            raise EvaluationError(f"{self.policy} is {state!r}: expected unconfigured, inactive or active")
        self._wait_reset_service()
        # Our subscriptions must be matched before the first episode: the lock-step sim does not
        # wait for late subscribers.
        topics = [_join(self.config.namespace, "task_status"), f"{self.policy}/telemetry"]
        if self.config.perception:  # the perception node must be up before the first reset's frame
            topics += [_join(self.config.namespace, "object_perception/frames"),
                       _join(self.config.namespace, "object_pose_truth")]
        # With perception the loop runs through a node that may have come up last: its images in
        # and its pose out must be wired too, or the first episode runs blind.
        wired = ([_join(self.config.namespace, "camera/camera/color/image_raw"),
                  _join(self.config.namespace, "camera/camera/aligned_depth_to_color/image_raw"),
                  _join(self.config.namespace, "object_pose")] if self.config.perception else [])
        deadline = time.monotonic() + SERVICE_TIMEOUT_S
        while not (all(self.node.count_publishers(t) > 0 for t in topics + wired)
                   and all(self.node.count_subscribers(t) > 0 for t in wired)):
            if time.monotonic() > deadline:
                raise EvaluationError(f"no publisher on {topics + wired}, or no subscriber on {wired}, "
                                      f"after {SERVICE_TIMEOUT_S} s")
            time.sleep(0.05)
        # Discovery is two-sided: give the other ends a moment too (longer for the perception chain).
        time.sleep(1.0 if self.config.perception else 0.2)
        if self.config.perception:
            self._warm_up_perception()

    def _warm_up_perception(self) -> None:
        """Reset until object_perception reports the reset's frame. On a stack just started, the
        camera's first images can reach it before its subscriptions have matched, and the first
        episode would begin with frames nobody saw: its policy waits for the object's position
        (held cycles that no other run of the seed has)."""
        cfg = self.config
        for _ in range(PERCEPTION_WARM_UP_RESETS):
            with self._cond:
                self._frames.clear()
            self._reset(cfg.seed, cfg.profiles[0])
            try:
                self._wait(lambda: bool(self._frames), 5.0, "a perception report of the reset's frame")
                return
            except EvaluationError:
                continue
        raise EvaluationError(f"object_perception reported no frame of {PERCEPTION_WARM_UP_RESETS} resets: is it "
                              "running, and are the camera topics wired to it?")

    def _reset(self, seed: int, profile: str) -> Any:
        cfg = self.config
        res = self._call(ResetEpisode, _join(cfg.namespace, "reset_episode"),
                         ResetEpisode.Request(task=cfg.task, seed=seed, profile=profile), 60.0)
        if not res.success:
            raise EvaluationError(f"reset_episode(task={cfg.task}, seed={seed}, profile={profile}) "
                                  f"failed: {res.message}")
        return res

    def _wait_reset_service(self) -> None:
        self._service(ResetEpisode, _join(self.config.namespace, "reset_episode"), SERVICE_TIMEOUT_S)

    def command_period(self) -> float:
        req = GetParameters.Request(names=["command_rate_hz"])
        value = self._call(GetParameters, f"{self.policy}/get_parameters", req, resend_s=RESEND_S).values[0]
        if value.type != ParameterType.PARAMETER_DOUBLE or not value.double_value > 0:
            raise EvaluationError(f"{self.policy} has no usable `command_rate_hz` parameter")
        return 1.0 / value.double_value

    def set_head(self, path: str) -> None:
        """Swap the head the way a user would: set the node's `steering_head` parameter."""
        self._set_parameter("steering_head", ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=path))

    def set_noise_seed(self, seed: int) -> None:
        """Restart the policy's noise generator from `seed` (the node applies it at the next replan)."""
        self._set_parameter("noise_seed", ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=seed))

    def _set_parameter(self, name: str, value: ParameterValue) -> None:
        req = SetParameters.Request(parameters=[Parameter(name=name, value=value)])
        result = self._call(SetParameters, f"{self.policy}/set_parameters", req, 120.0).results[0]
        if not result.successful:
            raise EvaluationError(f"{self.policy} refused {name}={_value_text(value)}: {result.reason}")

    def _settle(self, before: int) -> None:
        """Wait until the sim has applied every hold command of a deactivation.

        A jerk-limited deactivation sends several commands (deceleration to rest), each one a
        lock-step period: one landing after the reset would move the new episode's arm.
        """
        try:
            self._wait(lambda: self._status_count > before, 2.0, "the hold step")
        except EvaluationError:
            return  # no joint state was there to hold at: no command, no step
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            count = self._status_count
            time.sleep(0.1)
            if self._status_count == count:
                return

    # ----------------------------------------------------------------------------- episodes
    def run_episode(self, head: str, profile: str, seed: int, dt: float,
                    mcap_path: Path | None = None) -> EpisodeRecord:
        cfg = self.config
        started = time.monotonic()
        if self.lifecycle_state() == "active":
            before = self._status_count
            self.transition(Transition.TRANSITION_DEACTIVATE, "deactivate")
            self._settle(before)
        for attempt in range(1, ACTIVATION_ATTEMPTS + 1):
            with self._cond:
                self._frames.clear()
                self._truth.clear()
            res = self._reset(seed, profile)
            episode_id = res.episode_id
            # The bridge publishes the new episode's first observation (joint state and task_status)
            # before it answers, which fixes the order. DDS delivery to the policy node is still
            # asynchronous: waiting until our own copy of that observation has arrived gives the
            # policy node's copy the same time before the activation below takes its start state.
            self._wait(lambda e=episode_id: self._status is not None and self._status.episode_id >= e, 10.0,
                       f"task_status of episode {episode_id} after reset_episode")
            with self._cond:
                # The episode's first status (the lock-step sim waits for the activation below), so
                # its sim_time is still running, not an ended episode's frozen length.
                t_start = _stamp_s(self._status.header.stamp) - self._status.sim_time
            limit = cfg.episode_timeout_s if cfg.episode_timeout_s > 0 else math.inf
            with self._cond:
                self._telemetry.clear()
                self._tcp.clear()
                self._watch, self._end, self._first_success = (episode_id, limit), None, math.nan
            if mcap_path is not None:
                if self.recorder is None:
                    raise EvaluationError("an MCAP path was given but the config has `record_mcap` off")
                self.recorder.open(mcap_path)
            self.set_noise_seed(seed)
            try:
                self.transition(Transition.TRANSITION_ACTIVATE, "activate")
                break
            except TransitionRefused:
                if attempt == ACTIVATION_ATTEMPTS:
                    raise
                # Refused, typically for want of a joint state: the reset's went out before the
                # policy node's subscription had matched (a stack just started, discovery still
                # going). The lock-step sim waits for the first command; a new reset of the same
                # seed publishes the same first observation again.
                time.sleep(1.0)

        last_progress, last_count = time.monotonic(), -1
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._end is not None, 0.2)
                end, status, count = self._end, self._status, self._status_count
            if end is not None:
                break
            now = time.monotonic()
            if count != last_count:
                last_progress, last_count = now, count
            else:
                self._check_stack()
            if now - last_progress > cfg.stall_timeout_s:
                raise EvaluationError(f"no task_status for {cfg.stall_timeout_s} s during episode "
                                      f"{episode_id}: did the sim bridge or the policy node die?")
            if status is not None and status.episode_id == episode_id and (
                    status.profile != profile or status.seed != seed):
                raise EvaluationError(f"the sim runs episode {episode_id} with profile {status.profile!r} "
                                      f"seed {status.seed}, asked for {profile!r} seed {seed}")
        before = self._status_count
        self.transition(Transition.TRANSITION_DEACTIVATE, "deactivate")
        self._settle(before)
        if self.recorder is not None:
            self.recorder.close()

        with self._cond:
            self._watch = None
            first_success = self._first_success
            telemetry, tcp = list(self._telemetry), np.asarray(self._tcp, dtype=np.float64).reshape(-1, 4)
            frames, truth = list(self._frames), dict(self._truth)
        # Only what happened up to the end: cycles that acted on observations stamped no later. The
        # end is the episode's own length, not the stamp of the message that told us: this process
        # may have read it late, with the stack still running.
        # Our own time limit ends it at the limit, however late the message that crossed it came.
        timed_out = not end.done or end.sim_time > limit + 1e-9
        length = min(float(end.sim_time), limit)
        steps = min(int(end.step), round(limit / dt)) if timed_out else int(end.step)
        t_end = round(t_start + length, 6)
        telemetry = [t for t in telemetry if _stamp_s(t.observation_stamp) <= t_end + 1e-9]
        tcp = tcp[np.round(tcp[:, 0], 6) <= t_end + 1e-9, 1:]
        termination = "timeout" if timed_out else end.termination
        success = bool(end.success) and not timed_out
        sent = [t for t in telemetry if len(t.command) == 7]
        commands = np.asarray([t.command for t in sent], dtype=np.float64)
        cycles = np.asarray([t.cycle for t in sent], dtype=np.int64)
        return EpisodeRecord(
            head=head, head_id=telemetry[-1].head_id if telemetry else "", profile=profile, seed=seed,
            episode_id=int(episode_id), success=success, termination=termination or "failure",
            steps=steps, sim_time=length,
            time_to_success=first_success if success else math.nan,
            mean_sq_jerk=mean_squared_jerk(commands.reshape(-1, 7), dt, cycles),
            inference_ms=[float(t.inference_ms) for t in telemetry
                          if t.replanned and math.isfinite(t.inference_ms)],
            delta_sq_norm=[float(t.delta_sq_norm) for t in telemetry
                           if t.replanned and math.isfinite(t.delta_sq_norm)],
            holds=sum(t.safety_state == SAFETY_HOLD for t in telemetry), tcp=tcp,
            start_q=[float(v) for v in res.joint_positions], wall_s=time.monotonic() - started,
            stale_holds=sum(t.safety_state == SAFETY_HOLD and OBJECT_SOURCE in t.safety_reason for t in telemetry),
            **(perception_record(frames, truth, round(t_start, 6), t_end) if cfg.perception else {}))


def _value_text(value: ParameterValue) -> str:
    if value.type == ParameterType.PARAMETER_INTEGER:
        return str(value.integer_value)
    return value.string_value
