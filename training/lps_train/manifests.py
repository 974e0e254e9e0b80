"""Model manifests written beside exported networks, validated exactly as the runtime loads them.

No torch: the tiny test models (`lps_train.tiny`) are written without torch.
"""

from __future__ import annotations

import datetime as _dt
import subprocess
import sys
from pathlib import Path
from typing import Any

from lps_steering.core.manifest import (
    FORMAT_VERSION,
    ActionLayout,
    Manifest,
    ObservationLayout,
    Provenance,
    expected_io,
    manifest_path_for,
    sha256_file,
)


def git_commit() -> str:
    """Commit of the repository this file lives in ("" outside a checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def write_manifest(onnx_path: str | Path, *, kind: str, name: str, observation: ObservationLayout,
                   action: ActionLayout, robot: str, chunk_length: int, policy_rate_hz: float,
                   latent_geometry: str, decoder_type: str | None = None, head_type: str | None = None,
                   trust_region_delta: float | None = None, decoder_onnx: str | Path | None = None,
                   seed: int | None = None, metrics: dict[str, Any] | None = None,
                   command: str | None = None, latent_projection: str | None = None,
                   noise_input: bool = False) -> Manifest:
    """Write `<stem>.json` beside `onnx_path`, validated exactly as the runtime will load it.

    Heads pass `decoder_onnx`: the path of the decoder they were trained against (hashed here).
    """
    onnx_path = Path(onnx_path)
    action_dim = sum(e.size for e in action.entries)
    m = Manifest(
        format_version=FORMAT_VERSION, kind=kind, name=name, onnx_sha256=sha256_file(onnx_path),
        inputs=[], outputs=[], observation=observation, action=action, robot=robot,
        chunk_length=chunk_length, action_dim=action_dim, policy_rate_hz=float(policy_rate_hz),
        latent_dim=chunk_length * action_dim, latent_geometry=latent_geometry,
        decoder_type=decoder_type, head_type=head_type,
        trust_region_delta=None if trust_region_delta is None else float(trust_region_delta),
        decoder_sha256=sha256_file(decoder_onnx) if decoder_onnx is not None else None,
        latent_projection=latent_projection, noise_input=noise_input,
        provenance=Provenance(
            command=command if command is not None else " ".join(sys.argv), seed=seed,
            commit=git_commit(), created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            metrics=dict(metrics or {})),
    )
    m.inputs, m.outputs = expected_io(m)
    m.save(manifest_path_for(onnx_path))
    return m
