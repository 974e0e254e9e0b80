"""Decoder and LPS head trained from a trajectory dataset -> ONNX + manifests in the runtime's schema.

The manifest's observation and action entries come from the dataset's layout. A layout whose entries
all name runtime sources and action modes (the stack's own recordings) gives manifests the runtime
validates and the robot stack loads (`lps_steering.core.policy.load_model`). A benchmark's layout (OGBench's
UR5e state, LeRobot features) has no runtime sources: its manifests are written in the same schema
without the runtime's vocabulary check and are loaded for evaluation by `load_unchecked`, which builds
the same `LoadedModel` the runtime's `SteeredPolicy` runs.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Any

import torch
from lps_steering.core.manifest import (
    FORMAT_VERSION,
    ActionEntry,
    ActionLayout,
    Manifest,
    ManifestError,
    ObservationEntry,
    ObservationLayout,
    Provenance,
    TensorSpec,
    expected_io,
    manifest_path_for,
    sha256_file,
)
from lps_steering.core.policy import LoadedModel, load_model
from lps_steering.core.sessions import create_session

from lps_train.export import export_onnx, parity_check
from lps_train.manifests import git_commit
from lps_train.normalization import Normalization
from lps_train.offline.format import Trajectories

MAX_PARITY_ERR = 1e-4


def _layouts(data: Trajectories, norm: Normalization) -> tuple[ObservationLayout, ActionLayout]:
    entries, i = [], 0
    for e in data.observation:
        entries.append(ObservationEntry(name=e.name, source=e.source or e.name, size=e.size,
                                        mean=[float(x) for x in norm.obs_mean[i:i + e.size]],
                                        std=[float(x) for x in norm.obs_std[i:i + e.size]]))
        i += e.size
    action = ActionLayout(entries=[ActionEntry(name=e.name, size=e.size, units=e.units, mode=e.mode or e.name)
                                   for e in data.action],
                          mean=[float(x) for x in norm.act_mean], std=[float(x) for x in norm.act_std])
    return ObservationLayout(entries=entries), action


def _write(onnx_path: Path, m: Manifest) -> bool:
    """Save `m` beside `onnx_path`, validated when the layout is the runtime's; True if it was."""
    m.inputs, m.outputs = expected_io(m)
    try:
        m.save(manifest_path_for(onnx_path))
        return True
    except ManifestError:
        manifest_path_for(onnx_path).write_text(json.dumps(m.to_dict(), indent=2) + "\n")
        return False


def export_models(out_dir: str | Path, decoder: torch.nn.Module, actor: torch.nn.Module, norm: Normalization,
                  data: Trajectories, name: str, command: str, seed: int | None,
                  metrics: dict[str, Any] | None = None, head_type: str = "lps",
                  latent_projection: str | None = None) -> dict[str, Any]:
    """<out_dir>/decoder.onnx and <out_dir>/heads/<head_type>.onnx, each with its manifest.

    A head with `stochastic` set (a sampling DSRL actor) is exported with the runtime's
    standard-normal `noise` as its second input."""
    out = Path(out_dir)
    # Copies on the CPU: the networks may still be training on another device.
    decoder, actor = copy.deepcopy(decoder).cpu().eval(), copy.deepcopy(actor).cpu().eval()
    obs_layout, act_layout = _layouts(data, norm)
    common = dict(format_version=FORMAT_VERSION, inputs=[], outputs=[], observation=obs_layout, action=act_layout,
                  robot=data.robot, chunk_length=decoder.chunk_length, action_dim=decoder.action_dim,
                  policy_rate_hz=float(data.rate_hz),  # the rate of the actions inside a chunk: the data's step rate
                  latent_dim=decoder.latent_dim, latent_geometry=decoder.latent_geometry)
    dec_path = export_onnx(decoder, (torch.zeros(1, decoder.obs_dim), torch.zeros(1, decoder.latent_dim)),
                           ["observation", "latent"], ["actions"], out / "decoder.onnx")
    noise_input = bool(getattr(actor, "stochastic", False))
    head_in = [torch.zeros(1, decoder.obs_dim), *([torch.zeros(1, decoder.latent_dim)] if noise_input else [])]
    head_path = export_onnx(actor, tuple(head_in), ["observation", *(["noise"] if noise_input else [])], ["latent"],
                            out / "heads" / f"{head_type}.onnx")
    report: dict[str, Any] = {}
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    for kind, module, path in (("decoder", decoder, dec_path), ("head", actor, head_path)):
        err = parity_check(module, path, n=1000)
        if err > MAX_PARITY_ERR:
            raise ValueError(f"{path}: ONNX Runtime differs from torch by {err:.2e} > {MAX_PARITY_ERR:g}")
        prov = Provenance(command=command, seed=seed, commit=git_commit(), created=created,
                          metrics=dict(metrics or {}) | {"parity_max_abs_err": err, "dataset": data.meta()["source"]})
        head = kind == "head"
        m = Manifest(kind=kind, name=f"{name}_{head_type if head else 'meanflow'}",
                     onnx_sha256=sha256_file(path), provenance=prov,
                     decoder_type=None if head else "meanflow", head_type=head_type if head else None,
                     decoder_sha256=sha256_file(dec_path) if head else None,
                     latent_projection=latent_projection if head else None, noise_input=head and noise_input,
                     **common)
        report[kind] = {"onnx": str(path), "runtime_layout": _write(path, m), "parity_max_abs_err": err}
    return report


def _manifest_unchecked(path: Path) -> Manifest:
    d = json.loads(manifest_path_for(path).read_text())
    obs = d["observation"]
    return Manifest(**(d | {
        "inputs": [TensorSpec(**t) for t in d["inputs"]], "outputs": [TensorSpec(**t) for t in d["outputs"]],
        "observation": ObservationLayout(entries=[ObservationEntry(**e) for e in obs["entries"]]),
        "action": ActionLayout(entries=[ActionEntry(**e) for e in d["action"]["entries"]], mean=d["action"]["mean"],
                               std=d["action"]["std"]),
        "provenance": Provenance(**d.get("provenance", {}))}))


def load_unchecked(onnx_path: str | Path, kind: str) -> LoadedModel:
    """The runtime's LoadedModel of an exported model: validated by `load_model` when its layout is the
    runtime's, else read as written (hash still checked) for evaluation outside the robot stack."""
    path = Path(onnx_path)
    try:
        return load_model(path, kind)
    except ManifestError:
        m = _manifest_unchecked(path)
    if m.kind != kind or sha256_file(path) != m.onnx_sha256:
        raise ManifestError(f"{path}: not a {kind} matching its manifest (kind {m.kind!r}, sha256 checked)")
    return LoadedModel(manifest=dataclasses.replace(m), session=create_session(path), sha256=m.onnx_sha256,
                       path=str(path))
