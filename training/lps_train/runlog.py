"""What a training run leaves behind: namespaced learning curves (CSV + PNG) and JSON files."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np


class Logger:
    """Namespaced scalars (`losses/q`, `charts/return`, `lagrange/alpha`) keyed by global step."""

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    def log(self, step: int, **scalars: float) -> None:
        for k, v in scalars.items():
            self.history[k.replace("__", "/")].append((step, float(v)))

    def last(self, key: str, default: float = float("nan")) -> float:
        h = self.history.get(key)
        return h[-1][1] if h else default

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        h = self.history.get(key, [])
        return np.asarray([s for s, _ in h]), np.asarray([v for _, v in h])

    def save_csv(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["key", "step", "value"])
            for k, h in sorted(self.history.items()):
                w.writerows((k, s, v) for s, v in h)

    @classmethod
    def load_csv(cls, path: str | Path) -> Logger:
        """The curves `save_csv` wrote."""
        log = cls()
        with Path(path).open(newline="") as f:
            for row in csv.DictReader(f):
                log.history[row["key"]].append((int(row["step"]), float(row["value"])))
        return log

    def plot(self, path: str | Path, keys: list[str] | None = None, title: str = "") -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = [k for k in (keys or sorted(self.history)) if self.history.get(k)]
        if not keys:
            return
        cols = min(3, len(keys))
        rows = math.ceil(len(keys) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
        for ax, k in zip(axes.flat, keys, strict=False):
            s, v = self.series(k)
            ax.plot(s, v, lw=1)
            ax.set_title(k, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)


def config_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg) if is_dataclass(cfg) else dict(cfg)


def save_json(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
