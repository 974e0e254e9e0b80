"""SteeredPolicy on real ONNX Runtime sessions: every head type, the lpds guard, seeding, parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lps_steering.core.manifest import ManifestError
from lps_steering.core.policy import SteeredPolicy, load_model
from lps_steering.core.sessions import create_session
from lps_train.tiny import READY_Q

LATENT_DIM = 64


def _observations(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array(READY_Q + [0.04, 0.5, 0.0, 0.05])
    return base + 0.1 * rng.standard_normal((n, base.size))


@pytest.fixture(scope="module")
def loaded(tiny_models):
    decoder = load_model(tiny_models.decoder, "decoder")
    heads = {t: load_model(p, "head") for t, p in tiny_models.heads.items()}
    return decoder, heads


def _normalise(decoder, obs: np.ndarray) -> np.ndarray:
    m = decoder.manifest
    mean = np.concatenate([e.mean for e in m.observation.entries])
    std = np.concatenate([e.std for e in m.observation.entries])
    return ((obs - mean) / std).astype(np.float32)[None, :]


def _decode(decoder, obs: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Reference path written independently of SteeredPolicy: normalise, run, de-normalise."""
    m = decoder.manifest
    raw = decoder.session.run(None, {"observation": _normalise(decoder, obs),
                                     "latent": w.astype(np.float32)[None, :]})[0][0]
    return raw * np.asarray(m.action.std) + np.asarray(m.action.mean)


def test_base_policy_latents_lie_on_the_sphere_and_are_isotropic(loaded):
    decoder, _ = loaded
    policy = SteeredPolicy(decoder, None, seed=3)
    assert policy.head_type == "none"
    obs = _observations(1)[0]
    latents = np.stack([policy.infer(obs).latent for _ in range(3000)])
    norms = np.linalg.norm(latents, axis=1)
    np.testing.assert_allclose(norms, math.sqrt(LATENT_DIM), rtol=1e-5)
    # Uniform on the sphere of radius sqrt(d): mean 0, covariance I.
    assert np.abs(latents.mean(axis=0)).max() < 5 / math.sqrt(3000)
    cov = np.cov(latents.T)
    assert np.abs(np.diag(cov) - 1.0).max() < 0.15
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.15


def test_gaussian_decoder_draws_unprojected_noise(tiny_models_gaussian):
    decoder = load_model(tiny_models_gaussian.decoder, "decoder")
    policy = SteeredPolicy(decoder, None, seed=0)
    norms = np.array([policy.infer(_observations(1)[0]).latent_norm for _ in range(500)])
    # chi distribution with 64 dof: mean ~7.98, std ~0.71; a sphere would give std 0.
    assert norms.std() > 0.4
    assert abs(norms.mean() - math.sqrt(LATENT_DIM)) < 0.3


def test_same_seed_same_output_other_seed_differs(loaded):
    decoder, heads = loaded
    obs = _observations(4)
    for head_type in ("none", "lpds"):
        head = heads.get(head_type)
        a = [SteeredPolicy(decoder, head, seed=7).infer(o).actions for o in obs]
        b = [SteeredPolicy(decoder, head, seed=7).infer(o).actions for o in obs]
        c = [SteeredPolicy(decoder, head, seed=8).infer(o).actions for o in obs]
        np.testing.assert_array_equal(np.stack(a), np.stack(b))
        assert not np.allclose(np.stack(a), np.stack(c))


def test_base_policy_actions_match_the_independent_reference(loaded):
    decoder, _ = loaded
    policy = SteeredPolicy(decoder, None, seed=0)
    for obs in _observations(5):
        out = policy.infer(obs)
        assert out.actions.shape == (8, 8)
        np.testing.assert_allclose(out.actions, _decode(decoder, obs, out.latent), atol=1e-6)
        assert math.isnan(out.delta_sq_norm) and math.isnan(out.guard_scale)
        assert out.inference_ms > 0


def test_lps_head_chooses_the_latent(loaded):
    decoder, heads = loaded
    policy = SteeredPolicy(decoder, heads["lps"], seed=0)
    assert policy.head_type == "lps"
    for obs in _observations(5, seed=1):
        out = policy.infer(obs)
        w = heads["lps"].session.run(None, {"observation": _normalise(decoder, obs)})[0][0]
        np.testing.assert_allclose(out.latent, w, atol=1e-5)
        assert out.latent_norm == pytest.approx(math.sqrt(LATENT_DIM), rel=1e-5)
        np.testing.assert_allclose(out.actions, _decode(decoder, obs, out.latent), atol=1e-6)
    # Deterministic: no noise involved.
    obs = _observations(1)[0]
    np.testing.assert_array_equal(policy.infer(obs).actions, policy.infer(obs).actions)


