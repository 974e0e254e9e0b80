"""ONNX Runtime sessions configured for a control loop, and refused when they are not what was asked.

ONNX Runtime quietly falls back to CPU when a requested provider cannot start; in a control loop
that changes the latency by an order of magnitude, so the active providers are compared with the
request and a mismatch is an error unless the caller allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

# Priority order used when a caller asks for "the fastest available".
PROVIDER_PRIORITY = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_NUMPY_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                 "tensor(int64)": np.int64, "tensor(int32)": np.int32}


class ProviderError(RuntimeError):
    """The session does not run on the execution providers that were requested."""


class ModelLoadError(RuntimeError):
    """The ONNX file cannot be read or parsed."""


def session_options(intra_op_threads: int = 1, inter_op_threads: int = 1) -> ort.SessionOptions:
    """Options for a latency-critical loop: fixed thread counts, sequential, no spinning workers.

    Spinning worker threads would steal CPU from the real-time threads of the robot stack.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(intra_op_threads)
    opts.inter_op_num_threads = int(inter_op_threads)
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def create_session(onnx_path: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",),
                   allow_fallback: bool = False, intra_op_threads: int = 1) -> ort.InferenceSession:
    """Create a session on `providers` (priority order) and check it really runs on them.

    Raises:
        ModelLoadError: the file is missing, unreadable or not a valid ONNX model.
        ProviderError: a requested provider is unknown to this onnxruntime build, or the active
            providers differ from the request and `allow_fallback` is False.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX model not found: {path}")
    requested = list(providers)
    if not requested:
        raise ProviderError("`providers` must name at least one execution provider, got []")
    available = ort.get_available_providers()
    usable = [p for p in requested if p in available]
    if len(usable) != len(requested) and not allow_fallback:
        missing = [p for p in requested if p not in available]
        raise ProviderError(f"requested execution providers {requested} but {missing} are not "
                            f"available in this onnxruntime build (available: {available}); "
                            "set allow_fallback to run on what is available")
    if not usable:
        usable = ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options(intra_op_threads),
                                       providers=usable)
    except Exception as exc:  # onnxruntime raises several private exception types
        raise ModelLoadError(f"cannot load ONNX model {path}: {type(exc).__name__}: {exc}") from exc
    active = session.get_providers()
    if not allow_fallback and active[:len(requested)] != requested:
        raise ProviderError(f"requested execution providers {requested}, active {active} for {path}")
    return session


def warm_up(session: ort.InferenceSession, runs: int = 10, batch: int = 1) -> None:
    """Run the session on zeros so allocations and lazy initialisation happen before the loop."""
    feeds = {}
    for inp in session.get_inputs():
        shape = [batch if not isinstance(d, int) or d < 0 else d for d in inp.shape]
        feeds[inp.name] = np.zeros(shape, dtype=_NUMPY_DTYPES.get(inp.type, np.float32))
    for _ in range(runs):
        session.run(None, feeds)
