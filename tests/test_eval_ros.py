"""Evaluation end to end through ROS: the eval stack started by scripts/launch_stack.py (sim bridge in
lock-step, policy node triggered by observations, real tiny ONNX models), episodes driven over DDS.

One stack serves the module. The runner starts it with autostart:=true, so its lifecycle driving is
exercised too (the evaluator then finds the node active and takes over); at the end Ctrl-C is sent
to the runner, which must stop every process it started and exit 0.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from lps_steering.core.manifest import load_manifest
from lps_steering.evaluation import EvalConfig
from lps_steering.evaluation.runner import run_evaluation, stop_gracefully

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 0.3  # sim seconds per episode: 30 lock-step control periods at 100 Hz


def _wait_log(path: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text()
        if re.search(pattern, text):
            return text
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise TimeoutError(f"{pattern!r} not in the runner log after {timeout} s:\n{path.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def domain():
    """A DDS domain of this module's own: scripts/with-env exports ROS_DOMAIN_ID=42 (so conftest's
    default does not apply), and a second sim bridge in the domain (a benchmark running beside the
    tests) would answer reset_episode too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
        yield


@pytest.fixture(scope="module")
def stack(domain, tmp_path_factory: pytest.TempPathFactory, tiny_models):
    log = tmp_path_factory.mktemp("stack") / "launch_stack.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "launch_stack.py"), "eval", f"decoder:={tiny_models.decoder}",
             "autostart:=true", "--grace", "15"],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        _wait_log(log, r"activate of /policy_node: ok", proc, 120.0)
        yield proc, log
    finally:
        stop_gracefully(proc, 40.0)


def test_evaluation_through_ros(stack, tiny_models, tmp_path: Path) -> None:
    proc, log = stack
    heads = {"base": "none", "lpds": str(tiny_models.heads["lpds"]), "lps": str(tiny_models.heads["lps"])}
    config = EvalConfig(heads=heads, profiles=["nominal", "object_gap"], episodes=2, seed=5,
                        run_episodes={"base/nominal": 3}, episode_timeout_s=TIMEOUT_S,
                        out_dir=str(tmp_path / "eval"), record_mcap=True)
    summaries, comparisons, episodes, report = run_evaluation(config)

    assert [(s.head, s.profile, s.episodes) for s in summaries] == [
        (h, p, 3 if (h, p) == ("base", "nominal") else 2) for h in heads for p in ("nominal", "object_gap")]
    assert [e.seed for e in episodes] == [5, 6, 7] + [5, 6] * 5
    # Every head against the frozen base, on the seeds both ran (the base's third one has no pair).
    assert [(c.head, c.reference, c.profile, c.pairs) for c in comparisons] == [
        (h, "base", p, 2) for h in ("lpds", "lps") for p in ("nominal", "object_gap")]
    for c in comparisons:  # the tables count the runs' own outcomes, seed by seed
        ref = {e.seed: e.success for e in episodes if (e.head, e.profile) == ("base", c.profile)}
        pairs = [(e.success, ref[e.seed]) for e in episodes if (e.head, e.profile) == (c.head, c.profile)]
        assert (c.both, c.only_head, c.only_reference, c.neither) == (
            sum(h and r for h, r in pairs), sum(h and not r for h, r in pairs),
            sum(r and not h for h, r in pairs), sum(not h and not r for h, r in pairs))
    ids = [e.episode_id for e in episodes]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "every episode is a fresh reset"
    names = {"base": "none", **{k: load_manifest(v).name for k, v in heads.items() if k != "base"}}
    for e in episodes:
        # The head in force is the one asked for: telemetry carries the node's own head id.
        assert e.head_id.split("@")[0] == names[e.head], (e.head, e.head_id)
        assert e.termination == "timeout" and not e.success
        assert TIMEOUT_S - 1e-6 <= e.sim_time <= TIMEOUT_S + 0.05 and 30 <= e.steps <= 35
        assert e.inference_ms and all(0.0 < x < 1000.0 for x in e.inference_ms)
        assert np.isfinite(e.mean_sq_jerk) and e.mean_sq_jerk > 0.0  # the arm was commanded to move
        assert len(e.tcp) >= 10 and np.all(np.isfinite(e.tcp))
        # ||Delta||^2 exists for the residual head only.
        assert bool(e.delta_sq_norm) == (e.head == "lpds")
    # The same seed and profile give the same start for every head: resets are seeded.
    start = {(e.head, e.profile, e.seed): e.start_q for e in episodes}
    for (_head, profile, seed), q in start.items():
        assert len(q) == 7
        np.testing.assert_allclose(q, start[("base", profile, seed)], atol=1e-12)
    text = report.read_text()
    assert "| lpds | object_gap | 0/2 |" in text
    assert "Paired comparison with `base`" in text
    for name in ("success.png", "differences.png", "latency.png", "tcp.png", "results.json"):
        assert (tmp_path / "eval" / name).stat().st_size > 1000

    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    e = next(x for x in episodes if x.head == "lpds" and x.profile == "object_gap")
    path = tmp_path / "eval" / "mcap" / f"lpds_object_gap_{e.seed}.mcap"
    by_topic: dict[str, list] = {}
    with open(path, "rb") as f:
        for _schema, channel, _message, msg in make_reader(f, decoder_factories=[DecoderFactory()]) \
                .iter_decoded_messages():
            by_topic.setdefault(channel.topic, []).append(msg)
    status = by_topic["/task_status"]
    assert {s.episode_id for s in status} == {e.episode_id} and {s.profile for s in status} == {"object_gap"}
    assert len(by_topic["/policy_node/telemetry"]) >= 25
    assert len(by_topic["/fr3_arm_controller/joint_trajectory"]) >= 25
    assert proc.poll() is None, "the stack must still be up"


