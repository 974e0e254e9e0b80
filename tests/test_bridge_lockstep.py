"""The sim bridge in lock-step mode, as a real process over DDS: contract, resets, commands, camera.

One bridge process serves the whole module (camera on, small images); every test starts its own
episode with ``reset_episode`` so tests do not depend on each other's state.
"""

from __future__ import annotations

import math
import time

import mujoco
import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from lps_msgs.msg import TaskStatus
from lps_msgs.srv import ResetEpisode
from lps_sim import ros_io
from lps_sim.tasks import make_task
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_util import Collector, NodeProcess, RosClient
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

ARM = [f"fr3_joint{i}" for i in range(1, 8)]
PERIOD = 0.01
W, H = 96, 72
CAM = "camera/camera"
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


class Harness:
    def __init__(self, client: RosClient, proc: NodeProcess) -> None:
        self.client, self.proc, n = client, proc, client.node
        self.joints = Collector(n, JointState, "joint_states", 1000)
        self.clock = Collector(n, Clock, "/clock", 1000)
        self.status = Collector(n, TaskStatus, "task_status", 1000)
        self.color = Collector(n, Image, f"{CAM}/color/image_raw", 10)
        self.depth = Collector(n, Image, f"{CAM}/aligned_depth_to_color/image_raw", 10)
        self.info = Collector(n, CameraInfo, f"{CAM}/color/camera_info", 10)
        self.tcp = Collector(n, PoseStamped, "franka_robot_state_broadcaster/current_pose", BEST_EFFORT)
        self.diag = Collector(n, DiagnosticArray, "diagnostics", 10)
        self.cmd_pub = n.create_publisher(JointTrajectory, "fr3_arm_controller/joint_trajectory", 10)
        self.grip_pub = n.create_publisher(Float64, "gripper_command", 10)

    def reset(self, seed: int, task: str = "", profile: str = "") -> ResetEpisode.Response:
        for c in (self.joints, self.clock, self.status, self.color, self.depth, self.info):
            c.clear()
        req = ResetEpisode.Request(task=task, seed=seed, profile=profile)
        res = self.client.call(ResetEpisode, "reset_episode", req, timeout=30.0)
        if res.success:
            self.joints.wait_count(1, 10.0)
            self.status.wait_count(1, 10.0)
        return res

    def step(self, q, tfs: float = PERIOD, names=ARM, stamp: float = 0.0) -> JointState:
        """One lock-step cycle: command, then the observation it produces."""
        n, s = len(self.joints.snapshot()), len(self.status.snapshot())
        point = JointTrajectoryPoint(positions=[float(v) for v in q],
                                     time_from_start=Duration(nanosec=int(round(tfs * 1e9))))
        msg = JointTrajectory(joint_names=list(names), points=[point])
        msg.header.stamp = ros_io.time_msg(stamp)
        self.cmd_pub.publish(msg)
        self.status.wait_count(s + 1, 10.0)
        return self.joints.wait_count(n + 1, 10.0)[-1]

    def last_q(self) -> np.ndarray:
        return np.array(self.joints.snapshot()[-1].position[:7])

    def counters(self) -> dict[str, str]:
        self.diag.clear()
        return {kv.key: kv.value for kv in self.diag.wait_count(1, 5.0)[-1].status[0].values}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    log = tmp_path_factory.mktemp("bridge") / "sim_bridge.log"
    params = {"clock_mode": "lockstep", "lockstep_timeout_s": 0.0, "camera_enabled": True,
              "camera_width": W, "camera_height": H, "camera_rate_hz": 20.0, "seed": 1}
    with NodeProcess("lps_sim.bridge_node", log, params) as proc, RosClient("bridge_test") as client:
        h = Harness(client, proc)
        # The service answering means the process is up; the reset after it publishes an observation.
        h.reset(0)
        yield h
        assert proc.proc.poll() is None, f"bridge died:\n{proc.log()}"


def _stamp(msg) -> float:
    return ros_io.time_s(msg.header.stamp)


