"""LP-DS, LPS and DSRL heads: their defining mechanisms, on small real networks and envs."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lps_train import dsrl, lpds, lps, meanflow
from lps_train.envs import run_episodes
from lps_train.nets import ChunkCritic, soft_update
from lps_train.replay import NStepWriter, ReplayBuffer, next_actions_within_episodes
from torch import nn


class ScaledLatentDecoder(nn.Module):
    """Phi(s, w) = scale * w as a chunk: a black-box decoder whose optimum latent is known."""

    decoder_type = "test"

    def __init__(self, obs_dim: int = 2, chunk_length: int = 4, action_dim: int = 2, scale: float = 0.5) -> None:
        super().__init__()
        self.obs_dim, self.chunk_length, self.action_dim = obs_dim, chunk_length, action_dim
        self.latent_dim = chunk_length * action_dim
        self.scale = scale

    def forward(self, observation: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return (self.scale * latent).view(-1, self.chunk_length, self.action_dim)


class TargetChunkEnv:
    """One-step episodes: reward -mean((chunk - 1)^2), so every coordinate wants a = 1 (w = 2)."""

    obs_dim, chunk_length, action_dim = 2, 4, 2

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    def reset(self, seed=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        return self._rng.uniform(-1, 1, 2).astype(np.float32)

    def step(self, chunk):
        if chunk.shape != (4, 2):
            raise ValueError(f"chunk must be (4, 2), got {chunk.shape}")
        r = -float(np.mean((chunk - 1.0) ** 2))
        return self.reset(), r, True, {"terminated": True}


def small_lpds(**kw) -> lpds.LPDSConfig:
    base = dict(hidden=64, critic_layers=2, actor_layers=2, batch_size=64, learning_starts=100, log_every=50)
    return lpds.LPDSConfig(**(base | kw))


def test_lpds_residual_starts_at_zero_so_the_head_is_the_base_policy():
    agent = lpds.LPDSAgent(small_lpds(), ScaledLatentDecoder())
    assert torch.count_nonzero(agent.actor(torch.randn(16, 2))) == 0


def test_lpds_alpha_rises_above_the_trust_region_and_falls_to_zero_below():
    cfg = small_lpds(delta=0.35, alpha_lr=0.1, actor_lr=0.0)  # frozen actor isolates the dual update
    agent = lpds.LPDSAgent(cfg, ScaledLatentDecoder())
    batch = {"obs": torch.randn(64, 2)}
    # ||Delta||^2 = 8 * 0.25 = 2.0 > delta: alpha must grow by eta * (2.0 - 0.35) each step.
    with torch.no_grad():
        agent.actor.net[-1].bias.fill_(0.5)
    for i in range(1, 4):
        info = agent.update_actor_and_alpha(batch)
        assert info["constraint/delta_sq"] == pytest.approx(2.0, rel=1e-5)
        assert agent.alpha == pytest.approx(i * 0.1 * 1.65, rel=1e-5)
    # Back inside the trust region: alpha falls, then sits at exactly 0 (projection).
    with torch.no_grad():
        agent.actor.net[-1].bias.zero_()
    alphas = [agent.update_actor_and_alpha(batch)["lagrange/alpha"] for _ in range(30)]
    assert alphas[0] < 0.495 and all(b <= a for a, b in zip(alphas, alphas[1:], strict=False))
    assert alphas[-1] == 0.0


@pytest.mark.parametrize("delta", [0.1, 0.5])
def test_lpds_trust_region_binds_when_the_reward_pulls_the_latent_away(delta):
    """The reward wants ||Delta||^2 = 32; the Lagrangian must hold E||Delta||^2 near delta."""
    cfg = small_lpds(total_steps=1500, delta=delta, actor_lr=1e-3, critic_lr=1e-3, latent_critic_lr=1e-3, alpha_lr=1.0)
    agent, log = lpds.train(cfg, TargetChunkEnv(), ScaledLatentDecoder(), progress=False)
    steps, dsq = log.series("constraint/delta_sq")
    late = dsq[steps > 1000].mean()
    assert 0.5 * delta < late < 1.6 * delta, (delta, late)
    assert log.series("lagrange/alpha")[1].max() > 0  # the constraint was active at some point
    # The head moved the latent towards the reward's optimum (every coordinate +), not at random.
    d = agent.actor(torch.zeros(1, 2))[0]
    assert (d > 0).float().mean() >= 0.75, d
    env, dec, gen = TargetChunkEnv(), ScaledLatentDecoder(), torch.Generator().manual_seed(0)
    base = run_episodes(env, lambda o: dec(torch.zeros(1, 2), torch.randn(1, 8, generator=gen))[0].numpy(), 300, 1)
    steered = run_episodes(env, lambda o: agent.act(o, gen)[0], 300, 1)
    assert steered.mean_return > base.mean_return + 0.05, (base.mean_return, steered.mean_return)


class QuadraticCritic(nn.Module):
    """Q(s, a) = -||a - a*||^2: a toy critic with a known maximiser."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.flatten())

    def forward(self, obs, a):
        q = -((a.flatten(1) - self.target) ** 2).sum(-1)
        return torch.stack([q, q])


