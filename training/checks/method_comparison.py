"""The comparison of every steering method on pick_place: one table, its plot, and LP-DS's trust region.

Each cell is one head evaluated with `lps-train evaluate` on the same episode seeds (a profile's
200 episodes from seed 100000) against the frozen base evaluated on the same seeds; the heads were
trained with the same number of env steps where they train online. This script gathers the
evaluation files into training/checks/results/method_comparison/results.json (with each head's
training command and env steps, read from its manifest) and draws docs/img/method_comparison.png;
with `--trust-region` also LP-DS's Lagrange multiplier and E||Delta||^2 over training from the
runs' learning-curve CSVs (docs/img/lpds_trust_region.png):

    scripts/with-env python training/checks/method_comparison.py \
        --cell "LP-DS (shipped)=nominal=runs/pick_place/eval_nominal_a.json#lpds" ...
    scripts/with-env python training/checks/method_comparison.py \
        --trust-region "delta 0.35=0.35=runs/cmp/lpds_paper.csv"

`--paired A B` (each EVAL.json#HEAD, the same seeds) compares two heads seed by seed, as a head is
compared with the base. `--latent-norms HEAD.onnx DATA.npz` prints the norms of the latents a head feeds the shipped decoder
on 5,000 of the dataset's states (how far LP-DS's eps + Delta leaves the decoder's sphere).

Run folders are not committed, so results.json is the record; `--cell` adds or replaces a cell
(method, profile), and a run without arguments replots what is recorded.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lps_steering.core.manifest import load_manifest  # noqa: E402
from lps_steering.evaluation.stats import wilson_interval  # noqa: E402
from lps_train.pick_place.evaluation import paired_with_base  # noqa: E402
from lps_train.runlog import save_json  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "method_comparison" / "results.json"
IMG = HERE.parents[1] / "docs" / "img"


def _evaluation(spec: str) -> tuple[dict, dict, dict]:
    """(file, the head's result, the base's result on the same seeds) from `EVAL.json#HEAD`."""
    path, _, head = spec.partition("#")
    ev = json.loads(Path(path).read_text())
    pick = [r for r in ev["results"] if r["head"] == head]
    base = [r for r in ev["results"] if r["head"] == "none"]
    if len(pick) != 1 or len(base) != 1:
        raise SystemExit(f"{spec}: needs exactly one result of head {head!r} and one of the base ('none')")
    return ev, pick[0], base[0]


class _Result:
    """The fields `paired_with_base` reads, from a result dict."""

    def __init__(self, r: dict) -> None:
        self.head, self.outcomes = r["head"], r["outcomes"]
        self.success_rate = r["successes"] / r["episodes"]


def cell_from_evaluation(method: str, profile: str, spec: str, head_onnx: str = "") -> dict:
    ev, r, base = _evaluation(spec)
    if ev["profile"] != profile:
        raise SystemExit(f"{spec}: evaluated on profile {ev['profile']!r}, not {profile!r}")
    lo, hi = wilson_interval(r["successes"], r["episodes"])
    cell = {"method": method, "profile": profile, "head": r["head"], "successes": r["successes"],
            "episodes": r["episodes"], "seed": ev["seed"], "wilson_95": [lo, hi],
            "base_successes": base["successes"], "holds": r["holds"], "outcomes": r["outcomes"],
            "evaluate_command": ev["command"],
            "paired_with_base": paired_with_base(_Result(base), _Result(r)) if r["head"] != "none" else None}
    if head_onnx:
        metrics = load_manifest(head_onnx).provenance.metrics
        cell["train_command"] = metrics.get("train_command", "")
        cell["config"] = metrics.get("config", {})
    return cell


def _read_curve(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["key"], []).append((float(row["step"]), float(row["value"])))
    return {k: (np.array([s for s, _ in v]), np.array([x for _, x in v])) for k, v in out.items()}


def plot_trust_region(runs: list[tuple[str, float, str]], out: Path) -> dict:
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    summary = {}
    for label, delta, path in runs:
        c = _read_curve(path)
        s, alpha = c["lagrange/alpha"]
        _, dsq = c["constraint/delta_sq"]
        line = axes[0].plot(s, alpha, label=label)[0]
        axes[1].plot(s, dsq, color=line.get_color(), label=label)
        axes[1].axhline(delta, color=line.get_color(), ls="--", lw=1)
        if "charts/success" in c:
            ss, succ = c["charts/success"]
            axes[2].plot(ss, succ, color=line.get_color(), label=label)
        summary[label] = {"delta": delta, "alpha_max": float(alpha.max()), "alpha_last": float(alpha[-1]),
                          "steps_alpha_positive": int((alpha > 0).sum()), "logged_steps": len(alpha),
                          "delta_sq_last": float(dsq[-1]), "delta_sq_max": float(dsq.max())}
    axes[0].set_title("Lagrange multiplier alpha")
    axes[1].set_title("E||Delta||^2 per batch (dashed: delta)")
    axes[2].set_title("training episodes' success")
    for ax in axes:
        ax.set_xlabel("env step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return summary


def latent_norms(head_onnx: str, data_npz: str, decoder_onnx: str = "models/pick_place/decoder.onnx",
                 n: int = 5000) -> None:
    from lps_steering.core.policy import SteeredPolicy, load_model

    obs = np.load(data_npz)["observations"]
    policy = SteeredPolicy(load_model(decoder_onnx, "decoder"), load_model(head_onnx, "head"), seed=0)
    outs = [policy.infer(obs[i].astype(np.float32)) for i in np.random.default_rng(0).integers(0, len(obs), n)]
    norms = np.array([o.latent_norm for o in outs])
    p1, p50, p99 = np.percentile(norms, [1, 50, 99])
    print(f"{head_onnx}: ||w|| p1 {p1:.2f}, p50 {p50:.2f}, p99 {p99:.2f}, max {norms.max():.2f} "
          f"(the decoder's sphere: {np.sqrt(len(outs[0].latent)):.2f}); mean ||Delta||^2 "
          f"{np.nanmean([o.delta_sq_norm for o in outs]):.2f} over {n} states of {data_npz}")


def plot_cells(cells: list[dict], out: Path) -> None:
    profiles = sorted({c["profile"] for c in cells}, key=lambda p: (p != "nominal", p))
    methods = list(dict.fromkeys(c["method"] for c in cells))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(methods) * len(profiles), 4))
    width = 0.8 / len(profiles)
    for j, prof in enumerate(profiles):
        xs, ys, err = [], [], [[], []]
        for i, m in enumerate(methods):
            c = next((c for c in cells if c["method"] == m and c["profile"] == prof), None)
            if c is None:
                continue
            p = c["successes"] / c["episodes"]
            xs.append(i + (j - (len(profiles) - 1) / 2) * width)
            ys.append(100 * p)
            err[0].append(100 * (p - c["wilson_95"][0]))
            err[1].append(100 * (c["wilson_95"][1] - p))
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=prof)
    ax.set_xticks(range(len(methods)), methods, rotation=15, fontsize=8)
    ax.set_ylabel("success % (95% Wilson)")
    ax.set_ylim(0, 100)
    ax.legend(title="profile", fontsize=8)
    ax.set_title("pick_place, 200 episodes per cell, seeds 100000-100199")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def table(cells: list[dict]) -> str:
    lines = ["| method | profile | success | 95% Wilson | vs base (paired 95%) | McNemar p |",
             "|---|---|---|---|---|---|"]
    for c in cells:
        pb = c.get("paired_with_base")
        diff = f"{100 * pb['difference']:+.1f} pt ({100 * pb['ci_low']:+.1f}, {100 * pb['ci_high']:+.1f})" if pb else ""
        p = f"{pb['mcnemar_mid_p']:.2g}" if pb else ""
        lo, hi = c["wilson_95"]
        lines.append(f"| {c['method']} | {c['profile']} | {c['successes']}/{c['episodes']} | "
                     f"{100 * lo:.1f}-{100 * hi:.1f}% | {diff} | {p} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", action="append", default=[],
                    help="METHOD=PROFILE=EVAL.json#HEAD[=HEAD.onnx]: add or replace a cell")
    ap.add_argument("--trust-region", action="append", default=[],
                    help="LABEL=DELTA=RUN.csv: an LP-DS run's alpha and E||Delta||^2 (plotted with all given)")
    ap.add_argument("--latent-norms", nargs=2, metavar=("HEAD.onnx", "DATA.npz"))
    ap.add_argument("--paired", nargs=2, metavar=("A", "B"), help="EVAL.json#HEAD twice: A against B seed by seed")
    a = ap.parse_args()
    if a.paired:
        (ev_a, ra, _), (ev_b, rb, _) = (_evaluation(x) for x in a.paired)
        if (ev_a["profile"], ev_a["seed"], ra["episodes"]) != (ev_b["profile"], ev_b["seed"], rb["episodes"]):
            raise SystemExit("--paired needs two evaluations of the same profile, seeds and episodes")
        c = paired_with_base(_Result(rb), _Result(ra))
        print(f"{a.paired[0]} vs {a.paired[1]} ({ev_a['profile']}, {ra['episodes']} seeds from {ev_a['seed']}): "
              f"both/only A/only B/neither {c['both']}/{c['only_head']}/{c['only_base']}/{c['neither']}, "
              f"{100 * c['difference']:+.1f} pt (95% {100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}), "
              f"McNemar mid-p {c['mcnemar_mid_p']:.3g}")
        return
    if a.latent_norms:
        latent_norms(*a.latent_norms)
        return
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"cells": [], "trust_region": {}}
    for spec in a.cell:
        method, profile, ev, *onnx = spec.split("=")
        cell = cell_from_evaluation(method, profile, ev, onnx[0] if onnx else "")
        data["cells"] = [c for c in data["cells"] if (c["method"], c["profile"]) != (method, profile)] + [cell]
    if a.trust_region:
        runs = [(label, float(delta), path) for label, delta, path in (s.split("=") for s in a.trust_region)]
        data["trust_region"] = plot_trust_region(runs, IMG / "lpds_trust_region.png")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    save_json(RESULTS, data)
    if data["cells"]:
        plot_cells(data["cells"], IMG / "method_comparison.png")
        print(table(data["cells"]))
    for label, s in data["trust_region"].items():
        print(f"{label}: alpha max {s['alpha_max']:.4f} (positive at {s['steps_alpha_positive']} of "
              f"{s['logged_steps']} logged steps), E||Delta||^2 last {s['delta_sq_last']:.3f}")


if __name__ == "__main__":
    main()
