"""MeanFlow decoder: the JVP target, training on a bimodal set, and the K-step flow decoder."""

import numpy as np
import pytest
import torch
from lps_train import flow, meanflow
from lps_train.checkpoints import load_decoder
from lps_train.normalization import Normalization


def bimodal(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Chunks [2, 1] all near +1 or all near -1 (equal odds); the observation carries no hint."""
    rng = np.random.default_rng(seed)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    acts = sign[:, None, None] * np.ones((n, 2, 1)) + 0.1 * rng.standard_normal((n, 2, 1))
    return np.zeros((n, 1), np.float32), acts.astype(np.float32)


def test_jvp_target_matches_finite_difference_total_derivative():
    torch.manual_seed(0)
    net = meanflow.MeanFlowNet(obs_dim=3, latent_dim=4, hidden=32, layers=2, time_features=8).double()
    n = 5
    obs, z, v = torch.randn(n, 3).double(), torch.randn(n, 4).double(), torch.randn(n, 4).double()
    t = torch.tensor([0.3, 0.5, 0.7, 0.9, 0.6]).double()
    r = torch.tensor([0.1, 0.5, 0.2, 0.0, 0.55]).double()
    u, dudt, u_tgt = meanflow.meanflow_target(net, obs, z, r, t, v)
    h = 1e-7  # float64; the time features reach frequency 1000, so the step must be tiny

    def u_at(sign: float) -> torch.Tensor:
        return meanflow.average_velocity(net, obs, z + sign * h * v, r, t + sign * h)

    fd = (u_at(1.0) - u_at(-1.0)) / (2 * h)
    torch.testing.assert_close(dudt, fd.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(u_tgt, (v - (t - r)[:, None] * fd).detach(), rtol=1e-5, atol=1e-6)
    # r = t reduces the target to the instantaneous velocity.
    assert torch.allclose(u_tgt[1], v[1])
    assert u.requires_grad and not u_tgt.requires_grad


def test_time_sampling_respects_order_and_share():
    cfg = meanflow.MeanFlowConfig()
    r, t = meanflow.sample_times(20_000, cfg, torch.Generator().manual_seed(0))
    assert torch.all(t >= r) and torch.all((t > 0) & (t <= 1)) and torch.all(r >= 0)
    edge = ((r == 0) & (t == 1)).float().mean().item()
    assert abs(edge - cfg.one_step_share) < 0.01  # the one-step interval itself
    share = (r == t).float().mean().item()
    expected = (1 - cfg.one_step_share) * cfg.ratio_r_equals_t
    assert abs(share - expected) < 0.015, (share, expected)


def test_meanflow_loss_decreases_and_one_step_samples_fit_bimodal(tmp_path):
    obs, acts = bimodal(2000)
    cfg = meanflow.MeanFlowConfig(steps=1000, batch_size=128, hidden=64, layers=3, lr=2e-3, ema_decay=0.98)
    x = torch.from_numpy(acts.reshape(len(acts), -1))[:512]
    o = torch.from_numpy(obs)[:512]

    def eval_loss(net: meanflow.MeanFlowNet) -> float:
        # Median per-sample error on a fixed draw: the mean is dominated by rare tiny t.
        g = torch.Generator().manual_seed(123)
        e = meanflow.project_to_sphere(torch.randn(x.shape, generator=g))
        rr, tt = meanflow.sample_times(len(x), cfg, g)
        z = (1 - tt)[:, None] * x + tt[:, None] * e
        u, _, u_tgt = meanflow.meanflow_target(net, o, z, rr, tt, e - x)
        return ((u - u_tgt) ** 2).sum(-1).median().item()

    torch.manual_seed(cfg.seed)
    before = eval_loss(meanflow.MeanFlowDecoder(1, 1, 2, cfg).net)
    dec = meanflow.train(cfg, obs, acts, progress=False)
    after = eval_loss(dec.net)
    assert after < 0.3 * before, (before, after)

    with torch.no_grad():
        samples = dec(torch.zeros(1000, 1), dec.sample_latent(1000, torch.Generator().manual_seed(1))).numpy()
    assert samples.shape == (1000, 2, 1)
    near_mode = np.abs(np.abs(samples) - 1.0).max(axis=(1, 2)) < 0.35
    assert near_mode.mean() > 0.8, near_mode.mean()
    # Both modes survive, and a chunk does not mix them.
    pos = (samples[:, :, 0] > 0).all(1).mean()
    neg = (samples[:, :, 0] < 0).all(1).mean()
    assert pos > 0.15 and neg > 0.15, (pos, neg)

    path = tmp_path / "mf.pt"
    meanflow.save_decoder(path, dec, Normalization.identity(1, 1), cfg)
    loaded, norm, _ = load_decoder(path)
    lat = dec.sample_latent(4)
    torch.testing.assert_close(loaded(torch.zeros(4, 1), lat), dec(torch.zeros(4, 1), lat))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_meanflow_decoder_is_differentiable_in_the_latent():
    dec = meanflow.MeanFlowDecoder(3, 2, 8, meanflow.MeanFlowConfig(hidden=32, layers=2))
    w = dec.sample_latent(4).requires_grad_(True)
    assert torch.allclose(w.norm(dim=-1), torch.full((4,), 4.0))
    dec(torch.randn(4, 3), w).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_flow_decoder_fits_bimodal_with_k_steps():
    obs, acts = bimodal(2000)
    cfg = flow.FlowConfig(steps=800, batch_size=128, hidden=64, layers=3, lr=2e-3, ema_decay=0.98,
                          integration_steps=10)
    dec = flow.train(cfg, obs, acts, progress=False)
    with torch.no_grad():
        s = dec(torch.zeros(1000, 1), dec.sample_latent(1000, torch.Generator().manual_seed(2))).numpy()
    assert (np.abs(np.abs(s) - 1.0).max(axis=(1, 2)) < 0.35).mean() > 0.7
    assert min((s[:, :, 0] > 0).all(1).mean(), (s[:, :, 0] < 0).all(1).mean()) > 0.15


def test_train_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="observations"):
        meanflow.train(meanflow.MeanFlowConfig(steps=1), np.zeros((5, 2), np.float32), np.zeros((4, 8, 2), np.float32))