def test_topic_contract_names_types_qos(bridge):
    node = bridge.client.node
    reliable, best_effort = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    expected = {
        "/joint_states": ("sensor_msgs/msg/JointState", reliable),
        "/franka_robot_state_broadcaster/measured_joint_states": ("sensor_msgs/msg/JointState", best_effort),
        "/franka_robot_state_broadcaster/current_pose": ("geometry_msgs/msg/PoseStamped", best_effort),
        "/object_pose": ("geometry_msgs/msg/PoseStamped", reliable),
        "/target_pose": ("geometry_msgs/msg/PoseStamped", reliable),
        "/task_status": ("lps_msgs/msg/TaskStatus", reliable),
        "/clock": ("rosgraph_msgs/msg/Clock", reliable),
        f"/{CAM}/color/image_raw": ("sensor_msgs/msg/Image", reliable),
        f"/{CAM}/aligned_depth_to_color/image_raw": ("sensor_msgs/msg/Image", reliable),
        f"/{CAM}/color/camera_info": ("sensor_msgs/msg/CameraInfo", reliable),
    }
    for topic, (type_name, reliability) in expected.items():
        infos = [i for i in node.get_publishers_info_by_topic(topic) if i.node_name == "sim_bridge"]
        assert len(infos) == 1, f"{topic}: {len(infos)} publishers from sim_bridge"
        assert infos[0].topic_type == type_name, topic
        assert infos[0].qos_profile.reliability == reliability, topic
    for topic, type_name in (("/fr3_arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory"),
                             ("/gripper_command", "std_msgs/msg/Float64")):
        subs = [i for i in node.get_subscriptions_info_by_topic(topic) if i.node_name == "sim_bridge"]
        assert [s.topic_type for s in subs] == [type_name], topic
    services = dict(node.get_service_names_and_types_by_node("sim_bridge", "/"))
    assert services["/reset_episode"] == ["lps_msgs/srv/ResetEpisode"]


def test_joint_state_names_and_best_effort_tcp_pose(bridge):
    bridge.reset(2)
    js = bridge.joints.snapshot()[-1]
    assert list(js.name) == ARM + ["fr3_finger_joint1", "fr3_finger_joint2"]
    assert len(js.position) == len(js.velocity) == len(js.effort) == 9
    bridge.step(bridge.last_q())
    # The TCP pose is the forward kinematics of the published joints (runtime core, independent code).
    from lps_steering.core.kinematics import tcp_position
    pose = bridge.tcp.wait_count(1, 5.0)[-1]
    p = pose.pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], tcp_position(bridge.last_q()), atol=2e-3)
    assert pose.header.frame_id == "fr3_link0"


def test_reset_is_seeded_and_refuses_unknown_names(bridge):
    a = bridge.reset(11)
    q_a = bridge.last_q()
    b = bridge.reset(11)
    c = bridge.reset(12)
    assert a.success and b.success and c.success, (a.message, b.message, c.message)
    assert b.episode_id == a.episode_id + 1 and c.episode_id == b.episode_id + 1
    np.testing.assert_array_equal(a.joint_positions, b.joint_positions)
    assert np.abs(np.subtract(a.joint_positions, c.joint_positions)).max() > 1e-3
    np.testing.assert_allclose(q_a, a.joint_positions)
    status = bridge.status.snapshot()[-1]
    assert (status.seed, status.step, status.episode_id, status.done) == (12, 0, c.episode_id, False)

    bad = bridge.reset(1, task="stack_cubes")
    assert not bad.success and "stack_cubes" in bad.message and "pick_place" in bad.message
    bad = bridge.reset(1, profile="moon_gravity")
    assert not bad.success and "moon_gravity" in bad.message and "nominal" in bad.message
    assert bad.episode_id == c.episode_id  # a refused reset starts no episode


def test_reset_to_another_task_and_back(bridge):
    res = bridge.reset(3, task="peg_ring")
    assert res.success, res.message
    assert bridge.status.snapshot()[-1].task == "peg_ring"
    bridge.step(bridge.last_q())
    assert bridge.reset(3, task="pick_place").success


def test_lockstep_does_not_advance_without_commands(bridge):
    bridge.reset(4)
    t0 = _stamp(bridge.joints.snapshot()[-1])
    n_clock = len(bridge.clock.snapshot())
    time.sleep(1.0)
    assert len(bridge.joints.snapshot()) == 1
    assert len(bridge.clock.snapshot()) == n_clock
    q = bridge.last_q()
    stamps, steps = [t0], [0]
    for _ in range(5):
        js = bridge.step(q)
        stamps.append(_stamp(js))
        steps.append(bridge.status.snapshot()[-1].step)
        time.sleep(0.05)  # extra wall time must not turn into extra sim time
    np.testing.assert_allclose(np.diff(stamps), PERIOD, atol=1e-6)
    assert steps == [0, 1, 2, 3, 4, 5]
    assert len(bridge.joints.snapshot()) == 6  # exactly one observation per command
    assert ros_io.time_s(bridge.clock.snapshot()[-1].clock) == pytest.approx(stamps[-1])


