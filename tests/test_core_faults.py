"""The controller under faults, on the shipped decoder and LP-DS head (real ONNX sessions).

A closed-loop arm follows every command it is sent (a lagging position controller), and the
checks are on what would reach the robot: after a fault only braking commands, latched until
resume(), the first command after a hold within one allowed step of the measured joints, every
command's TCP (and its braking path) inside the workspace box, no joint beyond its limits.
Bad heads are the shipped head with its ONNX initializers edited (the `onnx` package) and the
manifest's hash updated, so they pass every manifest check.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from lps_steering.core import NO_HEAD, HeadRefused, sha256_file
from lps_steering.core.controller import ControllerConfig, CycleResult, SteeringController
from lps_steering.core.kinematics import tcp_positions
from lps_steering.core.policy import PolicyOutput
from onnx import numpy_helper

MODELS = Path(__file__).resolve().parents[1] / "models" / "pick_place"
DECODER = MODELS / "decoder.onnx"
LPDS = MODELS / "heads" / "lpds.onnx"
READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
RATE = 100.0
DT = 1.0 / RATE
OBJECT, TARGET = np.array([0.5, 0.0, 0.025]), np.array([0.5, 0.2, 0.0])


def controller(head: Path | str | None = LPDS, **kw) -> SteeringController:
    cfg = ControllerConfig(decoder_path=str(DECODER), head_path=str(head or ""), warmup_runs=1, seed=3, **kw)
    c = SteeringController(cfg)
    c.configure()
    return c


class Arm:
    """A position-controlled arm that lags its commands, and the sensors around it."""

    def __init__(self, c: SteeringController, q=READY, obj=OBJECT, target=TARGET) -> None:
        self.c, self.q, self.obj, self.target = c, np.array(q, float), np.asarray(obj, float), target
        self.t = 0.0
        self.follow = True  # False: the arm's own controller is not running (it stays put)
        self.results: list[CycleResult] = []

    def cycle(self, reading=None, stamp=None) -> CycleResult:
        c = self.c
        c.observe("arm_joint_positions", self.q, self.t)
        c.observe("gripper_width", 0.04, self.t)
        c.observe("object_position", self.obj, self.t)
        c.observe("target_position", self.target, self.t)
        r = c.step(self.t, self.q if reading is None else reading, stamp)
        if r.sendable and self.follow:
            self.q = self.q + 0.5 * (r.command - self.q)
        self.results.append(r)
        self.t += DT
        return r

    def run(self, n: int, **kw) -> list[CycleResult]:
        return [self.cycle(**kw) for _ in range(n)]


def braking_path(c: SteeringController) -> np.ndarray:
    f = copy.deepcopy(c.safety)
    points = [f.last_command]
    for _ in range(2000):
        points.append(f.hold("probe").q)
        if f.at_rest:
            break
    return np.array(points)


def assert_safe(c: SteeringController, results: list[CycleResult]) -> None:
    f = c.safety
    sent = np.array([r.command for r in results if r.sendable])
    assert np.all(sent >= f.q_lo - 1e-12) and np.all(sent <= f.q_hi + 1e-12), "a joint beyond its limit"
    tcp = tcp_positions(sent)
    assert np.all(tcp >= f.ws_min - 1e-12) and np.all(tcp <= f.ws_max + 1e-12), "a TCP outside the box"
    assert np.abs(np.diff(sent, axis=0)).max() <= f.step_max.max() + 1e-12


def edited_head(tmp: Path, edit, name: str = "lpds.onnx") -> Path:
    """The shipped head with the initializers of its output node edited; the manifest follows."""
    model = onnx.load(str(LPDS))
    out = model.graph.output[0].name
    node = next(n for n in model.graph.node if out in n.output)
    inits = {i.name: i for i in model.graph.initializer}
    for inp in node.input:
        if inp in inits:
            arr = edit(numpy_helper.to_array(inits[inp]).astype(np.float32).copy())
            inits[inp].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), inp))
    dst = tmp / name
    onnx.save(model, str(dst))
    manifest = json.loads(LPDS.with_suffix(".json").read_text())
    manifest["onnx_sha256"] = sha256_file(dst)
    dst.with_suffix(".json").write_text(json.dumps(manifest))
    return dst


def test_step_never_raises_and_brakes_on_malformed_measurements():
    c = controller()
    arm = Arm(c)
    arm.run(60)
    assert not any(r.held for r in arm.results)
    moving = np.abs(c.safety.velocity).max()
    assert moving > 0.01
    garbage = [[], None, "abc", np.zeros(9), np.full(7, np.nan), {"a": 1}, object(), np.zeros((2, 7))]
    for bad in garbage:
        r = arm.cycle(reading=bad)
        assert r.held and r.latched and r.sendable, (bad, r.safety_reason)
    assert "must be 7 values, got 0" in arm.results[60].safety_reason
    # Good readings again: still braking (latched), and it comes to rest.
    held = arm.run(60)
    assert all(r.held for r in held) and c.safety.at_rest
    assert_safe(c, arm.results)
    assert SteeringController(c.config).step(0.0, READY).held  # unconfigured: a hold, not an error
    r = c.step(math.nan, READY)
    assert r.held and "cycle time must be a finite number" in r.safety_reason and r.sendable


def test_implausible_measurements_hold_at_once_and_latch():
    c = controller()
    arm = Arm(c)
    arm.run(50)
    beyond = arm.q.copy()
    beyond[0] = c.safety.limits.q_max[0] + 0.4
    r = arm.cycle(reading=beyond)
    assert r.held and "joint 1" in r.safety_reason and "outside its limits" in r.safety_reason
    c.resume()
    arm.run(20)
    # +0.5 rad on joint 1 for one second: held from the first reading, never a steering command.
    start = len(arm.results)
    for _ in range(100):
        offset = arm.q.copy()
        offset[0] += 0.5
        arm.cycle(reading=offset)
    faulted = arm.results[start:]
    assert all(r.held and r.latched for r in faulted)
    assert "measured joint 1 moved 0.4" in faulted[0].safety_reason
    assert any("tracking error at joint 1" in r.safety_reason for r in faulted)
    assert all(r.fault for r in faulted)  # the cause is seen in every one of these cycles
    after = arm.run(30)  # true readings again: still latched, though no fault is seen any more
    assert all(r.held and r.latched and not r.fault for r in after)
    assert_safe(c, arm.results)


def test_first_command_after_resume_starts_from_the_measured_pose():
    c = controller()
    arm = Arm(c)
    arm.run(80)
    # The robot is restarted elsewhere while the node waits: a reading from another pose, its
    # clock started again, its controller not yet following the brake commands.
    elsewhere = READY + np.array([0.3, -0.2, 0.2, 0.3, -0.2, 0.3, -0.4])
    arm.q, arm.t, arm.follow = elsewhere.copy(), 0.5, False
    r = arm.cycle()
    assert r.held and r.latched and ("before the previous one" in r.safety_reason
                                      or "moved" in r.safety_reason or "tracking" in r.safety_reason)
    held = arm.run(50)
    assert all(r.held for r in held)
    arm.follow = True
    c.resume()
    measured = arm.q.copy()
    np.testing.assert_array_equal(measured, elsewhere)
    r = arm.cycle()
    assert not r.held and r.replanned
    assert np.abs(r.command - measured).max() <= c.safety.step_max.max() + 1e-12
    arm.run(100)
    assert not arm.results[-1].held


def test_resume_during_a_brake_finishes_the_brake_before_restarting_from_measured():
    """The measurement trails a moving command; re-anchoring there at speed would reverse the stream."""
    c = controller()
    arm = Arm(c)
    arm.run(120)
    assert np.abs(c.safety.velocity).max() > 0.05, "the arm should be moving before the fault"
    last = c.safety.last_command
    c.hold("operator stop")
    braking = [arm.cycle()]
    c.resume()  # asked at once, while the brake still has speed
    while braking[-1].held and len(braking) < 300:
        measured = arm.q.copy()
        braking.append(arm.cycle())
    first = braking.pop()
    assert not first.held, "the arm must move again once the brake has finished"
    # Until then the stream only brakes: per joint, no reversal and no speed-up.
    steps = np.diff(np.array([last] + [r.command for r in braking]), axis=0)
    assert np.all(steps[1:] * steps[:-1] >= -1e-15), "a braking stream reversed"
    assert np.all(np.abs(steps[1:]) <= np.abs(steps[:-1]) + 1e-12), "a braking stream sped up"
    assert np.abs(braking[-1].velocity).max() == 0.0
    # ... and then it starts from where the arm is.
    assert np.abs(first.command - measured).max() <= c.safety.step_max.max() + 1e-12


def test_a_fault_found_under_a_callers_hold_is_kept_when_the_caller_releases_its_own():
    """The node holds for staleness and, with auto-resume, releases it; a fault the core found
    meanwhile must still wait for resume()."""
    c = controller()
    arm = Arm(c)
    arm.run(60)
    c.hold("watchdog: no joint_states for 0.21 s")
    arm.run(5)
    assert not c.own_fault
    bad = arm.q.copy()
    bad[0] += 0.4  # one implausible reading while held
    r = arm.cycle(reading=bad)
    assert r.held and r.latched
    assert "faster than the robot can" in c.own_fault, c.own_fault
    held = arm.run(20)  # true readings again: the core's fault stays latched
    assert all(x.held and x.latched for x in held)
    c.resume()
    assert not c.own_fault and not c.latched


def test_a_restarted_simulation_holds_where_its_arm_is_not_where_the_commands_were():
    """forget_commands(): the brake of the old commands would be a jump for the new arm."""
    c = controller()
    arm = Arm(c)
    arm.run(120)
    assert np.abs(c.safety.velocity).max() > 0.05, "the arm should be moving before the restart"
    c.hold("the simulation restarted")
    c.forget_commands()
    # The new simulation starts its arm at rest somewhere else, with its clock from zero.
    elsewhere = READY + np.array([0.1, -0.1, 0.05, 0.1, 0.0, 0.1, -0.1])
    arm.q, arm.t = elsewhere.copy(), 0.0
    held = arm.run(20)
    assert all(r.held and r.latched and r.sendable for r in held)
    for r in held:
        np.testing.assert_array_equal(r.command, elsewhere)  # stands where the new arm is
    c.resume()
    r = arm.cycle()
    assert not r.held, r.safety_reason
    assert np.abs(r.command - elsewhere).max() <= c.safety.step_max.max() + 1e-12
    arm.run(100)
    assert_safe(c, held + arm.results[-101:])  # the new arm's stream: no jump anywhere in it


@pytest.mark.parametrize("obj", [(5.0, 0.0, 0.03), (-3.0, -3.0, -2.0), (1e6, 1e6, 1e6)])
def test_hostile_object_positions_never_leave_the_box(obj):
    c = controller()
    arm = Arm(c, obj=obj)
    for _ in range(500):
        arm.cycle()
        path = tcp_positions(braking_path(c))
        assert np.all(path >= c.safety.ws_min - 1e-12) and np.all(path <= c.safety.ws_max + 1e-12)
    assert_safe(c, arm.results)


def test_tight_box_near_the_floor_is_never_left():
    box_min, box_max = (0.25, -0.3, 0.42), (0.6, 0.3, 0.6)
    c = controller(workspace_min=box_min, workspace_max=box_max)
    arm = Arm(c, obj=(0.5, 0.0, -0.5))
    for _ in range(500):
        arm.cycle()
    assert_safe(c, arm.results)
    assert any("braking before the boundary" in r.safety_reason for r in arm.results)
    assert not arm.results[-1].held  # braked at the wall, not stuck in a hold


def test_heads_with_broken_outputs_are_refused_and_the_running_head_kept(tmp_path):
    c = controller()
    running = c.head_id

    def nan_weight(a):
        a.reshape(-1)[0] = np.nan
        return a

    with pytest.raises(HeadRefused, match="not finite"):
        c.swap_head(str(edited_head(tmp_path, nan_weight, "nan.onnx")))
    with pytest.raises(HeadRefused, match=r"more than 10 x its trust_region_delta \(4\)"):
        c.swap_head(str(edited_head(tmp_path, lambda a: a * 10.0, "huge.onnx")))
    assert c.head_id == running
    arm = Arm(c)
    assert not any(r.held for r in arm.run(50))


def test_guard_is_on_by_default_and_reported_when_it_scales(tmp_path):
    # The shipped weights declared with a trust region ~6x tighter (0.7 instead of 4): within the
    # load-time margin on average, beyond the guard on many states.
    head = edited_head(tmp_path, lambda a: a, "tight.onnx")
    manifest = json.loads(head.with_suffix(".json").read_text())
    manifest["trust_region_delta"] = 0.7
    head.with_suffix(".json").write_text(json.dumps(manifest))
    c = controller(head=head)
    bound = c.config.guard * c.trust_region_delta
    scene = dict(obj=(0.45, -0.1, 0.025), target=(0.55, 0.25, 0.0))
    arm = Arm(c, **scene)
    arm.run(400)
    chunks = [r for r in arm.results if r.replanned]
    scaled = [r for r in chunks if r.guard_scale < 1.0]
    assert scaled and c.guard_scaled_chunks == len(scaled)
    assert all(r.delta_sq_norm <= bound * (1 + 1e-5) for r in chunks)
    assert all(math.isclose(r.delta_sq_norm, bound, rel_tol=1e-5) for r in scaled)
    # The same head unguarded goes beyond the bound on the same states.
    unguarded = controller(head=head, guard=0.0)
    uarm = Arm(unguarded, **scene)
    uarm.run(400)
    assert max(r.delta_sq_norm for r in uarm.results if r.replanned) > bound


class FixedChunks:
    """A chunk source of the kind training plugs in: always the same deltas."""

    head_type = "external"

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = actions

    def infer(self, observation, images=None) -> PolicyOutput:
        return PolicyOutput(actions=self.actions.copy(), latent=np.zeros(0), delta_sq_norm=math.nan,
                            guard_scale=math.nan, latent_norm=math.nan, inference_ms=0.0)

    def reseed(self, seed: int) -> None:
        pass


def test_training_hooks_use_policy_restart_and_no_head():
    c = controller()
    actions = np.zeros((c.decoder.manifest.chunk_length, c.decoder.manifest.action_dim))
    actions[:, 0] = 0.05  # joint 1 +0.05 rad from the observed pose, gripper closed
    previous = c.use_policy(FixedChunks(actions))
    assert previous.head_type == "lpds" and c.head_type == "external"
    arm = Arm(c)
    assert c.needs_replan(0.0)
    arm.run(1)
    np.testing.assert_array_equal(c.observation(0.0)[:7], READY)  # what the chunk was inferred from
    arm.run(199)
    assert arm.q[0] > 0.1  # the chunks were executed through chunking and the filter
    c.restart(seed=4)
    assert c.needs_replan(arm.t)
    with pytest.raises(TypeError, match="`policy` must have `infer`"):
        c.use_policy(object())
    c.use_policy(previous)
    c.swap_head(NO_HEAD)
    assert c.head_type == NO_HEAD and c.head is None


def test_shipped_heads_pass_the_load_time_output_check():
    c = controller()
    shipped = sorted((MODELS / "heads").glob("*.onnx"))
    assert {p.stem for p in shipped} >= {"lpds", "lps"}
    for path in shipped:
        assert c.load_head(str(path)).manifest.head_type in ("lpds", "lps", "dsrl"), path


def test_future_stamp_holds_until_stamps_are_sane_without_latching():
    c = controller()
    arm = Arm(c)
    arm.run(40)
    r = arm.cycle(stamp=arm.t + 100.0)
    assert r.held and not r.latched and "in the future" in r.safety_reason and r.sendable
    # Sane stamps again: the brake that began finishes, then the stream restarts from the arm.
    for _ in range(100):
        measured = arm.q.copy()
        r = arm.cycle(stamp=arm.t)
        if not r.held:
            break
        assert not r.latched and "braking to rest" in r.safety_reason
    assert not r.held and np.abs(r.command - measured).max() <= c.safety.step_max.max() + 1e-12
    np.testing.assert_allclose(r.velocity, c.safety.velocity)
