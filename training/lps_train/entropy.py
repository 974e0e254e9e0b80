"""Entropy of sample sets (how many modes a policy keeps)."""

from __future__ import annotations

import math

import numpy as np


def knn_entropy(x: np.ndarray, k: int = 5) -> float:
    """Kozachenko-Leonenko k-nearest-neighbour differential entropy estimate, in nats.

    H ~ psi(n) - psi(k) + log(V_d) + d * mean(log(2 * r_k)), where r_k is the distance to the
    k-th neighbour and V_d the volume of the d-dim unit ball (of diameter 1 in the 2 * r_k
    form). Higher means the samples spread over more of the space (more modes, more noise).
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n, d = x.shape
    if n <= k:
        raise ValueError(f"knn_entropy needs more than k={k} samples, got {n}")
    sq = (x * x).sum(1)
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    np.fill_diagonal(dist2, np.inf)
    r_k = np.sqrt(np.partition(dist2, k - 1, axis=1)[:, k - 1])
    r_k = np.maximum(r_k, 1e-12)
    log_vd = (d / 2) * math.log(math.pi) - math.lgamma(d / 2 + 1) - d * math.log(2)
    return float(_digamma_int(n) - _digamma_int(k) + log_vd + d * np.mean(np.log(2 * r_k)))


def _digamma_int(n: int) -> float:
    """psi(n) for a positive integer: -gamma + sum_{i<n} 1/i (no scipy in the environment)."""
    return -0.5772156649015329 + sum(1.0 / i for i in range(1, n))