def test_command_following_policy_style(bridge):
    """Targets streamed one period apart (what the policy node sends) move the arm there."""
    bridge.reset(5)
    q0 = bridge.last_q()
    goal = q0 + np.array([0.25, -0.15, 0.0, 0.2, 0.0, -0.2, 0.3])
    for k in range(1, 61):
        bridge.step(q0 + min(k / 40, 1.0) * (goal - q0))
    mid_error = np.abs(bridge.last_q() - goal).max()
    for _ in range(40):
        bridge.step(goal)
    np.testing.assert_allclose(bridge.last_q(), goal, atol=5e-3)
    assert mid_error < np.abs(q0 - goal).max()


def test_trajectory_time_from_start_is_interpolated(bridge):
    """One stamped trajectory reaching its goal 0.4 s after its stamp, re-sent every period (lockstep
    needs a message per period): the target moves linearly, it does not jump to the goal."""
    bridge.reset(6)
    # A zero stamp means "start on receipt" (as for a joint trajectory controller), and the sim
    # clock starts at zero: step once so the stamp below is a real time.
    bridge.step(bridge.last_q(), tfs=0.0)
    q0 = bridge.last_q()
    t0 = _stamp(bridge.joints.snapshot()[-1])
    goal = q0.copy()
    goal[0] += 0.3
    progress = []
    for _ in range(70):
        bridge.step(goal, tfs=0.4, stamp=t0)
        progress.append((bridge.last_q()[0] - q0[0]) / 0.3)
    # The servos lag a ramp by about kv / kp = 0.1 s; a jump would be ~85 % there after 0.2 s.
    assert 0.2 < progress[19] < 0.6, progress[19]
    assert progress[9] < progress[19] < progress[39]
    assert progress[-1] == pytest.approx(1.0, abs=0.02)


def test_wrong_joint_names_are_refused_and_the_arm_holds(bridge):
    bridge.reset(7)
    q0 = bridge.last_q()
    before = int(bridge.counters()["refused"])
    panda = [f"panda_joint{i}" for i in range(1, 8)]
    for _ in range(30):
        bridge.step(q0 + 0.3, names=panda)  # still one period per message: lockstep never stalls
    np.testing.assert_allclose(bridge.last_q(), q0, atol=2e-3)
    assert int(bridge.counters()["refused"]) >= before + 30
    assert "joint_names" in bridge.proc.log() and "panda_joint1" in bridge.proc.log()


def test_gripper_fallback_topic(bridge):
    bridge.reset(8)
    q0 = bridge.last_q()
    width = lambda: sum(bridge.joints.snapshot()[-1].position[7:9])  # noqa: E731
    assert width() == pytest.approx(0.08, abs=2e-3)
    bridge.grip_pub.publish(Float64(data=0.03))
    time.sleep(0.2)  # the width applies from the next period on; give DDS time to deliver it
    for _ in range(80):
        bridge.step(q0)
    assert width() == pytest.approx(0.03, abs=3e-3)
    bridge.grip_pub.publish(Float64(data=-0.5))  # refused: width unchanged
    time.sleep(0.2)
    for _ in range(20):
        bridge.step(q0)
    assert width() == pytest.approx(0.03, abs=3e-3)
    log = bridge.proc.log()
    assert "fallback topic `gripper_command`" in log and "-0.5" in log


