"""Critic features for pick_place: torch forward kinematics against the runtime's, and the
features' meaning (TCP of each executed joint target relative to the cube)."""

import numpy as np
import pytest
import torch
from lps_steering.core.kinematics import tcp_position
from lps_train import lpds, lps
from lps_train.features import FEATURE_SCALE_M, ChunkTcpFeatures, tcp_positions
from lps_train.normalization import Normalization
from lps_train.pick_place.layout import ACTION_DIM, CHUNK_LENGTH, OBS_DIM

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


def test_chunk_features_relative_to_the_cube_and_the_place_zone():
    rng = np.random.default_rng(3)
    norm = _norm(rng)
    cube, zone = np.array([0.5, 0.1, 0.0225]), np.array([0.55, -0.2, 0.0])
    raw_obs = np.concatenate([READY, [0.08], tcp_position(READY), cube, zone])
    raw_chunk = rng.normal(0, 0.05, (CHUNK_LENGTH, ACTION_DIM))
    feats = ChunkTcpFeatures(norm, steps=2, references=("object", "target"))
    assert feats.out_dim == 12
    out = feats(torch.as_tensor(norm.normalize_obs(raw_obs))[None],
                torch.as_tensor(norm.normalize_actions(raw_chunk))[None])[0].numpy().reshape(2, 6)
    for t in range(2):
        tcp = tcp_position(READY + raw_chunk[t, :7])
        np.testing.assert_allclose(out[t, :3], (tcp - cube) / FEATURE_SCALE_M, atol=1e-4)
        np.testing.assert_allclose(out[t, 3:], (tcp - zone) / FEATURE_SCALE_M, atol=1e-4)
    with pytest.raises(ValueError, match="non-empty subset"):
        ChunkTcpFeatures(norm, steps=2, references=("gripper",))


class _JointDecoder(torch.nn.Module):
    obs_dim, chunk_length, action_dim, latent_dim = OBS_DIM, CHUNK_LENGTH, ACTION_DIM, CHUNK_LENGTH * ACTION_DIM

    def forward(self, obs, w):
        return 0.1 * w.view(-1, CHUNK_LENGTH, ACTION_DIM)


class _LPSDecoder(_JointDecoder):
    decoder_type = "meanflow"


def _agent(algo, feats):
    if algo == "lpds":
        cfg = lpds.LPDSConfig(hidden=32, critic_layers=2, actor_layers=2, critic_steps=4)
        agent = lpds.LPDSAgent(cfg, _JointDecoder(), action_features=feats)
        return agent, agent.qa, {"discounts": torch.full((16,), 0.98)}
    cfg = lps.LPSConfig(hidden=32, critic_layers=2, actor_layers=2, critic_steps=4)
    agent = lps.LPSAgent(cfg, _LPSDecoder(), action_features=feats)
    return agent, agent.q, {}


@pytest.mark.parametrize("algo", ["lpds", "lps"])
def test_action_critic_takes_the_features_and_the_head_does_not(algo):
    rng = np.random.default_rng(2)
    feats = ChunkTcpFeatures(_norm(rng), steps=4)
    agent, critic, extra = _agent(algo, feats)
    assert critic.heads[0][0].in_features == OBS_DIM + 4 * ACTION_DIM + 12
    assert agent.actor.net[0].in_features == OBS_DIM  # the exported head sees the observation only
    b = {"obs": torch.randn(16, OBS_DIM), "actions": torch.randn(16, CHUNK_LENGTH, ACTION_DIM),
         "rewards": torch.rand(16), "next_obs": torch.randn(16, OBS_DIM), "dones": torch.zeros(16)} | extra
    info = agent.update(b)
    assert all(np.isfinite(v) for v in info.values())
    # The critic's action input is the 4 executed actions, then their features; later actions do not enter.
    seen = []
    critic.heads[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    s, a = torch.randn(3, OBS_DIM), torch.randn(3, CHUNK_LENGTH, ACTION_DIM)
    critic(s, a)
    assert torch.equal(seen[0][:, :OBS_DIM], s)
    assert torch.equal(seen[0][:, OBS_DIM:OBS_DIM + 4 * ACTION_DIM], a[:, :4].flatten(1))
    assert torch.equal(seen[0][:, OBS_DIM + 4 * ACTION_DIM:], feats(s, a[:, :4]))
    with pytest.raises(ValueError, match="must cover the 4 actions"):
        _agent(algo, ChunkTcpFeatures(_norm(rng), steps=8))

