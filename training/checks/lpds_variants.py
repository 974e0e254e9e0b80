"""Every LP-DS variant evaluated on pick_place, against its frozen base: one table, one plot.

The LP-DS runs of docs/training.md were evaluated one by one (`lps-train evaluate --out X.json`).
This script gathers those outputs into training/checks/results/lpds_variants/results.json, with
each head's training command from its manifest, and plots success with 95% Wilson intervals
beside the base's (docs/img/lpds_variants.png):

    scripts/with-env python training/checks/lpds_variants.py \
        --set-base clean runs/pick_place/eval_nominal.json#none       # record a frozen base
    scripts/with-env python training/checks/lpds_variants.py \
        --base clean --add "C=runs/pick_place/eval_C.json"          # record a variant
    scripts/with-env python training/checks/lpds_variants.py            # replot the recorded table

Run folders are not committed, so the table is the record; `--add` appends a row, or replaces
the row of the same label in place.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from lps_steering.evaluation.stats import wilson_interval  # noqa: E402
from lps_train.runlog import save_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "lpds_variants" / "results.json"
PNG = Path(__file__).resolve().parents[2] / "docs" / "img" / "lpds_variants.png"


def row_from_evaluation(label: str, base: str, spec: str) -> dict:
    """One row from `EVAL.json` (an `lps-train evaluate --out` file of one head) or `EVAL.json#HEAD`."""
    path, _, head = spec.partition("#")
    ev = json.loads(Path(path).read_text())
    results = [r for r in ev.get("results", []) if not head or r["head"] == head]
    if len(results) != 1:
        raise SystemExit(f"{spec}: expected one head's results, found {len(results)} "
                         f"(name one with EVAL.json#HEAD)")
    r = results[0]
    train_command = ""
    manifest = Path(r["head"]).with_suffix(".json")
    if r["head"] != "none" and manifest.exists():
        train_command = json.loads(manifest.read_text())["provenance"]["metrics"].get("train_command", "")
    return {"label": label, "base": base, "head": r["head"], "successes": int(r["successes"]),
            "episodes": int(r["episodes"]), "profile": ev.get("profile", ""), "seed": ev.get("seed"),
            "evaluate_command": ev.get("command", ""), "train_command": train_command}


def plot(table: dict, out: Path) -> None:
    rows = table["variants"]
    bases = table["bases"]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rows) + 2.4))
    colours = {name: f"C{i}" for i, name in enumerate(bases)}
    # Each row carries its own base and target: with several bases, shared vertical lines would
    # leave the reader matching colours.
    for i, r in enumerate(rows):
        p = r["successes"] / r["episodes"]
        lo, hi = wilson_interval(r["successes"], r["episodes"])
        b = bases[r["base"]]
        pb = b["successes"] / b["episodes"]
        ax.plot([100 * pb, 100 * pb + 30], [i, i], color="0.85", lw=6, solid_capstyle="butt", zorder=0)
        ax.plot(100 * pb, i, "|", ms=14, mew=2, color="0.35", zorder=1)
        ax.plot(100 * pb + 30, i, "|", ms=14, mew=2, color="tab:green", zorder=1)
        ax.errorbar(100 * p, i, xerr=[[100 * (p - lo)], [100 * (hi - p)]], fmt="o", capsize=3,
                    color=colours[r["base"]], zorder=2)
    labels = [f"{r['label']}  [base {r['base']}: {100 * bases[r['base']]['successes'] / bases[r['base']]['episodes']:.0f}%]"
              for r in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("pick_place success, nominal, 100 episodes (95% Wilson)")
    ax.set_title("LP-DS variants against their frozen base")
    handles = [plt.Line2D([], [], marker="|", ls="", ms=12, mew=2, color="0.35", label="the row's frozen base"),
               plt.Line2D([], [], marker="|", ls="", ms=12, mew=2, color="tab:green", label="base + 30 points (target)"),
               plt.Line2D([], [], marker="o", ls="", color="0.2", label="LP-DS head, 95% Wilson")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--add", action="append", default=[], metavar="LABEL=EVAL.json[#HEAD]",
                   help="record a variant from an `lps-train evaluate --out` file (#HEAD picks one of several)")
    p.add_argument("--base", help="with --add: the name of the frozen base the variants ran on")
    p.add_argument("--set-base", nargs=2, metavar=("NAME", "EVAL.json[#none]"),
                   help="record a frozen base from its `evaluate --head none --out` file")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--png", type=Path, default=PNG)
    a = p.parse_args()
    table = json.loads(a.results.read_text()) if a.results.exists() else {"bases": {}, "variants": []}
    if a.set_base:
        name, path = a.set_base
        table["bases"][name] = row_from_evaluation(name, name, path)
    if a.add and not a.base:
        raise SystemExit("--add needs --base (the frozen base those variants ran on)")
    for spec in a.add:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--add must be LABEL=EVAL.json[#HEAD], got {spec!r}")
        if a.base not in table["bases"]:
            raise SystemExit(f"unknown base {a.base!r}: record it first with --set-base {a.base} EVAL.json")
        row = row_from_evaluation(label, a.base, path)
        labels = [r["label"] for r in table["variants"]]
        if label in labels:  # a re-evaluated variant keeps its place in the plot
            table["variants"][labels.index(label)] = row
        else:
            table["variants"].append(row)
    if a.set_base or a.add:
        save_json(a.results, table)
        print(f"-> {a.results}")
    if not table["variants"]:
        print(f"{a.results}: no variants recorded yet (use --add); nothing to plot")
        return
    plot(table, a.png)
    for r in table["variants"]:
        lo, hi = wilson_interval(r["successes"], r["episodes"])
        b = table["bases"][r["base"]]
        print(f"{r['label']:<40} {r['successes']:>3}/{r['episodes']}  [{100 * lo:.1f}, {100 * hi:.1f}]  "
              f"vs base {100 * (r['successes'] / r['episodes'] - b['successes'] / b['episodes']):+.0f} pt")
    print(f"-> {a.png}")


if __name__ == "__main__":
    main()