def test_camera_images_and_depth_match_the_geometry(bridge):
    bridge.reset(9)
    color = bridge.color.wait_count(1, 10.0)[-1]
    depth = bridge.depth.wait_count(1, 10.0)[-1]
    info = bridge.info.wait_count(1, 10.0)[-1]
    assert (color.encoding, depth.encoding) == ("rgb8", "16UC1")
    assert color.header.frame_id == depth.header.frame_id == info.header.frame_id
    for msg in (color, depth, info):
        assert (msg.width, msg.height) == (W, H)
    assert color.step == 3 * W and depth.step == 2 * W
    rgb, mm = ros_io.image_to_array(color), ros_io.image_to_array(depth)
    assert rgb.std() > 10  # a scene, not a blank frame

    # Independent geometry: cast a ray per pixel through camera_info's K in this process's own
    # copy of the same episode, and compare the distance along the optical axis with the depth.
    k = np.array(info.k).reshape(3, 3)
    task = make_task("pick_place", robot="fr3")
    task.reset(seed=9, profile="nominal")
    m, d = task.model, task.data
    cam = task.ids.front_camera
    mujoco.mj_forward(m, d)
    origin, rot = d.cam_xpos[cam].copy(), d.cam_xmat[cam].reshape(3, 3)
    # MuJoCo cameras look along -z with y up; the optical frame looks along +z with y down.
    optical_to_world = rot @ np.diag([1.0, -1.0, -1.0])
    geomgroup = np.array([1, 1, 1, 0, 0, 0], dtype=np.uint8)  # the groups the renderer draws
    geom_id = np.zeros(1, dtype=np.int32)
    errors, table_hits = [], 0
    for v in range(2, H, 5):
        for u in range(2, W, 5):
            ray_opt = np.array([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], 1.0])
            direction = optical_to_world @ (ray_opt / np.linalg.norm(ray_opt))
            dist = mujoco.mj_ray(m, d, origin, direction, geomgroup, 1, -1, geom_id)
            if geom_id[0] != task.ids.table_geom or mm[v, u] == 0:
                continue
            table_hits += 1
            expected = dist * (ray_opt[2] / np.linalg.norm(ray_opt))
            errors.append(mm[v, u] / 1000.0 - expected)
    errors = np.abs(errors)
    assert table_hits > 50, "the table should fill much of the front camera's view"
    assert np.median(errors) < 0.003 and np.quantile(errors, 0.9) < 0.01, (np.median(errors), errors.max())


def test_camera_rate_follows_sim_time(bridge):
    bridge.reset(10)
    q = bridge.last_q()
    n0 = len(bridge.color.snapshot())
    for _ in range(20):  # 0.2 s simulated at 20 Hz: 4 more frames
        bridge.step(q)
    time.sleep(0.3)
    frames = bridge.color.snapshot()[n0 - 1:]
    stamps = [_stamp(f) for f in frames]
    assert len(stamps) == 5, stamps
    np.testing.assert_allclose(np.diff(stamps), 0.05, atol=1e-6)


def test_a_finished_episode_keeps_reporting_its_length(bridge):
    """After `done` the stack may run on (nobody has deactivated the policy yet) and a reader may
    see a later message than the first `done` (a full queue, a paused process): every message
    after the end must still say how long the episode was."""
    bridge.reset(6)
    q = bridge.last_q()
    limit = make_task("pick_place").max_steps
    for _ in range(limit):
        bridge.step(q)  # an arm that never moves: the episode times out
    ends = [s for s in bridge.status.snapshot() if s.done]
    assert len(ends) == 1 and ends[0].termination == "timeout", [(s.step, s.termination) for s in ends]
    end = ends[0]
    assert end.step == limit and end.sim_time == pytest.approx(limit * PERIOD)
    for _ in range(20):
        bridge.step(q)
    after = [s for s in bridge.status.snapshot() if s.done][1:]
    assert len(after) == 20
    assert {(s.step, s.sim_time, s.termination, s.success) for s in after} == {
        (end.step, end.sim_time, end.termination, end.success)}
    assert _stamp(after[-1]) == pytest.approx(_stamp(end) + 20 * PERIOD)  # the clock itself went on


def test_no_missed_steps_when_commands_keep_up(bridge):
    assert bridge.counters()["missed_steps"] == "0"
    assert math.isfinite(float(bridge.counters()["sim_time"]))


def test_reset_publishes_the_new_episode_before_it_answers(monkeypatch):
    """An evaluator activates the policy on the answer: the new joint state must already be out.

    In-process (the bridge's own node and physics thread, no executor needed): the order of the
    observation publish and the answer is recorded, which over DDS would be a race to observe.
    """
    import rclpy
    from lps_sim import bridge_node
    from rclpy.parameter import Parameter

    order: list[str] = []

    class Recorded(bridge_node._ResetRequest):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            real_set = self.done.set
            self.done.set = lambda: (order.append("answer"), real_set())[1]

    monkeypatch.setattr(bridge_node, "_ResetRequest", Recorded)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = bridge_node.SimBridge(context=context, parameter_overrides=[
        Parameter("clock_mode", value="lockstep"), Parameter("lockstep_timeout_s", value=0.0)])
    try:
        real_publish = node._publish_observation
        monkeypatch.setattr(node, "_publish_observation",
                            lambda first=False: (order.append("publish"), real_publish(first=first))[1])
        res = node._on_reset(ResetEpisode.Request(seed=3), ResetEpisode.Response())
        assert res.success, res.message
        assert order == ["publish", "answer"]
    finally:
        node.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
