"""ONNX export of decoders and heads, with the manifest the runtime core validates.

`export_onnx` writes one self-contained .onnx file (no external-data side file, so the manifest's
SHA-256 covers the whole network); `write_manifest` fills shapes from the layout, the file's
hash, the decoder's hash for heads and the provenance (`lps_train.manifests`, importable without
torch); `parity_check` compares ONNX Runtime with
torch on random inputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from lps_steering.core.manifest import (
    load_manifest,
)

DEFAULT_OPSET = 17


def export_onnx(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor],
                input_names: Sequence[str], output_names: Sequence[str], path: str | Path,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Export `module` to a single .onnx file with named inputs/outputs and a dynamic batch axis.

    The TorchScript-based exporter is used: with torch 2.13 it works offline, takes a fraction of
    a second for these MLPs and writes one file, where the dynamo exporter writes a separate
    external-data file that the manifest hash would not cover.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: "batch"} for name in (*input_names, *output_names)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(module, tuple(example_inputs), str(path), input_names=list(input_names),
                          output_names=list(output_names), opset_version=opset,
                          dynamic_axes=dynamic_axes, do_constant_folding=True, dynamo=False)
    return path


def parity_check(module: torch.nn.Module, onnx_path: str | Path, n: int = 1000, seed: int = 0,
                 batch: int = 250) -> float:
    """Max |torch - onnxruntime| over `n` random inputs (standard normal, per declared input)."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    rng = np.random.default_rng(seed)
    worst = 0.0
    module = module.eval()
    done = 0
    while done < n:
        b = min(batch, n - done)
        feeds = {i.name: rng.standard_normal(
            [b if not isinstance(d, int) or d < 0 else d for d in i.shape]).astype(np.float32)
            for i in inputs}
        ort_out = session.run(None, feeds)
        with torch.no_grad():
            torch_out = module(*(torch.from_numpy(feeds[i.name]) for i in inputs))
        if isinstance(torch_out, torch.Tensor):
            torch_out = (torch_out,)
        for a, t in zip(ort_out, torch_out, strict=True):
            worst = max(worst, float(np.max(np.abs(a - t.numpy()))))
        done += b
    return worst


def import_decoder(onnx_path: str | Path, like: dict[str, Any], max_err: float = 1e-4) -> dict[str, Any]:
    """The torch checkpoint of an exported decoder: `like` (a checkpoint of the same architecture, e.g.
    a retrained base) supplies the module's structure; the weights come from the .onnx and the
    normalisation from its manifest. Training is not bit-reproducible across runs (a retrained base
    differs from the shipped one), so a head meant for a shipped decoder (LPS differentiates through
    it) needs that decoder's own weights. Refused unless torch and ONNX Runtime agree to `max_err`."""
    import onnx
    from onnx import numpy_helper

    from lps_train.checkpoints import load_decoder_checkpoint

    m = load_manifest(onnx_path)
    if m.kind != "decoder":
        raise ValueError(f"{onnx_path}: manifest `kind` must be 'decoder', got {m.kind!r}")
    if m.decoder_type != like.get("decoder_type"):
        raise ValueError(f"{onnx_path}: `decoder_type` {m.decoder_type!r} differs from the template's "
                         f"{like.get('decoder_type')!r}")
    dims = {"obs_dim": m.observation.dim, "action_dim": m.action_dim, "chunk_length": m.chunk_length}
    if dims != like["dims"]:
        raise ValueError(f"{onnx_path}: dims {dims} differ from the template's {like['dims']}")
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in onnx.load(str(onnx_path)).graph.initializer}
    template = like["state_dict"]
    if set(weights) != set(template) or any(weights[k].shape != template[k].shape for k in template):
        raise ValueError(f"{onnx_path}: its weights {sorted((k, tuple(v.shape)) for k, v in weights.items())} do "
                         f"not match the template's {sorted((k, tuple(v.shape)) for k, v in template.items())}")
    obs = m.observation.entries
    ckpt = dict(like, state_dict=weights, normalization={
        "obs_mean": m.observation.mean, "obs_std": m.observation.std,
        "act_mean": list(m.action.mean), "act_std": list(m.action.std)})
    # Only what describes the .onnx: the template's demos, rows and wall time belong to another run.
    ckpt["extra"] = {"env": like.get("extra", {}).get("env", ""), "imported_from": str(onnx_path),
                     "onnx_sha256": m.onnx_sha256,
                     "observation": [{"name": e.name, "source": e.source, "size": e.size} for e in obs]}
    err = parity_check(load_decoder_checkpoint(ckpt)[0], onnx_path)
    if err > max_err:
        raise ValueError(f"{onnx_path}: the imported torch decoder differs from ONNX Runtime by {err:.2e} > "
                         f"{max_err:g} on 1000 random inputs (the template's architecture is not the file's)")
    return ckpt