def test_lps_actor_stays_on_the_sphere_and_raises_q_through_the_decoder():
    torch.manual_seed(0)
    dec = ScaledLatentDecoder()
    agent = lps.LPSAgent(lps.LPSConfig(hidden=64, actor_layers=2, critic_layers=2, actor_lr=1e-3), dec)
    agent.q = QuadraticCritic(torch.full((4, 2), 0.3))
    obs = torch.randn(128, 2)

    def q_now() -> float:
        with torch.no_grad():
            return agent.q(obs, dec(obs, agent.actor(obs)))[0].mean().item()

    before = q_now()
    for _ in range(200):
        agent.update_actor({"obs": obs})
    after = q_now()
    assert after > before + 0.1 * abs(before), (before, after)
    with torch.no_grad():
        norms = agent.actor(obs).norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, math.sqrt(8)))
    # The best chunk on the sphere puts every coordinate at 0.5 (w = 1 each, |w| = sqrt(8)).
    with torch.no_grad():
        best = dec(obs, agent.actor(obs))
    assert (best > 0.25).float().mean() > 0.9


def test_lps_offline_picks_the_better_mode_of_a_bimodal_dataset():
    """Data: chunks all near +1 (reward 1) or all near -1 (reward 0), equal odds. Base policy: 50/50."""
    rng = np.random.default_rng(0)
    n = 2000
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    acts = (sign[:, None, None] * np.ones((n, 2, 1)) + 0.1 * rng.standard_normal((n, 2, 1))).astype(np.float32)
    obs = np.zeros((n, 1), np.float32)
    mf_cfg = meanflow.MeanFlowConfig(steps=1000, batch_size=128, hidden=64, layers=3, lr=2e-3, ema_decay=0.98)
    dec = meanflow.train(mf_cfg, obs, acts, progress=False)
    data = ReplayBuffer.from_arrays(obs, acts, (sign > 0).astype(np.float32), obs, np.ones(n, np.float32))
    cfg = lps.LPSConfig(steps=400, hidden=64, critic_layers=2, actor_layers=2, batch_size=128, critic_lr=1e-3,
                        actor_lr=1e-3, log_every=100)
    agent, log = lps.train(cfg, data, dec, progress=False)
    s = torch.zeros(256, 1)
    with torch.no_grad():
        base = dec(s, dec.sample_latent(256, torch.Generator().manual_seed(0)))
        # The deterministic head gives one latent per state; probe it from several initial
        # weights' worth of states by also checking the single chunk it outputs.
        steered = dec(s, agent.actor(s))
    assert 0.15 < (base[:, :, 0] > 0).all(1).float().mean() < 0.85
    assert (steered[:, :, 0] > 0.5).all(), steered[0]
    assert (steered[:, :, 0] < 1.5).all(), steered[0]  # stays within the data's support
    assert np.isfinite(log.series("losses/q")[1]).all()


