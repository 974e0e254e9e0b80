"""SteeringController end to end on real ONNX sessions: the cycle, replanning, holds, head swaps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lps_steering.core.controller import BRAKING_FIRST, ControllerConfig, CycleResult, SteeringController
from lps_steering.core.manifest import ManifestError
from lps_steering.core.policy import SteeredPolicy
from lps_steering.core.safety import SAFETY_LIMITED, SAFETY_OK
from lps_train.tiny import READY_Q

RATE = 100.0
READY = np.array(READY_Q)
OBJECT = [0.5, 0.05, 0.03]


def _controller(tiny_models, head="lpds", **kw) -> SteeringController:
    cfg = ControllerConfig(decoder_path=str(tiny_models.decoder),
                           head_path=str(tiny_models.heads[head]) if head else "",
                           command_rate_hz=RATE, execute_steps=4, guard=1.0, seed=5, warmup_runs=2, **kw)
    c = SteeringController(cfg)
    c.configure()
    return c


def _observe(c: SteeringController, q: np.ndarray, t: float, gripper: float = 0.04) -> None:
    c.observe("arm_joint_positions", q, t)
    c.observe("gripper_width", gripper, t)
    c.observe("object_position", OBJECT, t)


def _run(c, q0, t0, n):
    """n cycles with perfect tracking (measured = last command) and fresh observations."""
    q, results = q0.copy(), []
    for i in range(n):
        t = t0 + i / RATE
        _observe(c, q, t)
        r = c.step(t, q)
        results.append(r)
        if np.all(np.isfinite(r.command)):
            q = r.command.copy()
    return q, results


def test_cycle_replans_on_schedule_and_never_jumps(tiny_models):
    c = _controller(tiny_models)
    assert c.head_type == "lpds" and c.head_id.startswith("tiny_head_lpds@")
    assert c.decoder_id.startswith("tiny_decoder@") and c.providers == ["CPUExecutionProvider"]
    assert set(c.required_sources) == {"arm_joint_positions", "gripper_width", "object_position"}
    q_end, results = _run(c, READY, 100.0, 200)
    first = results[0]
    assert first.replanned and first.chunk_count == 1
    np.testing.assert_allclose(first.command, READY, atol=1e-12)  # first command = measured
    # 4 actions at 10 Hz per chunk: a new chunk every 40 cycles.
    replans = [i for i, r in enumerate(results) if r.replanned]
    assert replans == list(range(0, 200, 40))
    assert results[-1].chunk_count == 5
    for prev, r in zip(results, results[1:], strict=False):
        assert r.safety_state in (SAFETY_OK, SAFETY_LIMITED), r.safety_reason
        assert np.abs(r.command - prev.command).max() <= 0.02 + 1e-12
        assert r.observation_age_ms == pytest.approx(0.0, abs=1e-6)
        assert math.isfinite(r.delta_sq_norm) and r.delta_sq_norm <= 0.35 * (1 + 1e-4)
        assert r.latent_norm > 0 and 0 < r.guard_scale <= 1.0
        assert 0.0 <= r.gripper <= 0.08
    assert np.abs(q_end - READY).max() > 1e-4  # the policy did move the arm


def test_chunk_targets_are_deltas_from_the_observed_joints(tiny_models):
    c = _controller(tiny_models, head=None)
    q_obs = READY + 0.05
    _observe(c, q_obs, 1.0, gripper=0.035)
    r = c.step(1.0, q_obs)
    assert r.replanned and c.head_type == "none" and math.isnan(r.delta_sq_norm)
    # Same seed, same observation, independent policy: targets = observed q + deltas; gripper absolute.
    ref = SteeredPolicy(c.decoder, None, seed=5)
    actions = ref.infer(np.concatenate([q_obs, [0.035], OBJECT])).actions
    expected = actions.astype(np.float64).copy()
    expected[:, :7] += q_obs
    np.testing.assert_allclose(c.executor.targets, expected, atol=1e-6)


def _released(c: SteeringController, q: np.ndarray, t: float) -> CycleResult:
    """Cycles from `t` on until the hold is released: a brake that began at the hold finishes first."""
    for _ in range(50):
        _observe(c, q, t)
        r = c.step(t, q)
        if not r.held:
            break
        assert not r.latched and r.safety_reason == BRAKING_FIRST, r.safety_reason
        t += 0.01
    return r


def test_stale_observation_latches_until_resume_and_restarts_from_measured(tiny_models):
    c = _controller(tiny_models)
    q, results = _run(c, READY, 0.0, 30)
    last_cmd = results[-1].command
    # Object pose stops arriving (last at 0.29 s): past max age (0.2 s) the cycle holds, braking
    # from the last command (at rest here: the chunk had come to a stop).
    t = 0.55
    c.observe("arm_joint_positions", q, t)
    c.observe("gripper_width", 0.04, t)
    r = c.step(t, q)
    assert r.held and r.latched and "observation `object_position` is stale" in r.safety_reason
    assert np.abs(r.command - last_cmd).max() <= 0.02
    # Fresh observations again: still held (a person decides), until resume().
    moved = q + 0.003  # the arm settled a little while held
    _observe(c, moved, 0.7)
    r = c.step(0.7, moved)
    assert r.held and "stale" in r.safety_reason
    c.resume()
    r = _released(c, moved, 0.71)
    assert r.replanned and not r.held
    assert np.abs(r.command - moved).max() <= c.safety.step_max.max() + 1e-12


def test_stale_observation_resumes_by_itself_when_configured(tiny_models):
    c = _controller(tiny_models, resume_after_stale=True)
    q, _ = _run(c, READY, 0.0, 30)
    c.observe("arm_joint_positions", q, 0.55)
    c.observe("gripper_width", 0.04, 0.55)
    r = c.step(0.55, q)
    assert r.held and not r.latched and "stale" in r.safety_reason
    # NaN in an observation is a fault even so: it latches, naming the source.
    _observe(c, q, 0.6)
    c.observe("gripper_width", math.nan, 0.6)
    r = c.step(0.6, q)
    assert r.held and r.latched and "`gripper_width` is not finite" in r.safety_reason
    c.resume()
    r = _released(c, q, 0.7)
    assert r.replanned and not r.held


def test_missing_observation_waits_and_bad_measurement_latches(tiny_models):
    c = _controller(tiny_models)
    r = c.step(0.0, READY)
    assert r.held and not r.latched and "has not been received yet" in r.safety_reason
    np.testing.assert_array_equal(r.command, READY)
    r = c.step(0.0, np.full(7, math.nan))
    assert r.held and r.latched and "measured joint 1 position is not finite" in r.safety_reason
    np.testing.assert_array_equal(r.command, READY)  # the last plausible reading: still sendable


def test_latched_hold_until_resume(tiny_models):
    c = _controller(tiny_models)
    q, results = _run(c, READY, 0.0, 5)
    c.hold("operator stop")
    q2, held = _run(c, q, 0.05, 10)
    assert all(r.held and r.latched and r.safety_reason == "operator stop" for r in held)
    # A jerk-limited brake from the last command: it comes to rest within a few periods, close by.
    assert c.safety.at_rest
    np.testing.assert_array_equal(held[-1].command, held[-2].command)
    assert np.abs(held[-1].command - results[-1].command).max() < 1e-3
    c.resume()
    _, after = _run(c, q2, 0.15, 3)
    assert after[0].replanned and not after[0].held
    assert np.abs(after[0].command - q2).max() <= c.safety.step_max.max()


def test_head_swap_validated_off_loop_and_installed_between_cycles(tiny_models, tiny_models_gaussian):
    c = _controller(tiny_models, head="lps")
    _run(c, READY, 0.0, 3)
    with pytest.raises(ManifestError, match="decoder_sha256"):
        c.load_head(str(tiny_models_gaussian.heads["lpds"]))
    assert c.head_type == "lps"  # the running head keeps running
    head = c.load_head(str(tiny_models.heads["dsrl"]))
    c.install_head(head)
    assert c.head_type == "dsrl" and c.head_swaps == 1
    _, results = _run(c, READY, 1.0, 50)
    steered = [r for r in results if r.replanned]
    # dsrl latents are tanh-bounded (norm < sqrt(64)); the lps head's lie exactly on the sphere.
    assert steered and all(r.latent_norm < 7.9 and math.isnan(r.delta_sq_norm) for r in steered)
    c.swap_head("")
    assert c.head_type == "none" and c.head_id == "none"


def test_config_validation_names_the_field(tiny_models):
    with pytest.raises(ValueError, match=r"`execute_steps` must be an integer >= 1, got 0"):
        ControllerConfig(decoder_path="x.onnx", execute_steps=0)
    with pytest.raises(ValueError, match=r"`command_rate_hz` must be in \[1, 1000\] Hz, got 0.0"):
        ControllerConfig(decoder_path="x.onnx", command_rate_hz=0.0)
    with pytest.raises(ValueError, match=r"`robot` must be one of \['fr3', 'panda'\], got 'kuka'"):
        ControllerConfig(decoder_path="x.onnx", robot="kuka")
    with pytest.raises(ValueError, match="`workspace_min` must be below `workspace_max`"):
        ControllerConfig(decoder_path="x.onnx", workspace_min=(1.0, 0.0, 0.0), workspace_max=(0.5, 1, 1))
    with pytest.raises(ValueError, match=r"`execute_steps` \(9\) must be <= the decoder's `chunk_length` \(8\)"):
        SteeringController(ControllerConfig(decoder_path=str(tiny_models.decoder), execute_steps=9)).configure()
    with pytest.raises(ManifestError, match=r"`robot` of .* must equal the controller's \('panda'\), got 'fr3'"):
        SteeringController(ControllerConfig(decoder_path=str(tiny_models.decoder), robot="panda")).configure()


def test_temporal_ensembling_cycle(tiny_models):
    c = _controller(tiny_models, temporal_ensembling=True, ensemble_decay=0.1)
    c.config.execute_steps = 1
    c.configure()
    _, results = _run(c, READY, 0.0, 50)
    assert sum(r.replanned for r in results) == 5  # one chunk per policy period (10 cycles)
    assert all(not r.held for r in results)


def test_jerk_scale_config_and_validation(tiny_models):
    assert ControllerConfig(decoder_path="x.onnx").jerk_scale == 0.5  # jerk-limited unless turned off
    assert ControllerConfig(decoder_path="x.onnx", jerk_scale=0).jerk_scale is None
    assert ControllerConfig(decoder_path="x.onnx", jerk_scale=0.0).jerk_scale is None
    for bad in (1.5, -0.1, math.nan, "0.5", True):
        with pytest.raises(ValueError, match=r"`jerk_scale` must be in \(0, 1\], or None / 0"):
            ControllerConfig(decoder_path="x.onnx", jerk_scale=bad)
    assert _controller(tiny_models, jerk_scale=0.25).safety.jerk_limited
    c = _controller(tiny_models, jerk_scale=None)
    assert not c.safety.jerk_limited


def test_jerk_limited_cycle_reports_velocity_and_brakes_to_rest_on_hold(tiny_models):
    c = _controller(tiny_models, jerk_scale=0.5, max_step_rad=0.02)
    f = c.safety
    q, results = _run(c, READY, 0.0, 60)
    commands = np.array([READY] + [r.command for r in results])
    v = np.diff(commands, axis=0) * RATE
    # The velocity the node streams is the finite difference of consecutive commands.
    np.testing.assert_allclose(f.velocity, v[-1], atol=1e-9)
    a = np.diff(v, axis=0) * RATE
    assert np.all(np.abs(v) <= f.v_max * (1 + 1e-6))
    assert np.all(np.abs(np.diff(a, axis=0) * RATE) <= f.j_max * (1 + 1e-6))
    # Get the output moving fast (a far target through the same filter), then latch a hold.
    for _ in range(15):
        res = f.filter(q + 0.5, None, q)
    speed = np.abs(f.velocity).max()
    assert speed > 0.5
    c.hold("operator stop")
    held = [res.q]
    for i in range(200):
        r = c.step(1.0 + i / RATE, q)
        assert r.held and r.safety_reason == "operator stop"
        held.append(r.command)
        if f.at_rest:
            break
    assert f.at_rest, "the hold never came to rest"
    held = np.array(held)
    assert len(held) > 5  # a graceful stop from speed takes several periods, not one
    hv = np.diff(held, axis=0) * RATE
    assert np.all(np.abs(hv) <= f.v_max * (1 + 1e-6))
    assert np.all(np.abs(np.diff(np.diff(hv, axis=0), axis=0)) * RATE * RATE <= f.j_max * (1 + 1e-6))
    # At rest the command stays put.
    np.testing.assert_array_equal(c.step(3.0, q).command, held[-1])
    np.testing.assert_array_equal(f.velocity, np.zeros(7))


def test_reset_starts_from_the_measured_pose_and_reseed_repeats_chunks(tiny_models):
    c = _controller(tiny_models, head=None)
    _run(c, READY, 0.0, 10)
    first = c.executor.targets.copy()
    # The arm was moved elsewhere meanwhile (a new episode): after reset the first command is
    # the measured pose, not a continuation of the old commands.
    elsewhere = READY + np.array([0.1, -0.1, 0.05, 0.1, 0.0, -0.05, 0.1])
    c.reset()
    c.reseed(5)
    _, results = _run(c, elsewhere, 5.0, 3)
    np.testing.assert_allclose(results[0].command, elsewhere, atol=1e-12)
    assert results[0].replanned and not results[0].held
    # Same seed, same observation: the same chunk as at the start.
    c.reset()
    c.reseed(5)
    _run(c, READY, 10.0, 1)
    np.testing.assert_array_equal(c.executor.targets, first)
    c.reset()
    c.reseed(6)
    _run(c, READY, 20.0, 1)
    assert np.abs(c.executor.targets - first).max() > 1e-4
    with pytest.raises(ValueError, match=r"`seed` must be an integer >= 0, got -1"):
        c.reseed(-1)
