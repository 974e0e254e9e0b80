"""Core step latency: decoder (4x512 MLP, chunk 8) + head through SteeredPolicy on ONNX Runtime CPU,
against the same networks in torch eager on the same inputs in the same run.

Prints p50 / p99 / max per path and the ratio torch / onnxruntime. Target: core p99 <= 0.2 ms
(printed, not asserted). Usage: scripts/with-env python bench/bench_core_latency.py [--n 3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lps_steering.core.policy import SteeredPolicy, load_model
from lps_train.tiny import READY_Q, build_tiny_models
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

TARGET_P99_MS = 0.2


def _stats(samples_ms: list[float]) -> tuple[float, float, float]:
    a = np.asarray(samples_ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="timed inferences per path")
    parser.add_argument("--warmup", type=int, default=200, help="untimed inferences per path first")
    parser.add_argument("--block", type=int, default=1000, help="calls per path before switching paths")
    parser.add_argument("--head", default="lpds", choices=["none", "lps", "lpds", "dsrl"])
    args = parser.parse_args()

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="lps-bench-") as tmp:
        models = build_tiny_models(Path(tmp), seed=0, hidden=512, layers=4, head_hidden=256)
        decoder = load_model(models.decoder, "decoder", intra_op_threads=1)
        head = None if args.head == "none" else load_model(models.heads[args.head], "head")
        policy = SteeredPolicy(decoder, head, guard=1.0, seed=0)
        dec_t = models.decoder_module.eval()
        head_t = models.head_modules.get(args.head)

        rng = np.random.default_rng(0)
        base = np.array(READY_Q + [0.04, 0.5, 0.0, 0.05])
        observations = base + 0.05 * rng.standard_normal((args.n + args.warmup, base.size))
        m = decoder.manifest
        mean = np.asarray(m.observation.mean)
        std = np.asarray(m.observation.std)
        act_mean, act_std = torch.tensor(m.action.mean), torch.tensor(m.action.std)

        def torch_step(obs: np.ndarray) -> np.ndarray:
            s = torch.from_numpy(((obs - mean) / std).astype(np.float32))[None]
            eps = torch.randn(1, m.latent_dim)
            eps = eps * (m.latent_dim ** 0.5 / eps.norm())
            if head_t is None:
                w = eps
            elif args.head == "lpds":
                w = eps + head_t(s)
            else:
                w = head_t(s)
            return (dec_t(s, w)[0] * act_std + act_mean).numpy()

        # Alternating blocks, not alternating calls: a control loop runs one policy back to back,
        # and interleaving single calls would make each path evict the other's weights (3.4 MB
        # per decoder) from the cache. Blocks still spread load drift over both paths.
        ort_ms, torch_ms = [], []
        block = args.block
        with torch.inference_mode():
            bar = tqdm(total=2 * len(observations), desc="bench core (ort + torch)")
            for start in range(0, len(observations), block):
                chunk = observations[start:start + block]
                for run, out in ((policy.infer, ort_ms), (torch_step, torch_ms)):
                    for k, obs in enumerate(chunk):
                        t0 = time.perf_counter()
                        run(obs)
                        if start + k >= args.warmup:
                            out.append((time.perf_counter() - t0) * 1e3)
                    bar.update(len(chunk))
            bar.close()

    o50, o99, omax = _stats(ort_ms)
    t50, t99, tmax = _stats(torch_ms)
    table = Table(title=f"core step latency, decoder 4x512 MLP + {args.head} head, n={args.n}, 1 thread")
    for col in ("path", "p50 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="right" if col != "path" else "left")
    table.add_row("SteeredPolicy (onnxruntime CPU)", f"{o50:.4f}", f"{o99:.4f}", f"{omax:.3f}")
    table.add_row("torch eager (same nets, same inputs)", f"{t50:.4f}", f"{t99:.4f}", f"{tmax:.3f}")
    console = Console()
    console.print(table)
    console.print(f"ratio torch/ort: p50 {t50 / o50:.2f}x, p99 {t99 / o99:.2f}x")
    verdict = "meets" if o99 <= TARGET_P99_MS else "MISSES"
    console.print(f"core p99 {o99:.4f} ms {verdict} the target of {TARGET_P99_MS} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