def test_lps_refuses_a_multi_step_decoder():
    class NotOneStep(ScaledLatentDecoder):
        decoder_type = "flow"

    data = ReplayBuffer.from_arrays(np.zeros((4, 2), np.float32), np.zeros((4, 4, 2), np.float32),
                                    np.zeros(4, np.float32), np.zeros((4, 2), np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="decoder_type"):
        lps.train(lps.LPSConfig(steps=1), data, NotOneStep(), progress=False)


def small_dsrl(**kw) -> dsrl.DSRLConfig:
    base = dict(total_steps=1200, learning_starts=100, hidden=64, critic_layers=2, actor_layers=2, batch_size=64,
                log_every=50, actor_lr=1e-3, critic_lr=1e-3, latent_critic_lr=1e-3, temperature_lr=1e-3,
                utd=4, distill_steps=4)
    return dsrl.DSRLConfig(**(base | kw))


@pytest.mark.parametrize("variant", ["na", "sac"])
def test_dsrl_keeps_latents_in_its_box_tunes_its_temperature_and_learns(variant):
    env, dec = TargetChunkEnv(), ScaledLatentDecoder()
    # The optimum w = 2 lies outside the box: the best the policy can do is its edge.
    agent, log = dsrl.train(small_dsrl(variant=variant, action_magnitude=1.5), env, dec, progress=False)
    w, logp = agent.actor.sample(torch.randn(64, 2))
    assert w.abs().max() <= 1.5 and torch.isfinite(logp).all()
    temps = log.series("entropy/temperature")[1]
    assert np.isfinite(temps).all() and temps[-1] != pytest.approx(1.0)
    _, ret = log.series("charts/episodic_return")
    assert ret[-5:].mean() > ret[:2].mean() + 0.05, ret  # base-noise warm-up vs learnt policy


def test_dsrl_published_boxes_and_refusals():
    assert dsrl.DSRLConfig(variant="na").magnitude == 1.0
    assert dsrl.DSRLConfig(variant="sac").magnitude == 1.5
    assert dsrl.DSRLConfig(variant="na", action_magnitude=2.5).magnitude == 2.5
    for bad in (dict(variant="td3"), dict(utd=0), dict(train_every=0), dict(action_magnitude=-1.0),
                dict(gamma=1.0), dict(reward_offset=float("nan"))):
        with pytest.raises(ValueError):
            dsrl.DSRLConfig(**bad)


def test_dsrl_reward_offset_costs_every_step_and_a_failure_all_the_steps_it_cut_short():
    cfg = dsrl.DSRLConfig(reward_offset=1.0, gamma=0.95)
    never_succeeding = sum(-1.0 * 0.95 ** k for k in range(2000))  # an episode that runs on failing
    assert dsrl.offset_reward(cfg, 0.0, False, {}) == -1.0
    assert dsrl.offset_reward(cfg, 1.0, True, {"success": True}) == 0.0
    assert dsrl.offset_reward(cfg, 0.0, True, {"success": False}) == pytest.approx(never_succeeding)
    # Ending in failure is never cheaper than running on without success.
    assert dsrl.offset_reward(cfg, 0.0, True, {"success": False}) <= -1.0 + 0.95 * never_succeeding + 1e-9
    plain = dsrl.DSRLConfig()
    assert [dsrl.offset_reward(plain, r, t, {"success": False}) for r, t in ((0.5, False), (0.0, True))] == [0.5, 0.0]
    with pytest.raises(ValueError, match="reward_offset"):
        dsrl.DSRLConfig(reward_offset=-1.0)


def test_dsrl_na_distils_each_latent_critic_head_from_the_action_critic_on_base_noise():
    """After distillation Q^W_i(s, w) tracks Q^A_i(s, Phi(s, w)) for w ~ N(0, I), head by head, and
    not for latents far outside that distribution."""
    torch.manual_seed(0)
    agent = dsrl.DSRLAgent(small_dsrl(latent_critic_lr=3e-3), ScaledLatentDecoder())
    with torch.no_grad():  # Q^A heads made to differ and to depend on the action
        for i, head in enumerate(agent.critic.heads):
            head[-1].bias.fill_(3.0 * i)
    obs = torch.randn(256, 2)
    batch = {"obs": obs}
    for _ in range(1500):
        agent.distill_step(batch)
    w = torch.randn(256, 8)
    with torch.no_grad():
        qa = agent.critic(obs, agent.decode(obs, w))
        qw = agent.qw(obs, w)
    for i in range(2):
        err = (qw[i] - qa[i]).abs().mean().item()
        assert err < 0.15 * qa[i].std().item() + 0.05, (i, err)
    assert (qw[1] - qw[0]).mean().item() == pytest.approx((qa[1] - qa[0]).mean().item(), abs=0.3)


class OneStepChunks:
    """A logged dataset of one-step episodes with random chunks: reward -mean((chunk - 1)^2)."""

    obs_dim, action_dim, horizon = 2, 2, 4

    def __init__(self, n: int = 2000, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.obs = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        self.actions = rng.uniform(-1, 1, (n, 4, 2)).astype(np.float32)
        self.rewards = -((self.actions - 1.0) ** 2).mean((1, 2)).astype(np.float32)

    def sample(self, batch_size, rng):
        i = rng.integers(0, len(self.obs), batch_size)
        return {"obs": torch.from_numpy(self.obs[i]), "actions": torch.from_numpy(self.actions[i]),
                "rewards": torch.from_numpy(self.rewards[i]), "next_obs": torch.from_numpy(self.obs[i]),
                "dones": torch.ones(batch_size), "discounts": torch.full((batch_size,), 0.99)}


def test_offline_dsrl_na_steers_towards_the_datas_best_actions_from_the_data_alone():
    data, dec = OneStepChunks(), ScaledLatentDecoder(scale=1.0)
    obs = torch.from_numpy(data.obs[:256])
    agent, log = dsrl.train_offline(small_dsrl(log_every=200), data, dec, steps=2000, progress=False)
    with torch.no_grad():
        chunk = agent.decode(obs, agent.actor(obs))
    # The best chunk is all ones, the box edge (w = 1); the base noise's mean chunk is 0.
    assert chunk.mean().item() > 0.3, chunk.mean().item()
    assert len(log.series("losses/qw")[0]) >= 5
    with pytest.raises(ValueError, match="noise-aliased"):
        dsrl.train_offline(small_dsrl(variant="sac"), data, dec, steps=10, progress=False)
    with pytest.raises(ValueError, match="online setting"):
        dsrl.train_offline(small_dsrl(reward_offset=1.0), data, dec, steps=10, progress=False)
    with pytest.raises(ValueError, match="dims"):
        dsrl.train_offline(small_dsrl(), data, ScaledLatentDecoder(chunk_length=8), steps=10, progress=False)


class SphereDecoder(ScaledLatentDecoder):
    """A decoder trained on the sphere of radius sqrt(d); records the latents it is given."""

    latent_geometry = "sphere"

    def __init__(self) -> None:
        super().__init__()
        self.norms: list[float] = []

    def sample_latent(self, n, generator=None):
        from lps_train.nets import sample_sphere

        return sample_sphere(n, self.latent_dim, generator)

    def forward(self, observation, latent):
        self.norms += latent.norm(dim=-1).tolist()
        return super().forward(observation, latent)


@pytest.mark.parametrize("algo", ["lpds", "dsrl"])
@pytest.mark.parametrize("project", [True, False])
def test_on_a_sphere_decoder_projection_keeps_every_decoded_latent_on_the_sphere(algo, project):
    dec = SphereDecoder()
    cfg = (small_lpds(delta=4.0, total_steps=300, project=project) if algo == "lpds"
           else small_dsrl(total_steps=300, project=project))
    {"lpds": lpds, "dsrl": dsrl}[algo].train(cfg, TargetChunkEnv(), dec, progress=False)
    norms = np.array(dec.norms)
    off = np.abs(norms - math.sqrt(dec.latent_dim))
    assert len(norms) > 1000
    if project:
        assert off.max() < 1e-4
    else:
        assert off.max() > 0.1  # eps + Delta, or the box latents, leave the sphere


def test_heads_refuse_a_decoder_that_does_not_match_the_env():
    with pytest.raises(ValueError, match="chunk_length"):
        lpds.train(small_lpds(total_steps=1), TargetChunkEnv(), ScaledLatentDecoder(chunk_length=8, action_dim=2))


@pytest.mark.parametrize("n", [2, 3])
def test_critic_ensemble_members_are_independent(n):
    c = ChunkCritic(2, 2, 4, hidden=16, layers=1, n=n)
    qs = c(torch.randn(3, 2), torch.randn(3, 4, 2))
    assert qs.shape == (n, 3)
    assert all(not torch.allclose(qs[i], qs[j]) for i in range(n) for j in range(i + 1, n))
    with pytest.raises(ValueError, match="`critics` must be >= 2"):
        ChunkCritic(2, 2, 4, hidden=16, layers=1, n=1)


def test_lpds_critic_steps_makes_the_action_critic_see_only_the_executed_actions():
    dec = ScaledLatentDecoder()  # chunk 4 x 2
    agent = lpds.LPDSAgent(small_lpds(critic_steps=2), dec)
    assert agent.qa.heads[0][0].in_features == 2 + 2 * 2
    b = {"obs": torch.randn(8, 2), "actions": torch.randn(8, 4, 2), "rewards": torch.rand(8),
         "next_obs": torch.randn(8, 2), "dones": torch.zeros(8), "discounts": torch.full((8,), 0.99)}
    agent.update(b)  # TD, distillation and actor updates all take the sliced chunks
    tail_changed = b["actions"].clone()
    tail_changed[:, 2:] += 5.0
    with torch.no_grad():
        q_a = agent.qa(b["obs"], b["actions"][:, :agent.k])[0]
        q_b = agent.qa(b["obs"], tail_changed[:, :agent.k])[0]
    assert torch.equal(q_a, q_b)  # actions never executed cannot change the value
    full = lpds.LPDSAgent(small_lpds(), dec)
    assert full.k == 4 and full.qa.heads[0][0].in_features == 2 + 4 * 2
    with pytest.raises(ValueError, match="`critic_steps` must be <= the chunk length"):
        lpds.LPDSAgent(small_lpds(critic_steps=5), dec)
    with pytest.raises(ValueError, match="`critic_steps` must be >= 0"):
        small_lpds(critic_steps=-1)


def test_lps_critic_steps_makes_q_see_only_the_executed_actions():
    dec = ScaledLatentDecoder()  # chunk 4 x 2
    agent = lps.LPSAgent(lps.LPSConfig(hidden=32, actor_layers=1, critic_layers=1, critic_steps=2), dec)
    assert agent.k == 2 and agent.q.heads[0][0].in_features == 2 + 2 * 2
    b = {"obs": torch.randn(8, 2), "actions": torch.randn(8, 4, 2), "rewards": torch.rand(8),
         "next_obs": torch.randn(8, 2), "dones": torch.zeros(8)}
    info = agent.update(b)  # TD target and actor both decode and slice the chunk
    assert all(math.isfinite(v) for v in info.values())
    assert lps.LPSAgent(lps.LPSConfig(hidden=32, actor_layers=1, critic_layers=1), dec).k == 4
    with pytest.raises(ValueError, match=r"`critic_steps` must be in \[0, 4\]"):
        lps.LPSAgent(lps.LPSConfig(critic_steps=5), dec)


def test_lps_reward_shift_anchors_a_chain_that_never_reaches_success():
    """A success row (r = 1, terminal) and a failure that loops on itself until a time-out
    (r = 0, never terminal). With 0/1 rewards the loop's value is whatever it bootstraps from; with
    reward_shift = -1 it is pinned to -1 / (1 - gamma) = -2 and the success row to 0."""
    torch.manual_seed(0)
    obs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(32, 1)
    b = {"obs": obs, "actions": torch.zeros(64, 4, 2), "rewards": torch.tensor([1.0, 0.0]).repeat(32),
         "next_obs": obs, "dones": torch.tensor([1.0, 0.0]).repeat(32)}
    values = {}
    for shift in (0.0, -1.0):
        torch.manual_seed(0)
        agent = lps.LPSAgent(lps.LPSConfig(hidden=64, actor_layers=1, critic_layers=2, gamma=0.5, tau=0.05,
                                           critic_lr=3e-3, reward_shift=shift), ScaledLatentDecoder(scale=0.0))
        for _ in range(600):
            agent.update_critic(b)
            soft_update(agent.q_target, agent.q, agent.cfg.tau)
        with torch.no_grad():
            values[shift] = torch.minimum(*agent.q(obs[:2], torch.zeros(2, 4, 2))).tolist()
    assert values[-1.0][0] == pytest.approx(0.0, abs=0.1) and values[-1.0][1] == pytest.approx(-2.0, abs=0.15)
    assert values[0.0][0] == pytest.approx(1.0, abs=0.1) and abs(values[0.0][1]) < 0.5
    with pytest.raises(ValueError, match="`torch_threads` must be >= 1, got 0"):
        lps.LPSConfig(torch_threads=0)


class ZeroCritics(nn.Module):
    """Twin critics that output 0 (with a parameter, so that a loss can be minimised through them)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, obs, a):
        q = self.bias.expand(len(obs))
        return torch.stack([q, q])


def test_lps_critic_target_bootstraps_from_the_data_action_or_the_actors():
    """Qbar(s', a') = -|a'|^2: the data's next actions are zero, the actor's are not. With
    critic_target="data" the target is r alone; with "policy" it is pulled down by the actor's action."""
    torch.manual_seed(0)
    dec = ScaledLatentDecoder()
    b = {"obs": torch.randn(16, 2), "actions": torch.zeros(16, 4, 2), "rewards": torch.full((16,), 0.5),
         "next_obs": torch.randn(16, 2), "dones": torch.zeros(16), "next_actions": torch.zeros(16, 4, 2)}
    losses = {}
    for target in ("data", "policy"):
        agent = lps.LPSAgent(lps.LPSConfig(hidden=32, actor_layers=1, critic_layers=1, gamma=0.9,
                                           critic_target=target), dec)
        agent.q, agent.q_target = ZeroCritics(), OptimisticCritics()  # min of the target twins: -|a'|^2
        losses[target] = agent.update_critic(b)["losses/q"]
    assert losses["data"] == pytest.approx(2 * 0.5**2, rel=1e-5)  # both heads regress 0 onto y = r
    assert losses["policy"] > losses["data"] + 0.1  # y = r - gamma |a'|^2 with the actor's a' (|a'|^2 = 8 * 0.25)
    with pytest.raises(ValueError, match="`critic_target` must be 'policy' or 'data'"):
        lps.LPSConfig(critic_target="behaviour")
    no_next = ReplayBuffer.from_arrays(np.zeros((4, 2), np.float32), np.zeros((4, 4, 2), np.float32),
                                       np.zeros(4, np.float32), np.zeros((4, 2), np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="needs the dataset's next actions"):
        lps.train(lps.LPSConfig(steps=1, critic_target="data"), no_next,
                  meanflow.MeanFlowDecoder(2, 2, 4, meanflow.MeanFlowConfig(hidden=16, layers=1)), progress=False)


@pytest.mark.parametrize("stride", [1, 4])
def test_next_actions_follow_the_episode_at_the_datasets_own_stride(stride):
    """Rollouts have one row per env step (stride 1), demonstrations one per policy step with s'
    `execute_steps` rows on (stride 4): the next action is read at whichever stride s' matches."""
    ids = np.repeat([0, 1], 6)
    obs = np.arange(12, dtype=np.float32)[:, None] * np.ones((12, 2), np.float32)
    actions = obs[:, None, :1] * np.ones((12, 4, 2), np.float32)
    nxt_obs = obs.copy()
    for e in (0, 1):
        r = np.flatnonzero(ids == e)
        nxt_obs[r] = obs[np.minimum(r + stride, r[-1])] + (r + stride > r[-1])[:, None] * 100  # past the end: none
    nxt = next_actions_within_episodes(obs, actions, nxt_obs, ids)
    expected = [i + stride if i + stride <= (5 if i < 6 else 11) else i for i in range(12)]
    assert nxt[:, 0, 0].tolist() == expected
    with pytest.raises(ValueError, match="no row stride"):
        next_actions_within_episodes(obs, actions, nxt_obs + 0.5, ids)
    buf = ReplayBuffer.from_arrays(obs, actions, np.zeros(12, np.float32), nxt_obs, np.zeros(12, np.float32),
                                   next_actions=nxt)
    b = buf.sample(64, np.random.default_rng(0))
    assert torch.equal(b["next_actions"][:, 0, 0], torch.tensor([float(expected[int(a)]) for a in b["actions"][:, 0, 0]]))
    with pytest.raises(ValueError, match="`next_actions` must be shaped like `actions`"):
        ReplayBuffer.from_arrays(obs, actions, np.zeros(12, np.float32), nxt_obs, np.zeros(12, np.float32),
                                 next_actions=nxt[:, :2])


class OptimisticCritics(nn.Module):
    """Critics that disagree by a constant: each is 1.0 more optimistic than the one before."""

    def __init__(self, n: int = 2) -> None:
        super().__init__()
        self.n = n

    def forward(self, obs, a):
        q = -(a.flatten(1) ** 2).sum(-1)
        return torch.stack([q + float(i) for i in range(self.n)])


@pytest.mark.parametrize("critics", [2, 5])
def test_lps_actor_reads_the_critics_as_their_mean_or_the_pessimistic_min(critics):
    dec = ScaledLatentDecoder()
    obs = torch.randn(16, 2)
    read = {}
    for mode in ("mean", "min"):
        torch.manual_seed(0)  # the same actor weights for both
        agent = lps.LPSAgent(lps.LPSConfig(hidden=32, actor_layers=1, critic_layers=1, actor_q=mode,
                                           critics=critics), dec)
        assert len(agent.q.heads) == critics
        agent.q = OptimisticCritics(critics)
        read[mode] = agent.update_actor({"obs": obs})["values/q_actor"]
    assert read["mean"] == pytest.approx(read["min"] + (critics - 1) / 2, abs=1e-5)
    with pytest.raises(ValueError, match="`actor_q` must be 'mean' or 'min'"):
        lps.LPSAgent(lps.LPSConfig(actor_q="max"), dec)
    with pytest.raises(ValueError, match="`critics` must be >= 2"):
        lps.LPSConfig(critics=1)


def test_lps_td_target_is_the_minimum_over_the_ensemble():
    dec = ScaledLatentDecoder()
    agent = lps.LPSAgent(lps.LPSConfig(hidden=32, actor_layers=1, critic_layers=1, critics=4, gamma=0.5), dec)
    agent.q_target = OptimisticCritics(4)  # member i reads -|a'|^2 + i: the minimum is member 0
    seen = []
    agent.q.register_forward_hook(lambda _m, _args, out: seen.append(out))
    b = {"obs": torch.randn(8, 2), "actions": torch.randn(8, 4, 2), "rewards": torch.ones(8),
         "next_obs": torch.randn(8, 2), "dones": torch.zeros(8)}
    with torch.no_grad():
        a2 = dec(b["next_obs"], agent.actor(b["next_obs"]))
    y = 1.0 + 0.5 * -(a2.flatten(1) ** 2).sum(-1)
    loss = agent.update_critic(b)["losses/q"]
    assert loss == pytest.approx(sum(F.mse_loss(q, y).item() for q in seen[0]), rel=1e-5)


def _episode_into(writer: NStepWriter, rewards: list[float], terminated: bool) -> None:
    for t, r in enumerate(rewards):
        last = t == len(rewards) - 1
        writer.add(np.full(2, t, np.float32), np.full((4, 2), t, np.float32), np.zeros(8, np.float32), r,
                   np.full(2, t + 1, np.float32), terminated and last, episode_over=last)


@pytest.mark.parametrize("terminated", [True, False])
def test_n_step_writer_sums_discounted_rewards_and_bootstraps_n_steps_later(terminated):
    buf = ReplayBuffer(2, 4, 2, 8, 64)
    _episode_into(NStepWriter(buf, n=3, gamma=0.5), [1.0, 2.0, 3.0, 4.0, 5.0], terminated)
    assert buf.size == 5
    order = np.argsort(buf.obs[:5, 0])
    assert buf.obs[order, 0].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(buf.rewards[order], [1 + 1 + 0.75, 2 + 1.5 + 1, 3 + 2 + 1.25, 4 + 2.5, 5])
    assert buf.next_obs[order, 0].tolist() == [3, 4, 5, 5, 5]  # k = 3 steps on, or the episode's end
    np.testing.assert_allclose(buf.discounts[order], [0.125, 0.125, 0.125, 0.25, 0.5])
    # Only transitions that reach the terminal state stop bootstrapping; a time-out never does.
    assert buf.dones[order].tolist() == ([0, 0, 1, 1, 1] if terminated else [0, 0, 0, 0, 0])
    assert buf.actions[order, 0, 0].tolist() == [0, 1, 2, 3, 4]  # each keeps its own first chunk


def test_one_step_writer_stores_plain_transitions_with_discount_gamma():
    buf = ReplayBuffer(2, 4, 2, 8, 64)
    _episode_into(NStepWriter(buf, n=1, gamma=0.9), [0.0, 0.0, 1.0], terminated=True)
    np.testing.assert_allclose(buf.rewards[:3], [0, 0, 1])
    np.testing.assert_allclose(buf.discounts[:3], [0.9] * 3)
    assert buf.next_obs[:3, 0].tolist() == [1, 2, 3] and buf.dones[:3].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="n_step"):
        NStepWriter(buf, n=0, gamma=0.9)
    with pytest.raises(ValueError, match="n_step"):
        small_lpds(n_step=0)


def test_lpds_action_critic_target_bootstraps_with_the_stored_discount():
    """y = R + gamma^k (1 - done) Qbar: a zero discount leaves y = R, a positive one adds Qbar."""
    torch.manual_seed(0)
    agent = lpds.LPDSAgent(small_lpds(critic_lr=1e-2), ScaledLatentDecoder())
    obs, nxt = torch.randn(64, 2), torch.randn(64, 2)
    batch = {"obs": obs, "actions": torch.zeros(64, 4, 2), "rewards": torch.ones(64), "next_obs": nxt,
             "dones": torch.zeros(64), "discounts": torch.zeros(64)}
    for _ in range(300):
        agent.update_qa(batch)
    q = torch.minimum(*agent.qa(obs, torch.zeros(64, 4, 2))).mean().item()
    assert q == pytest.approx(1.0, abs=0.1)
    batch["discounts"] = torch.full((64,), 0.5)
    qbar_before = torch.minimum(*agent.qa_target(nxt, agent.decoder(nxt, agent.noise(64)))).mean().item()
    info = agent.update_qa(batch)
    assert info["losses/qa"] > 0.25 * (0.5 * qbar_before) ** 2  # the target moved by gamma^k * Qbar


@pytest.mark.parametrize("algo", ["lpds", "dsrl"])
def test_online_heads_train_with_the_configured_torch_threads(algo):
    module = {"lpds": lpds, "dsrl": dsrl}[algo]
    config = {"lpds": small_lpds, "dsrl": dsrl.DSRLConfig}[algo]
    with pytest.raises(ValueError, match="`torch_threads` must be >= 1, got 0"):
        config(torch_threads=0)
    before = torch.get_num_threads()
    try:
        for threads in (2, 1):
            cfg = config(total_steps=3, learning_starts=1, batch_size=2, torch_threads=threads)
            module.train(cfg, TargetChunkEnv(), ScaledLatentDecoder(), progress=False)
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_lps_trains_with_the_configured_torch_threads():
    data = ReplayBuffer.from_arrays(np.zeros((8, 2), np.float32), np.zeros((8, 4, 2), np.float32),
                                    np.zeros(8, np.float32), np.zeros((8, 2), np.float32), np.zeros(8, np.float32))
    dec = meanflow.MeanFlowDecoder(2, 2, 4, meanflow.MeanFlowConfig(hidden=16, layers=1))
    before = torch.get_num_threads()
    try:
        for threads in (2, 1):
            lps.train(lps.LPSConfig(steps=2, batch_size=4, hidden=16, critic_layers=1, actor_layers=1,
                                    torch_threads=threads), data, dec, progress=False)
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_dsrl_goes_on_from_its_snapshot_as_if_it_had_not_stopped(tmp_path):
    cfg, dec = small_dsrl(total_steps=400), ScaledLatentDecoder()
    ref, ref_log = dsrl.train(cfg, TargetChunkEnv(), dec, progress=False)

    class DiesAt250(TargetChunkEnv):  # the machine going down mid-run
        steps = 0

        def step(self, chunk):
            DiesAt250.steps += 1
            if DiesAt250.steps > 250:
                raise RuntimeError("killed")
            return super().step(chunk)

    state = tmp_path / "dsrl.state.pt"
    with pytest.raises(RuntimeError, match="killed"):
        dsrl.train(cfg, DiesAt250(), dec, progress=False, state_path=state, state_every=100)
    assert state.is_file() and not state.with_name(state.name + ".tmp").exists()
    resumed, log = dsrl.train(cfg, TargetChunkEnv(), dec, progress=False, state_path=state, state_every=100)
    for a, b in zip(ref.actor.parameters(), resumed.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert resumed.temperature == pytest.approx(ref.temperature, abs=1e-6)
    np.testing.assert_allclose(log.series("charts/episodic_return")[1], ref_log.series("charts/episodic_return")[1],
                               atol=1e-6)  # the curves run on across the stop
    with pytest.raises(ValueError, match="other settings \\(total_steps\\)"):
        dsrl.train(small_dsrl(total_steps=500), TargetChunkEnv(), dec, progress=False, state_path=state)
    with pytest.raises(ValueError, match="another run \\(task differ"):
        dsrl.train(cfg, TargetChunkEnv(), dec, progress=False, state_path=state, run={"task": "peg_ring"})
