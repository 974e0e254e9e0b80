"""Critic features for pick_place: torch forward kinematics against the runtime's, and the
features' meaning (TCP of each executed joint target relative to the cube)."""

import numpy as np
import pytest
import torch
from lps_steering.core.kinematics import tcp_position
from lps_train import lpds
from lps_train.common import Normalization
from lps_train.features import FEATURE_SCALE_M, ChunkTcpFeatures, tcp_positions
from lps_train.pick_place import ACTION_DIM, CHUNK_LENGTH, OBS_DIM

READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


def test_torch_tcp_positions_match_the_runtime_kinematics():
    rng = np.random.default_rng(0)
    q = READY + rng.uniform(-0.8, 0.8, (64, 7))
    got = tcp_positions(torch.as_tensor(q, dtype=torch.float64)).numpy()
    want = np.stack([tcp_position(x) for x in q])
    np.testing.assert_allclose(got, want, atol=1e-9)
    with pytest.raises(ValueError, match="7 joint positions"):
        tcp_positions(torch.zeros(3, 6))


def _norm(rng):
    return Normalization(rng.normal(0, 0.3, OBS_DIM), rng.uniform(0.1, 0.5, OBS_DIM),
                         rng.normal(0, 0.01, ACTION_DIM), rng.uniform(0.01, 0.05, ACTION_DIM))


def test_chunk_features_are_the_targets_tcp_relative_to_the_cube():
    rng = np.random.default_rng(1)
    norm = _norm(rng)
    raw_obs = np.concatenate([READY, [0.08], tcp_position(READY), [0.5, 0.1, 0.0225], [0.5, -0.2, 0.0225]])
    raw_chunk = rng.normal(0, 0.05, (CHUNK_LENGTH, ACTION_DIM))
    feats = ChunkTcpFeatures(norm, steps=4)
    assert feats.out_dim == 12
    out = feats(torch.as_tensor(norm.normalize_obs(raw_obs))[None],
                torch.as_tensor(norm.normalize_actions(raw_chunk))[None])[0].numpy()
    want = np.concatenate([(tcp_position(READY + raw_chunk[t, :7]) - raw_obs[11:14]) / FEATURE_SCALE_M
                           for t in range(4)])
    np.testing.assert_allclose(out, want, atol=1e-4)
    # Actions after the executed ones do not enter the features.
    later = raw_chunk.copy()
    later[4:] += 1.0
    out2 = feats(torch.as_tensor(norm.normalize_obs(raw_obs))[None],
                 torch.as_tensor(norm.normalize_actions(later))[None])[0].numpy()
    np.testing.assert_array_equal(out, out2)


class _JointDecoder(torch.nn.Module):
    obs_dim, chunk_length, action_dim, latent_dim = OBS_DIM, CHUNK_LENGTH, ACTION_DIM, CHUNK_LENGTH * ACTION_DIM

    def forward(self, obs, w):
        return 0.1 * w.view(-1, CHUNK_LENGTH, ACTION_DIM)


def test_lpds_action_critic_takes_the_features_and_the_head_does_not():
    rng = np.random.default_rng(2)
    feats = ChunkTcpFeatures(_norm(rng), steps=4)
    cfg = lpds.LPDSConfig(hidden=32, critic_layers=2, actor_layers=2, critic_steps=4)
    agent = lpds.LPDSAgent(cfg, _JointDecoder(), action_features=feats)
    assert agent.qa.q1[0].in_features == OBS_DIM + 4 * ACTION_DIM + 12
    assert agent.actor.net[0].in_features == OBS_DIM  # the exported head sees the observation only
    b = {"obs": torch.randn(16, OBS_DIM), "actions": torch.randn(16, CHUNK_LENGTH, ACTION_DIM),
         "rewards": torch.rand(16), "next_obs": torch.randn(16, OBS_DIM), "dones": torch.zeros(16),
         "discounts": torch.full((16,), 0.98)}
    info = agent.update(b)
    assert np.isfinite(info["losses/qa"]) and np.isfinite(info["losses/qw"])
    # Q^A's action input is the 4 executed actions, then their features; later actions do not enter.
    s, a = torch.randn(3, OBS_DIM), torch.randn(3, CHUNK_LENGTH, ACTION_DIM)
    x, _ = agent.q_actions(lambda obs, inp: (inp, inp), s, a)
    assert torch.equal(x[:, :4 * ACTION_DIM], a[:, :4].flatten(1))
    assert torch.equal(x[:, 4 * ACTION_DIM:], feats(s, a[:, :4]))
    with pytest.raises(ValueError, match="must cover the 4 actions"):
        lpds.LPDSAgent(cfg, _JointDecoder(), action_features=ChunkTcpFeatures(_norm(rng), steps=8))
