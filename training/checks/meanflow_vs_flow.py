"""Why the one-step MeanFlow decoder was weak, and what fixed it: variants vs the K=10 flow decoder.

A conditional three-mode problem of the decoders' shape class: observation c ~ U(-1, 1), chunk
[4, 2] = c * ramp + 0.8 * m + noise (m in {-1, 0, 1}, equal odds). A sample counts as "in a
mode" when it is within 0.25 (max-abs) of one of the three clean chunks for its c; the mode shares
show whether all three modes survive. Every variant gets the same network size and steps.

    scripts/with-env python training/checks/meanflow_vs_flow.py            # ~3-5 min on 1 core

Results go to training/checks/results/meanflow_vs_flow/ (JSON + PNG).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from lps_train import flow, meanflow  # noqa: E402
from lps_train.runlog import save_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "meanflow_vs_flow"
RAMP = np.linspace(0, 1, 4)[None, :, None]

# name -> MeanFlowConfig overrides (None: the K=10 flow decoder). "previous" is the configuration
# the first implementation shipped with (time features up to frequency 1000).
VARIANTS: dict[str, dict | None] = {
    "meanflow previous (f_max 1000, u-loss, p 1)": dict(time_max_freq=1000.0),
    "meanflow f_max 1000, x-loss, p 0.5, 10% (0,1)": dict(time_max_freq=1000.0, loss_space="x", adaptive_p=0.5,
                                                          one_step_share=0.1),
    "meanflow f_max 10": dict(time_max_freq=10.0),
    "meanflow f_max 30, p 0.5": dict(adaptive_p=0.5),
    "meanflow f_max 30, 10% (0,1)": dict(one_step_share=0.1),
    "meanflow f_max 30 (default)": dict(),
    "flow K=10": None,
}


def dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, (n, 1))
    mode = rng.integers(0, 3, n) - 1
    acts = c[:, :, None] * RAMP + 0.8 * mode[:, None, None] + 0.05 * rng.standard_normal((n, 4, 2))
    return c.astype(np.float32), acts.astype(np.float32)


def score(decoder: torch.nn.Module, seed: int) -> dict[str, float]:
    c = torch.linspace(-1, 1, 50).repeat_interleave(40)[:, None]
    with torch.no_grad():
        s = decoder(c, decoder.sample_latent(len(c), torch.Generator().manual_seed(seed))).numpy()
    resid = s - c.numpy()[:, :, None] * RAMP
    m = np.round(resid.mean((1, 2)) / 0.8).clip(-1, 1)
    err = np.abs(resid - 0.8 * m[:, None, None]).max((1, 2))
    ok = err < 0.25
    return {"in_mode": float(ok.mean()), **{f"share_{k:+d}": float(((m == k) & ok).mean()) for k in (-1, 0, 1)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    a = p.parse_args()
    torch.set_num_threads(1)
    obs, acts = dataset(4000, 0)
    common = dict(steps=a.steps, batch_size=128, hidden=128, layers=3, lr=1e-3, ema_decay=0.99)
    results: dict = {"steps": a.steps, "seeds": a.seeds, "variants": {}}
    for name, overrides in VARIANTS.items():
        runs = []
        for seed in a.seeds:
            t0 = time.perf_counter()
            if overrides is None:
                dec = flow.train(flow.FlowConfig(seed=seed, integration_steps=10, **common), obs, acts, progress=False)
            else:
                cfg = meanflow.MeanFlowConfig(seed=seed, **(common | overrides))
                dec = meanflow.train(cfg, obs, acts, progress=False)
            runs.append(score(dec, seed + 100) | {"train_s": time.perf_counter() - t0})
            print(f"{name:<50} seed {seed}: in mode {runs[-1]['in_mode']:.3f}", flush=True)
        results["variants"][name] = {"runs": runs, "in_mode_mean": float(np.mean([r["in_mode"] for r in runs]))}
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_json(RESULTS / "results.json", results)
    names = list(results["variants"])
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, n in enumerate(names):
        vals = [r["in_mode"] for r in results["variants"][n]["runs"]]
        ax.bar(i, np.mean(vals), color="tab:gray" if "flow" in n else "tab:blue")
        ax.plot([i] * len(vals), vals, "k.")
    ax.set_xticks(range(len(names)), [n.replace("meanflow ", "MF ") for n in names], rotation=25, ha="right",
                  fontsize=7)
    ax.set_ylabel("samples within 0.25 of a mode")
    ax.set_title(f"one-step MeanFlow variants vs K=10 flow ({a.steps} steps, same network)")
    fig.tight_layout()
    fig.savefig(RESULTS / "in_mode.png", dpi=110)
    print(f"results in {RESULTS}")


if __name__ == "__main__":
    main()
