"""Decoder checkpoints (`meanflow.save_decoder`, `flow.save_decoder`) loaded back as frozen modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lps_train.nets import freeze
from lps_train.normalization import Normalization


def load_decoder(path: str | Path) -> tuple[torch.nn.Module, Normalization, dict[str, Any]]:
    """A decoder checkpoint written by `meanflow.save_decoder` or `flow.save_decoder`, frozen."""
    try:
        return load_decoder_checkpoint(torch.load(path, map_location="cpu", weights_only=False))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def load_decoder_checkpoint(ckpt: dict[str, Any]) -> tuple[torch.nn.Module, Normalization, dict[str, Any]]:
    """`load_decoder` of a checkpoint already in memory."""
    kind = ckpt.get("decoder_type")
    if kind == "meanflow":
        from lps_train.meanflow import build_from_checkpoint
    elif kind == "flow":
        from lps_train.flow import build_from_checkpoint
    else:
        raise ValueError(f"`decoder_type` must be 'meanflow' or 'flow', got {kind!r}")
    return freeze(build_from_checkpoint(ckpt)), Normalization.from_dict(ckpt["normalization"]), ckpt
