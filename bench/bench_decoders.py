"""One-step MeanFlow decoder vs K-step flow decoder of the same size: inference latency.

Both decoders have the same network (hidden width, depth, inputs); the flow decoder runs it K
times (Euler), the MeanFlow decoder once. Measured in the same run, batch 1 (the control-loop
case), torch eager and ONNX Runtime (CPU, one intra-op thread), median and p99. The ratio
flow / meanflow is printed beside its target (>= 10x for K = 10); nothing is asserted.

    scripts/with-env python bench/bench_decoders.py [--k 10] [--iters 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lps_train.flow import FlowConfig, FlowDecoder
from lps_train.meanflow import MeanFlowConfig, MeanFlowDecoder

OBS_DIM, ACTION_DIM, CHUNK = 23, 8, 8  # joints, velocities, gripper, object/target; 7 joints + gripper


def timeit(fn, iters: int, warmup: int = 20) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    ts = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        ts[i] = time.perf_counter() - t0
    return float(np.median(ts) * 1e3), float(np.percentile(ts, 99) * 1e3)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--k", type=int, default=10, help="Euler steps of the flow decoder")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mf = MeanFlowDecoder(OBS_DIM, ACTION_DIM, CHUNK, MeanFlowConfig(hidden=args.hidden, layers=args.layers)).eval()
    fl = FlowDecoder(OBS_DIM, ACTION_DIM, CHUNK,
                     FlowConfig(hidden=args.hidden, layers=args.layers, integration_steps=args.k)).eval()
    n_mf = sum(p.numel() for p in mf.parameters())
    n_fl = sum(p.numel() for p in fl.parameters())
    print(f"decoders: obs {OBS_DIM}, chunk {CHUNK}x{ACTION_DIM}, MLP {args.layers}x{args.hidden}; "
          f"params meanflow {n_mf}, flow {n_fl}; flow K = {args.k}; batch 1; 1 thread")
    obs, lat = torch.randn(1, OBS_DIM), torch.randn(1, CHUNK * ACTION_DIM)

    rows = []
    with torch.inference_mode():
        for name, dec in (("meanflow", mf), ("flow", fl)):
            rows.append(("torch eager", name, *timeit(lambda d=dec: d(obs, lat), args.iters)))

    try:
        from lps_steering.core.policy import bind_buffers
        from lps_steering.core.sessions import create_session
        from lps_train.export import export_onnx
    except ImportError as e:  # the export helpers are the core engineer's; report rather than fail
        print(f"onnxruntime part skipped: {e}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            feeds = {"observation": obs.numpy(), "latent": lat.numpy()}
            for name, dec in (("meanflow", mf), ("flow", fl)):
                path = export_onnx(dec, (obs, lat), ["observation", "latent"], ["actions"], Path(tmp) / f"{name}.onnx")
                # As the runtime runs them: its session options and buffers bound once.
                sess = create_session(path, intra_op_threads=1)
                out = np.zeros((1, CHUNK, ACTION_DIM), np.float32)
                binding = bind_buffers(sess, feeds, "actions", out)
                ref = dec(obs, lat).detach().numpy()
                sess.run_with_iobinding(binding)
                err = float(np.abs(out - ref).max())
                med, p99 = timeit(lambda s=sess, b=binding: s.run_with_iobinding(b), args.iters)
                rows.append((f"onnxruntime (|err| {err:.1e})", name, med, p99))

    print(f"{'backend':32s} {'decoder':9s} {'median ms':>10s} {'p99 ms':>8s}")
    for backend, name, med, p99 in rows:
        print(f"{backend:32s} {name:9s} {med:10.3f} {p99:8.3f}")
    for backend in sorted({r[0].split(' (')[0] for r in rows}):
        by = {r[1]: r for r in rows if r[0].split(" (")[0] == backend}
        if len(by) == 2:
            ratio = by["flow"][2] / by["meanflow"][2]
            print(f"ratio flow/meanflow ({backend}, median): {ratio:.1f}x   target >= 10x for K = 10")


if __name__ == "__main__":
    main()
