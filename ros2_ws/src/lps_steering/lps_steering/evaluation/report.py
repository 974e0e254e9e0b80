"""Evaluation report: results.json, report.md, PNG plots and a rich table. No ROS imports."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .stats import (
    EpisodeRecord,
    PairedComparison,
    PerceptionLosses,
    RunSummary,
    episode_from_dict,
    json_safe,
    read_results,
)

os.environ.setdefault("MPLBACKEND", "Agg")  # no display: plots go to files only


def _fmt(x: float, spec: str = ".3g") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def episode_dict(e: EpisodeRecord, tcp_stride: int = 10) -> dict[str, Any]:
    """An episode as results.json keeps it: the TCP path at one point per `tcp_stride` control steps
    (a path thinned before, an earlier part's, is not thinned again)."""
    d = asdict(e)
    step = max(1, tcp_stride // max(1, e.tcp_stride))
    d["tcp"] = np.asarray(e.tcp)[::step].round(4).tolist()
    d["tcp_stride"] = e.tcp_stride * step
    # Per-frame and per-chunk lists at what they can resolve (0.1 mm, 1 µs): at full float precision
    # they were most of a perception record's size.
    for name, decimals in (("perception_error_mm", 1), ("frame_age_ms", 3), ("inference_ms", 3)):
        d[name] = [round(x, decimals) if math.isfinite(x) else x for x in d[name]]
    return d


def write_json(path: Path, config: dict[str, Any], summaries: Sequence[RunSummary],
               episodes: Sequence[EpisodeRecord], comparisons: Sequence[PairedComparison] = (),
               twins: Sequence[PairedComparison] = (), losses: Sequence[PerceptionLosses] = ()) -> None:
    data = {"config": config, "summaries": [asdict(s) for s in summaries],
            "comparisons": [dict(asdict(c), separated=c.separated) for c in comparisons],
            "ground_truth_twins": [dict(asdict(c), separated=c.separated) for c in twins],
            "perception_losses": [asdict(x) for x in losses],
            "episodes": [episode_dict(e) for e in episodes]}
    path.write_text(json.dumps(json_safe(data), indent=1))


def load_twin(path: str | Path, task: str) -> list[EpisodeRecord]:
    """The episodes of a ground-truth twin's results.json, checked to be one: the same task, the
    sim's own object pose, one episode per (head, profile, seed)."""
    data = read_results(path)
    config = data.get("config", {})
    if config.get("interim"):
        raise ValueError(f"{path} is an interim report ({config['interim']}): finish that evaluation first")
    if config.get("task") != task or config.get("perception"):
        raise ValueError(f"{path} is not a ground-truth twin of this evaluation: task {config.get('task')!r} "
                         f"(this one: {task!r}), perception {bool(config.get('perception'))} (a twin has none)")
    episodes = load_episodes(path)
    keys = [(e.head, e.profile, e.seed) for e in episodes]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: a (head, profile, seed) appears more than once")
    return episodes


def load_episodes(path: str | Path) -> list[EpisodeRecord]:
    """The episodes of a results.json (its TCP paths thinned, as written)."""
    return [episode_from_dict(e) for e in read_results(path)["episodes"]]


def plot_success(path: Path, summaries: Sequence[RunSummary]) -> None:
    import matplotlib.pyplot as plt

    heads = list(dict.fromkeys(s.head for s in summaries))
    profiles = list(dict.fromkeys(s.profile for s in summaries))
    by = {(s.head, s.profile): s for s in summaries}
    width = 0.8 / len(heads)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(profiles) * len(heads) ** 0.5 + 2), 3.6))
    x = np.arange(len(profiles))
    for i, head in enumerate(heads):
        rows = [by.get((head, p)) for p in profiles]
        rate = np.array([r.rate if r else np.nan for r in rows])
        lo = np.array([r.rate - r.wilson_low if r else 0.0 for r in rows])
        hi = np.array([r.wilson_high - r.rate if r else 0.0 for r in rows])
        ax.bar(x + (i - (len(heads) - 1) / 2) * width, rate, width, yerr=[lo, hi], capsize=3, label=head)
    ax.set_xticks(x, profiles)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95% Wilson interval)")
    n = sorted({s.episodes for s in summaries})
    ax.set_title(f"success per head and profile ({'/'.join(map(str, n))} episodes per run)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_differences(path: Path, comparisons: Sequence[PairedComparison]) -> None:
    """Each head minus the reference, per profile, with the paired 95% interval."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.45 * max(len(comparisons), 1)))
    y = np.arange(len(comparisons))[::-1]
    for yi, c in zip(y, comparisons, strict=True):
        colour = "tab:gray" if not c.separated else "tab:green" if c.difference > 0 else "tab:red"
        ax.errorbar(c.difference * 100, yi, xerr=[[(c.difference - c.low) * 100], [(c.high - c.difference) * 100]],
                    fmt="o", color=colour, capsize=3)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{c.head} / {c.profile} ({c.pairs} pairs)" for c in comparisons])
    ax.set_xlim(-100, 100)
    ax.set_xlabel("success difference (percentage points, 95% paired interval)")
    reference = comparisons[0].reference if comparisons else "reference"
    ax.set_title(f"each head minus {reference} on the same seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latency(path: Path, episodes: Sequence[EpisodeRecord]) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    heads = list(dict.fromkeys(e.head for e in episodes))
    values = {h: [x for e in episodes if e.head == h for x in e.inference_ms] for h in heads}
    finite = [x for v in values.values() for x in v]
    if finite:
        bins = np.linspace(0.0, max(np.percentile(finite, 99.5) * 1.1, 1e-3), 40)
        for h in heads:
            if values[h]:
                ax.hist(np.clip(values[h], 0, bins[-1]), bins=bins, alpha=0.5,
                        label=f"{h} (p50 {np.median(values[h]):.2f} ms)")
        ax.legend(fontsize=8)
    ax.set_xlabel("inference latency per chunk, head + decoder (ms)")
    ax.set_ylabel("chunks")
    ax.set_title("policy node inference latency (telemetry)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_perception(path: Path, episodes: Sequence[EpisodeRecord]) -> None:
    """Distribution of the perception error per (head, profile), and the share of frames not seen."""
    import matplotlib.pyplot as plt

    runs = list(dict.fromkeys((e.head, e.profile) for e in episodes))
    errors = [[x for e in episodes if (e.head, e.profile) == r for x in e.perception_error_mm] or [math.nan]
              for r in runs]
    unseen = [sum(e.frames_unseen for e in episodes if (e.head, e.profile) == r)
              / max(1, sum(e.frames for e in episodes if (e.head, e.profile) == r)) for r in runs]
    labels = [f"{h}\n{p}" for h, p in runs]
    fig, (a, b) = plt.subplots(1, 2, figsize=(4 + 1.6 * len(runs), 3.6))
    a.boxplot(errors, whis=(5, 95), showfliers=False)
    a.set_xticks(range(1, len(runs) + 1), labels, fontsize=8)
    a.set_ylabel("perceived - true position (mm)")
    a.set_title("perception error (whiskers p5-p95)")
    b.bar(range(len(runs)), [100 * u for u in unseen])
    b.set_xticks(range(len(runs)), labels, fontsize=8)
    b.set_ylabel("% of frames")
    b.set_title("object not seen")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tcp(path: Path, episodes: Sequence[EpisodeRecord], per_run: int) -> None:
    import matplotlib.pyplot as plt

    fig, (top, side) = plt.subplots(1, 2, figsize=(9, 3.8))
    heads = list(dict.fromkeys(e.head for e in episodes))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, head in enumerate(heads):
        drawn: dict[str, int] = {}
        for e in episodes:
            if e.head != head or len(e.tcp) == 0 or drawn.get(e.profile, 0) >= per_run:
                continue
            drawn[e.profile] = drawn.get(e.profile, 0) + 1
            tcp = np.asarray(e.tcp)
            style = "-" if e.success else "--"
            label = head if sum(drawn.values()) == 1 else None
            c = colours[i % len(colours)]
            top.plot(tcp[:, 0], tcp[:, 1], style, color=c, lw=1, label=label)
            top.plot(tcp[-1, 0], tcp[-1, 1], "o" if e.success else "x", color=c, ms=4)
            side.plot(np.arange(len(tcp)) * (e.sim_time / max(len(tcp) - 1, 1)), tcp[:, 2], style,
                      color=c, lw=1)
    top.set_xlabel("x (m)")
    top.set_ylabel("y (m)")
    top.set_title("TCP, top view (solid: success)")
    top.set_aspect("equal", adjustable="datalim")
    side.set_xlabel("sim time (s)")
    side.set_ylabel("z (m)")
    side.set_title("TCP height")
    if heads:
        top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def comparison_lines(comparisons: Sequence[PairedComparison]) -> list[str]:
    if not comparisons:
        return []
    lines = [f"## Paired comparison with `{comparisons[0].reference}`", "",
             "The same seeds (scene and policy noise) for both heads; a seed counts once per head.", "",
             "| head | profile | pairs | both / only head / only ref. / neither | difference | 95% CI | "
             "McNemar p | phi | separated |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        lines.append(f"| {c.head} | {c.profile} | {c.pairs} | {c.both} / {c.only_head} / {c.only_reference} / "
                     f"{c.neither} | {c.difference * 100:+.1f} pt | [{c.low * 100:+.1f}, {c.high * 100:+.1f}] | "
                     f"{c.mcnemar_p:.3g} | {c.phi:.2f} | {'yes' if c.separated else 'no'} |")
    return lines + [""]


def perception_lines(summaries: Sequence[RunSummary], twins: Sequence[PairedComparison],
                     losses: Sequence[PerceptionLosses] = ()) -> list[str]:
    if not any(s.frames for s in summaries):
        return []
    lines = ["## Perception in the loop", "",
             "The object's position came from object_perception (colour segmentation + depth of the sim "
             "camera's images, the robot's node and parameters), not from the sim. Error: distance from the "
             "sim's true position at the frame's stamp, over the frames the object was seen in; blind: the "
             "longest sim time between two sightings; age: from the frame's stamp to perception's result; stale "
             "holds: cycles held because the object's position was too old or missing.", "",
             "| head | profile | frames | not seen | error p50 / p95 / max (mm) | longest blind (s) | "
             "age p50 / p95 (ms) | stale holds |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s.head} | {s.profile} | {s.frames} | {_fmt(s.unseen_fraction * 100, '.1f')}% | "
                     f"{_fmt(s.perception_error_mm_p50, '.1f')} / {_fmt(s.perception_error_mm_p95, '.1f')} / "
                     f"{_fmt(s.perception_error_mm_max, '.1f')} | {_fmt(s.longest_blind_s_max, '.2f')} | "
                     f"{_fmt(s.frame_age_ms_p50, '.0f')} / {_fmt(s.frame_age_ms_p95, '.0f')} | {s.stale_holds} |")
    if twins:
        lines += ["", "Each run beside its ground-truth twin (the same head, profile and seeds with the sim's "
                  "own object pose); difference = with perception minus with the truth.", "",
                  "| head | profile | pairs | truth / perception | only truth / only perception | difference | "
                  "95% CI | McNemar p | separated |", "|---|---|---|---|---|---|---|---|---|"]
        for c in twins:
            truth, perceived = (c.both + c.only_reference) / c.pairs, (c.both + c.only_head) / c.pairs
            lines.append(f"| {c.head} | {c.profile} | {c.pairs} | {truth:.2f} / {perceived:.2f} | "
                         f"{c.only_reference} / {c.only_head} | {c.difference * 100:+.1f} pt | "
                         f"[{c.low * 100:+.1f}, {c.high * 100:+.1f}] | {c.mcnemar_p:.3g} | "
                         f"{'yes' if c.separated else 'no'} |")
    if losses:
        lines += ["", "Where the losses come from: of the seeds only the truth solved, those whose perception "
                  "episode held on a stale or missing object position (not seen for longer than the policy's "
                  "input may be old: occlusion, dim light) and the rest (position error); and of all episodes "
                  "that held so, how many the truth solved.", "",
                  "| head | profile | lost | of which stale holds | gained | episodes with stale holds | "
                  "of which the truth solved | lost seeds with stale holds |", "|---|---|---|---|---|---|---|---|"]
        for x in losses:
            seeds = ", ".join(map(str, x.lost_stale_seeds)) or "-"
            lines.append(f"| {x.head} | {x.profile} | {x.lost} | {x.lost_stale} | {x.gained} | {x.stale} | "
                         f"{x.stale_truth_solved} | {seeds} |")
    return lines + [""]


def markdown(config: dict[str, Any], summaries: Sequence[RunSummary], images: dict[str, str],
             comparisons: Sequence[PairedComparison] = (), twins: Sequence[PairedComparison] = (),
             losses: Sequence[PerceptionLosses] = ()) -> str:
    longest = max((s.episodes for s in summaries), default=1)
    counts = sorted({s.episodes for s in summaries})
    lines = [
        "# Evaluation report",
        "",
        f"Task `{config.get('task')}`, {'/'.join(map(str, counts))} episodes per head and profile, episode i "
        f"on seed {config.get('seed')} + i (seeds {config.get('seed')}..{config.get('seed', 0) + longest - 1}; "
        "the same seeds for every head, so runs with fewer episodes share the first ones). Run through ROS: "
        "sim bridge in lock-step, policy node triggered by each observation, heads swapped through the "
        "`steering_head` parameter.",
        "",
        *([f"**Interim report**: {config['interim']} so far (`--report-only` on a journal still being "
           "written, or of a run that stopped); runs without an episode yet are left out.", ""]
          if config.get("interim") else []),
        "| head | profile | success | rate | 95% CI | steps | time to success (s) | mean sq. jerk (rad²/s⁶) "
        "| inference p50 / p99 (ms) | ‖Δ‖² mean / p95 | holds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.head} | {s.profile} | {s.successes}/{s.episodes} | {s.rate:.2f} | "
            f"[{s.wilson_low:.2f}, {s.wilson_high:.2f}] | {_fmt(s.mean_steps, '.0f')} | "
            f"{_fmt(s.mean_time_to_success, '.2f')} | {_fmt(s.mean_sq_jerk)} | "
            f"{_fmt(s.inference_ms_p50, '.2f')} / {_fmt(s.inference_ms_p99, '.2f')} | "
            f"{_fmt(s.delta_sq_norm_mean)} / {_fmt(s.delta_sq_norm_p95)} | {s.holds} |")
    lines += ["", *comparison_lines(comparisons), *perception_lines(summaries, twins, losses), "Heads:", ""]
    lines += [f"- `{label}`: `{path}`" for label, path in config.get("heads", {}).items()]
    lines += ["", "Definitions: the 95% interval is Wilson's score interval; jerk is the third finite "
              "difference of the commanded joint positions at the command period, squared norm over the "
              "7 joints, averaged over the episode; latency is the policy node's telemetry "
              "`inference_ms` of every inferred chunk; ‖Δ‖² is the lpds residual after the run-time "
              "guard; holds counts control cycles in which the safety filter held the arm. Paired comparison: "
              "the difference's interval is Newcombe's hybrid score interval for paired proportions (1998, "
              "method 10); McNemar's p is the mid-p of the binomial test on the discordant seeds; 'separated' "
              "means the interval excludes 0 and p < 0.05 (equal heads: at most ~5% of evaluations); phi is "
              "the correlation of the two heads' outcomes over the seeds.", ""]
    for title, name in images.items():
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    return "\n".join(lines)


def write_report(out_dir: Path, config: dict[str, Any], summaries: Sequence[RunSummary],
                 episodes: Sequence[EpisodeRecord], tcp_plots: int = 3,
                 comparisons: Sequence[PairedComparison] = (), twins: Sequence[PairedComparison] = (),
                 losses: Sequence[PerceptionLosses] = ()) -> Path:
    """Everything into `out_dir`; returns the path of report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", config, summaries, episodes, comparisons, twins, losses)
    plot_success(out_dir / "success.png", summaries)
    images = {"Success per head and profile": "success.png"}
    if comparisons:
        plot_differences(out_dir / "differences.png", comparisons)
        images["Difference with the reference head"] = "differences.png"
    plot_latency(out_dir / "latency.png", episodes)
    plot_tcp(out_dir / "tcp.png", episodes, tcp_plots)
    images |= {"Inference latency": "latency.png", "TCP trajectories": "tcp.png"}
    if any(e.frames for e in episodes):
        plot_perception(out_dir / "perception.png", episodes)
        images["Perception error"] = "perception.png"
    path = out_dir / "report.md"
    path.write_text(markdown(config, summaries, images, comparisons, twins, losses))
    return path


def rich_table(summaries: Sequence[RunSummary]) -> Any:
    from rich.table import Table

    t = Table(title="evaluation")
    for col in ("head", "profile", "success", "95% CI", "steps", "t success (s)", "jerk", "inf p50/p99 ms",
                "‖Δ‖² mean", "holds"):
        t.add_column(col, justify="left" if col in ("head", "profile") else "right")
    for s in summaries:
        t.add_row(s.head, s.profile, f"{s.successes}/{s.episodes} ({s.rate:.0%})",
                  f"[{s.wilson_low:.2f}, {s.wilson_high:.2f}]", _fmt(s.mean_steps, ".0f"),
                  _fmt(s.mean_time_to_success, ".2f"), _fmt(s.mean_sq_jerk),
                  f"{_fmt(s.inference_ms_p50, '.2f')}/{_fmt(s.inference_ms_p99, '.2f')}",
                  _fmt(s.delta_sq_norm_mean), str(s.holds))
    return t


def comparison_table(comparisons: Sequence[PairedComparison]) -> Any:
    from rich.table import Table

    reference = comparisons[0].reference if comparisons else "reference"
    t = Table(title=f"paired with {reference} (same seeds)")
    for col in ("head", "profile", "pairs", "only head / only ref.", "difference", "95% CI", "McNemar p",
                "separated"):
        t.add_column(col, justify="left" if col in ("head", "profile") else "right")
    for c in comparisons:
        t.add_row(c.head, c.profile, str(c.pairs), f"{c.only_head} / {c.only_reference}",
                  f"{c.difference * 100:+.0f} pt", f"[{c.low * 100:+.0f}, {c.high * 100:+.0f}]",
                  f"{c.mcnemar_p:.2g}", "yes" if c.separated else "no")
    return t
