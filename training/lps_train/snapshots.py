"""What the resumable runs (online DSRL's snapshots, offline LPS's checkpoints) share: a write that
never leaves half a file, and the names of the settings a saved run differs in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_atomically(state: dict[str, Any], path: Path) -> None:
    """torch.save through a temporary file: a run killed while saving leaves the previous file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def differing_settings(saved: dict[str, Any] | None, current: dict[str, Any] | None) -> list[str]:
    """Dotted names of the (nested) settings whose values differ between two runs' records."""
    a, b = _flatten(saved or {}), _flatten(current or {})
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out
