"""The four-mode toy wired for the algorithms: demonstrations, a base decoder, mode metrics.

Shared by the paper checks (`training/checks/`) and the fast tests, so both measure the same
thing. The toy's actions already live in [-1, 1] and its positions in [-1.5, 1.5], so the
normalisation is the identity and the decoder works in the env's own units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from lps_sim.four_modes import FourModes, collect_demos, goal_shares, make

from lps_train import flow, meanflow
from lps_train.entropy import knn_entropy
from lps_train.envs import run_episodes


def base_decoder(env: FourModes, kind: str = "meanflow", demo_episodes: int = 400, steps: int = 3000,
                 seed: int = 0, hidden: int = 256, layers: int = 3, progress: bool = False) -> torch.nn.Module:
    """Fit a base policy to the scripted demonstrator (all four goals, curved paths)."""
    demos = collect_demos(env, demo_episodes, seed)
    if kind == "meanflow":
        cfg = meanflow.MeanFlowConfig(seed=seed, steps=steps, hidden=hidden, layers=layers, lr=1e-3, ema_decay=0.995)
        return meanflow.train(cfg, demos["obs"], demos["actions"], progress=progress)
    if kind == "flow":
        fcfg = flow.FlowConfig(seed=seed, steps=steps, hidden=hidden, layers=layers, lr=1e-3, ema_decay=0.995,
                               integration_steps=4)
        return flow.train(fcfg, demos["obs"], demos["actions"], progress=progress)
    raise ValueError(f"`kind` must be 'meanflow' or 'flow', got {kind!r}")


def mode_metrics(env: FourModes, policy: Any, episodes: int = 200, seed: int = 10_000,
                 entropy_samples: int = 256, k: int = 5) -> dict[str, float]:
    """Goal shares, coverage and the k-NN entropy of the first chunk at start states.

    `policy(obs [B, 2] float32 tensor) -> chunk [B, T_a, 2] tensor` (stochastic: it samples its
    own latent). Coverage counts goals reached in at least 5% of the episodes.
    """
    gen = torch.Generator().manual_seed(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy(torch.as_tensor(obs, dtype=torch.float32)[None], gen)[0].numpy()

    stats = run_episodes(env, act, episodes, seed, max_steps=env.cfg.max_env_steps)
    goals = np.array([i["goal"] for i in stats.infos])
    shares = goal_shares(goals)
    p = shares[shares > 0] / max(shares.sum(), 1e-9)
    starts = np.stack([env.reset(seed + 50_000 + i) for i in range(entropy_samples)])
    with torch.no_grad():
        first = policy(torch.as_tensor(starts), gen).numpy()
    out = {
        "modes/success": float((goals >= 0).mean()),
        "modes/coverage": float((shares >= 0.05).sum()),
        "modes/goal_entropy": float(-(p * np.log(p)).sum()) if len(p) else 0.0,
        "modes/knn_action_entropy": knn_entropy(first.reshape(len(first), -1), k),
        "modes/episode_length": float(stats.lengths.mean()),
        "charts/eval_return": stats.mean_return,
    }
    out |= {f"modes/share_goal{i}": float(s) for i, s in enumerate(shares)}
    return out


def base_policy(decoder: torch.nn.Module):
    def policy(obs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return decoder(obs, decoder.sample_latent(len(obs), gen))
    return policy


def toy_env(variant: str, **overrides: Any) -> FourModes:
    return make(variant, **overrides)