def test_dsrl_head_latent_is_used_as_is(loaded):
    decoder, heads = loaded
    policy = SteeredPolicy(decoder, heads["dsrl"], seed=0)
    obs = _observations(1, seed=2)[0]
    out = policy.infer(obs)
    w = heads["dsrl"].session.run(None, {"observation": _normalise(decoder, obs)})[0][0]
    np.testing.assert_allclose(out.latent, w, atol=1e-6)
    assert np.abs(out.latent).max() <= 1.0  # tanh-bounded, not projected to the sphere


def test_lpds_residual_and_guard_bound_delta(loaded):
    decoder, heads = loaded
    head = heads["lpds"]
    delta = head.manifest.trust_region_delta
    obs = _observations(20, seed=4)
    # Unguarded: w = eps + Delta(s) with the same eps the base policy draws from the same seed.
    base, free = SteeredPolicy(decoder, None, seed=11), SteeredPolicy(decoder, head, seed=11)
    raw_sq = []
    for o in obs:
        eps = base.infer(o).latent
        out = free.infer(o)
        d = head.session.run(None, {"observation": _normalise(decoder, o)})[0][0]
        np.testing.assert_allclose(out.latent, eps + d, atol=1e-5)
        assert out.delta_sq_norm == pytest.approx(float(d @ d), rel=1e-5)
        assert out.guard_scale == 1.0
        raw_sq.append(out.delta_sq_norm)
    guard = 0.5
    bound = guard * delta
    assert max(raw_sq) > bound, "fixture's residual must exceed the guard for this test to mean anything"
    base, guarded = SteeredPolicy(decoder, None, seed=11), SteeredPolicy(decoder, head, guard=guard, seed=11)
    for o, sq in zip(obs, raw_sq, strict=True):
        eps = base.infer(o).latent
        out = guarded.infer(o)
        applied = out.latent - eps
        assert float(applied @ applied) <= bound * (1 + 1e-4)
        if sq > bound:
            assert float(applied @ applied) == pytest.approx(bound, rel=1e-4)
            assert out.guard_scale == pytest.approx(math.sqrt(bound / sq), rel=1e-5)
            assert out.delta_sq_norm == pytest.approx(bound)
        else:
            assert out.guard_scale == 1.0


def _with_manifest(path, tmp_path, **fields):
    """A copy of a model whose manifest has `fields` changed (the .onnx is the same file)."""
    import json
    import shutil

    onnx = tmp_path / path.name
    shutil.copyfile(path, onnx)
    data = json.loads(path.with_suffix(".json").read_text()) | fields
    onnx.with_suffix(".json").write_text(json.dumps(data))
    return onnx


@pytest.mark.parametrize("head_type", ["lpds", "dsrl"])
def test_a_head_declaring_sphere_projection_has_its_latent_scaled_onto_the_sphere(loaded, tiny_models, tmp_path,
                                                                                 head_type):
    decoder, heads = loaded
    projected = load_model(_with_manifest(tiny_models.heads[head_type], tmp_path, latent_projection="sphere"), "head")
    plain = SteeredPolicy(decoder, heads[head_type], seed=5)
    proj = SteeredPolicy(decoder, projected, seed=5)
    radius = math.sqrt(LATENT_DIM)
    for o in _observations(10, seed=6):
        a, b = plain.infer(o), proj.infer(o)
        assert abs(np.linalg.norm(a.latent) - radius) > 1e-3  # unprojected: off the sphere
        np.testing.assert_allclose(b.latent, a.latent * radius / np.linalg.norm(a.latent), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.actions, _decode(decoder, o, b.latent), atol=1e-4)


def test_projection_onto_a_sphere_is_refused_for_a_gaussian_decoder(tiny_models_gaussian, tmp_path):
    with pytest.raises(ManifestError, match="latent_projection"):
        load_model(_with_manifest(tiny_models_gaussian.heads["lpds"], tmp_path, latent_projection="sphere"), "head")
    with pytest.raises(ManifestError, match="latent_projection"):
        load_model(_with_manifest(tiny_models_gaussian.heads["lpds"], tmp_path, latent_projection="ball"), "head")
    with pytest.raises(ManifestError, match="latent_projection"):
        load_model(_with_manifest(tiny_models_gaussian.decoder, tmp_path, latent_projection="none"), "decoder")