def test_run_evaluation_action(stack, tiny_models) -> None:
    """The evaluator node of the stack serves lps_msgs/RunEvaluation with the same episode code."""
    import rclpy
    from lps_msgs.action import RunEvaluation
    from rclpy.action import ActionClient
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("eval_action_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        client = ActionClient(node, RunEvaluation, "run_evaluation")
        assert client.wait_for_server(timeout_sec=30.0)
        feedback = []

        def run(goal: RunEvaluation.Goal):
            sent = client.send_goal_async(goal, feedback_callback=lambda f: feedback.append(f.feedback))
            executor.spin_until_future_complete(sent, timeout_sec=30.0)
            handle = sent.result()
            if not handle.accepted:
                return None
            done = handle.get_result_async()
            executor.spin_until_future_complete(done, timeout_sec=120.0)
            return done.result().result

        head = str(tiny_models.heads["lpds"])
        result = run(RunEvaluation.Goal(profile="object_gap", steering_head=head, num_episodes=2, seed=11,
                                        episode_timeout_s=TIMEOUT_S))
        assert result.success and result.episodes == 2 and result.successes == 0
        assert (result.wilson_low, result.wilson_high) == pytest.approx((0.0, 0.6576), abs=1e-4)
        assert [d.seed for d in result.episodes_detail] == [11, 12]
        assert {d.profile for d in result.episodes_detail} == {"object_gap"}
        assert all(d.head_id.startswith("tiny_head_lpds@") and d.termination == "timeout"
                   and math.isfinite(d.delta_sq_norm_mean) for d in result.episodes_detail)
        assert [f.episodes_done for f in feedback] == [1, 2]
        # A head file that does not exist is refused before anything runs.
        assert run(RunEvaluation.Goal(steering_head="/nonexistent/head.onnx", num_episodes=1)) is None
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_parallel_workers_give_the_same_episodes(domain, tiny_models, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two stacks side by side (each in its own ROS domain) split the seeds; lock-step makes every
    seed's episode identical to the one a single fresh stack runs."""
    heads = {"base": "none", "lpds": str(tiny_models.heads["lpds"])}
    # An odd run length: lpds is the second run, so worker 1 takes its seeds 21 and 23, worker 0 seed 22.
    common = dict(heads=heads, profiles=["nominal"], episodes=4, run_episodes={"lpds/*": 3}, seed=21,
                  episode_timeout_s=TIMEOUT_S, launch=True, decoder=str(tiny_models.decoder))
    # Off the module stack's domain: the workers' domains start at ROS_DOMAIN_ID.
    monkeypatch.setenv("ROS_DOMAIN_ID", str(int(os.environ["ROS_DOMAIN_ID"]) + 10))
    single = run_evaluation(EvalConfig(**common, out_dir=str(tmp_path / "one"))).episodes
    _, _, parallel, report = run_evaluation(EvalConfig(**common, out_dir=str(tmp_path / "two"), workers=2))
    for k in (0, 1):
        log = (tmp_path / "two" / f"stack{k}.log").read_text()
        assert "activate of /policy_node" in log or "started /policy_node" in log, log[-2000:]
    assert [(e.head, e.seed) for e in parallel] == [(h, 21 + i) for h in heads for i in range(4 if h == "base" else 3)]
    for a, b in zip(single, parallel, strict=True):
        assert (a.head, a.seed, a.termination) == (b.head, b.seed, b.termination)
        np.testing.assert_allclose(a.start_q, b.start_q, atol=1e-12)
        # The same commands, so the same path, whatever worker ran the seed. The TCP topic is
        # best effort and its recording starts at the reset, so the paths may start a sample
        # apart; the evaluator's time-out ends them a few periods after the limit. A micrometre:
        # far below the difference between seeds (asserted below), above the nanometre
        # differences two runs can show on a loaded machine.
        # The same samples for every shift, up to 20: a loaded machine's recording can end a few short.
        n = min(20, len(a.tcp) - 4, len(b.tcp) - 4)
        assert n >= 10 and abs(len(a.tcp) - len(b.tcp)) <= 3, (a.head, a.seed, len(a.tcp), len(b.tcp))
        shift = min(range(-2, 3), key=lambda k: _path_gap(a.tcp, b.tcp, k, n))
        assert _path_gap(a.tcp, b.tcp, shift, n) < 1e-6, (a.head, a.seed, shift)
    assert not np.allclose(single[0].tcp[:25], single[1].tcp[:25])  # seeds differ, so the check can fail
    assert "| lpds | nominal | 0/3 |" in report.read_text()


def test_a_refused_activation_resets_the_episode_again(stack, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy node refuses activation when the reset's joint state went out before its
    subscription matched (a stack just started): the episode is reset again, a bounded number of
    times. The refusal is injected here; the resets and the episode are the stack's."""
    from lifecycle_msgs.msg import Transition
    from lps_steering.evaluation import ros_client

    common = dict(heads={"base": "none"}, profiles=["nominal"], episodes=1, seed=9, episode_timeout_s=TIMEOUT_S)
    (plain,) = run_evaluation(EvalConfig(**common, out_dir=str(tmp_path / "plain"))).episodes
    real = ros_client.EvaluationClient.transition
    refusals: list[int] = []

    def refusing(n: int):
        def transition(self, transition_id: int, label: str) -> None:
            if transition_id == Transition.TRANSITION_ACTIVATE and len(refusals) < n:
                refusals.append(transition_id)
                raise ros_client.TransitionRefused(f"{label} refused (injected)")
            real(self, transition_id, label)
        return transition

    monkeypatch.setattr(ros_client.EvaluationClient, "transition", refusing(1))
    (again,) = run_evaluation(EvalConfig(**common, out_dir=str(tmp_path / "again"))).episodes
    assert refusals == [Transition.TRANSITION_ACTIVATE]
    assert again.episode_id == plain.episode_id + 2  # one reset more
    np.testing.assert_allclose(again.start_q, plain.start_q, atol=1e-12)
    assert (again.termination, again.steps) == (plain.termination, plain.steps)
    shift = min(range(-2, 3), key=lambda k: _path_gap(plain.tcp, again.tcp, k))
    assert _path_gap(plain.tcp, again.tcp, shift) < 1e-6

    refusals.clear()
    monkeypatch.setattr(ros_client.EvaluationClient, "transition", refusing(ros_client.ACTIVATION_ATTEMPTS))
    with pytest.raises(ros_client.TransitionRefused, match="refused"):
        run_evaluation(EvalConfig(**common, out_dir=str(tmp_path / "never")))
    assert len(refusals) == ros_client.ACTIVATION_ATTEMPTS


def test_a_resumed_evaluation_runs_only_the_missing_episodes(stack, tiny_models, tmp_path: Path) -> None:
    heads = {"base": "none", "lpds": str(tiny_models.heads["lpds"])}
    common = dict(heads=heads, profiles=["nominal"], seed=40, episode_timeout_s=TIMEOUT_S, out_dir=str(tmp_path / "e"))
    first = run_evaluation(EvalConfig(**common, episodes=2)).episodes
    ran: list[tuple[str, int]] = []
    more = run_evaluation(EvalConfig(**common, episodes=3, resume=True),
                          progress=lambda e, done, total: ran.append((e.head, e.seed))).episodes
    assert ran == [("base", 42), ("lpds", 42)]
    assert [(e.head, e.seed) for e in more] == [(h, 40 + i) for h in heads for i in range(3)]
    kept = [e for e in more if e.seed < 42]
    for a, b in zip(first, kept, strict=True):
        assert (a.head, a.seed, a.termination, a.steps) == (b.head, b.seed, b.termination, b.steps)
        np.testing.assert_array_equal(a.tcp, b.tcp)
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert len(results["episodes"]) == 6
    # With another first seed the journal is refused; without resume the folder starts afresh.
    with pytest.raises(ValueError, match="seed 40 -> 41"):
        run_evaluation(EvalConfig(**dict(common, seed=41), episodes=1, resume=True))
    again = run_evaluation(EvalConfig(**dict(common, heads={"base": "none"}), episodes=1)).episodes
    assert [(e.head, e.seed) for e in again] == [("base", 40)]
    assert len((tmp_path / "e" / "episodes.jsonl").read_text().splitlines()) == 2


def test_runner_forwards_ctrl_c(stack) -> None:
    proc, log = stack
    pids = [int(p) for p in re.findall(r"started /\w+ \(pid (\d+)\)", log.read_text())]
    assert len(pids) == 3
    proc.send_signal(signal.SIGINT)
    assert proc.wait(40) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_parallel_workers_need_their_own_stacks() -> None:
    with pytest.raises(ValueError, match="`workers` must be 1 unless `launch` is set"):
        EvalConfig(workers=2)
    with pytest.raises(ValueError, match="`workers` must be an integer in"):
        EvalConfig(workers=0)
    from lps_steering.evaluation.runner import worker_domains

    assert worker_domains(3, base=40) == [40, 41, 42]
    with pytest.raises(ValueError, match="domain ids must lie in 0..232"):
        worker_domains(3, base=231)


def _path_gap(a: np.ndarray, b: np.ndarray, shift: int, n: int = 20) -> float:
    """Largest distance between a[i] and b[i + shift] over n samples after the first two."""
    return float(np.abs(a[2:2 + n] - b[2 + shift:2 + shift + n]).max())


def test_a_killed_runner_takes_its_stack_down(domain, tiny_models, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL leaves the runner no chance to stop the stack it launched; the stack must notice its
    parent is gone and stop, or the next evaluation in the domain would meet a second sim bridge."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(int(os.environ["ROS_DOMAIN_ID"]) + 20))
    out = tmp_path / "eval"
    code = (f"from lps_steering.evaluation.runner import run_evaluation\n"
            f"from lps_steering.evaluation import EvalConfig\n"
            f"run_evaluation(EvalConfig(heads={{'base': 'none'}}, episodes=50, seed=3, launch=True, "
            f"decoder={str(tiny_models.decoder)!r}, out_dir={str(out)!r}))\n")
    runner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        log = out / "stack.log"
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and not (log.exists() and "stack 'eval' up" in log.read_text()):
            assert runner.poll() is None, "the runner ended before its stack came up"
            time.sleep(0.2)
        pids = [int(p) for p in re.findall(r"started /\w+ \(pid (\d+)\)", log.read_text())]
        assert len(pids) == 3, log.read_text()[-2000:]
        time.sleep(1.0)  # episodes under way
        runner.kill()
        runner.wait(10)
        deadline = time.monotonic() + 40.0
        alive = list(pids)
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [p for p in alive if _alive(p)]
        assert not alive, f"stack processes {alive} still run after their runner was killed"
        assert "has exited: stopping the stack" in log.read_text()
    finally:
        if runner.poll() is None:
            runner.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) no longer runs.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def test_a_stack_that_dies_at_start_ends_the_wait(domain, tiny_models, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The sim bridge refuses an unknown task and exits, which stops the launched stack; the runner
    must say so instead of waiting out its start-up limit (180 s) for services that never come."""
    from lps_steering.evaluation.ros_client import EvaluationError

    monkeypatch.setenv("ROS_DOMAIN_ID", str(int(os.environ["ROS_DOMAIN_ID"]) + 25))
    started = time.monotonic()
    with pytest.raises(EvaluationError, match=r"eval stack exited with code \d+; see .*stack\.log"):
        run_evaluation(EvalConfig(heads={"base": "none"}, episodes=1, task="no_such_task", launch=True,
                                  decoder=str(tiny_models.decoder), out_dir=str(tmp_path / "eval")))
    assert time.monotonic() - started < 90.0
    assert "no_such_task" in (tmp_path / "eval" / "stack.log").read_text()


def test_perception_in_the_loop_beside_its_ground_truth_twin(domain, tiny_models, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`perception: true` starts object_perception in the stack and the sim stops publishing the
    object's pose; every episode then carries perception's frames and errors, and the report pairs
    the run with its ground-truth twin. Run twice: lock-step through perception repeats itself."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(int(os.environ["ROS_DOMAIN_ID"]) + 20))
    common = dict(heads={"base": "none"}, profiles=["nominal"], episodes=2, seed=31, episode_timeout_s=TIMEOUT_S,
                  launch=True, decoder=str(tiny_models.decoder))
    truth = run_evaluation(EvalConfig(**common, out_dir=str(tmp_path / "truth")))
    assert all(e.frames == 0 for e in truth.episodes)
    perceived = [run_evaluation(EvalConfig(**common, out_dir=str(tmp_path / f"perception{k}"), perception=True,
                                           camera_size=[160, 120],
                                           ground_truth=str(tmp_path / "truth" / "results.json")))
                 for k in range(2)]
    log = (tmp_path / "perception0" / "stack.log").read_text()
    assert "object perception: camera/camera -> object_pose" in log, log[-3000:]
    for e in perceived[0].episodes:
        # 0.3 s at 30 Hz: the reset's frame and 9 more, one each 3-4 control periods.
        assert e.frames >= 9 and e.frames_unseen == 0, (e.frames, e.frames_unseen)
        assert len(e.perception_error_mm) == e.frames and max(e.perception_error_mm) < 25.0, e.perception_error_mm
        assert e.longest_blind_s < 0.05
    a, b = perceived[0].episodes, perceived[1].episodes
    # The same frames perceived the same way, from the first one (the evaluator resets until
    # perception reports a frame before the first episode: nothing is lost to a late match).
    assert [(e.frames, e.perception_error_mm) for e in a] == [(e.frames, e.perception_error_mm) for e in b]
    assert [e.perception_error_mm for e in a][0] != [e.perception_error_mm for e in a][1]  # seeds differ
    results = json.loads((tmp_path / "perception0" / "results.json").read_text())
    assert results["ground_truth_twins"][0]["pairs"] == 2
    text = perceived[0].report.read_text()
    assert "## Perception in the loop" in text and "ground-truth twin" in text



def test_a_lost_state_request_is_sent_again(domain, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server just discovered can drop the first request or its answer (its side of the match not
    yet made, on a loaded machine). The evaluator asks for the lifecycle state again instead of
    waiting out its limit; here the server sits on its first request past that limit."""
    import threading

    import rclpy
    from lifecycle_msgs.srv import GetState
    from lps_steering.evaluation import ros_client
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import MultiThreadedExecutor

    # Above the domains of the module's stacks (150-224 with their offsets), of this run or another.
    monkeypatch.setenv("ROS_DOMAIN_ID", str(225 + os.getpid() % 8))
    monkeypatch.setattr(ros_client, "RESEND_S", 0.5)
    context = rclpy.Context()
    rclpy.init(context=context)
    server = rclpy.create_node("policy_node", context=context)
    release, requests = threading.Event(), []

    def answer(_req: GetState.Request, res: GetState.Response) -> GetState.Response:
        requests.append(time.monotonic())
        if len(requests) == 1:
            release.wait(10.0)  # the first request's answer never comes in time
        res.current_state.label = "inactive"
        return res

    server.create_service(GetState, "/policy_node/get_state", answer, callback_group=ReentrantCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(server)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    client = ros_client.EvaluationClient(EvalConfig(heads={"base": "none"}))
    try:
        started = time.monotonic()
        assert client.lifecycle_state() == "inactive"
        assert len(requests) >= 2 and time.monotonic() - started < 3.0
        # The request still unanswered is dropped from the client's pending ones.
        assert not client._clients["/policy_node/get_state"]._pending_requests
    finally:
        release.set()
        client.close()
        executor.shutdown()
        server.destroy_node()
        rclpy.shutdown(context=context)