def test_a_sampling_dsrl_head_draws_fresh_noise_each_inference_from_the_seeded_stream(tmp_path):
    from lps_train.tiny import build_tiny_models

    models = build_tiny_models(tmp_path / "m", seed=4, head_types=("dsrl", "lpds"), dsrl_noise_input=True)
    decoder = load_model(models.decoder, "decoder")
    head = load_model(models.heads["dsrl"], "head")
    assert [i.name for i in head.session.get_inputs()] == ["observation", "noise"]
    obs = _observations(1, seed=7)[0]
    a, b = SteeredPolicy(decoder, head, seed=9), SteeredPolicy(decoder, head, seed=9)
    first = [a.infer(obs).latent for _ in range(5)]
    again = [b.infer(obs).latent for _ in range(5)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))  # same seed, same samples
    assert min(np.abs(x - y).max() for x, y in zip(first, first[1:], strict=False)) > 1e-3  # fresh noise
    # The noise the head got is the policy's stream: the head's own function of it reproduces w.
    rng = np.random.default_rng(9)
    xi = rng.standard_normal((1, LATENT_DIM), dtype=np.float32)
    net = models.head_nets["dsrl"]
    np.testing.assert_allclose(first[0], net(_normalise(decoder, obs), xi)[0], atol=1e-5)
    with pytest.raises(ManifestError, match="noise_input"):
        load_model(_with_manifest(models.heads["lpds"], tmp_path, noise_input=True), "head")


def test_swap_head_refuses_foreign_head_and_keeps_running(loaded, tiny_models_gaussian):
    decoder, heads = loaded
    policy = SteeredPolicy(decoder, heads["lps"], seed=0)
    foreign = load_model(tiny_models_gaussian.heads["lpds"], "head")
    with pytest.raises(ManifestError, match="decoder_sha256"):
        policy.swap_head(foreign)
    assert policy.head_type == "lps"
    policy.swap_head(heads["lpds"])
    assert policy.head_type == "lpds"
    policy.swap_head(None)
    assert policy.head_type == "none"
    assert policy.infer(_observations(1)[0]).actions.shape == (8, 8)


def test_bad_observation_shape_is_named(loaded):
    decoder, _ = loaded
    with pytest.raises(ValueError, match=r"`observation` must have shape \(11,\), got \(10,\)"):
        SteeredPolicy(decoder).infer(np.zeros(10))


def test_onnx_sessions_compute_the_networks_on_1000_random_inputs(tiny_models):
    """The runtime's sessions against the tiny networks' own numpy forward passes (no torch here)."""
    rng = np.random.default_rng(0)
    dec = create_session(str(tiny_models.decoder))
    names = [i.name for i in dec.get_inputs()]
    obs = rng.normal(size=(1000, dec.get_inputs()[0].shape[1])).astype(np.float32)
    lat = rng.normal(size=(1000, dec.get_inputs()[1].shape[1])).astype(np.float32)
    got = np.concatenate([dec.run(None, {names[0]: obs[i:i + 1], names[1]: lat[i:i + 1]})[0] for i in range(1000)])
    assert np.max(np.abs(got - tiny_models.decoder_net(obs, lat))) <= 1e-4
    for head_type, path in tiny_models.heads.items():
        head = create_session(str(path))
        name = head.get_inputs()[0].name
        got = np.concatenate([head.run(None, {name: obs[i:i + 1]})[0] for i in range(1000)])
        err = np.max(np.abs(got - tiny_models.head_nets[head_type](obs)))
        assert err <= 1e-4, f"{head_type}: max abs error {err}"


@pytest.mark.parametrize("head", ["none", "lpds", "lps"])
def test_each_inference_returns_arrays_of_its_own(loaded, head):
    """Sessions write into bound buffers; a chunk a caller keeps must survive the next inference."""
    decoder, heads = loaded
    policy = SteeredPolicy(decoder, None if head == "none" else heads[head], seed=0)
    obs = _observations(2, seed=3)
    first = policy.infer(obs[0])
    kept = first.actions.copy()
    second = policy.infer(obs[1])
    assert not np.shares_memory(first.actions, second.actions)
    assert not np.array_equal(second.actions, kept)  # the second call did compute something else
    np.testing.assert_array_equal(first.actions, kept)
