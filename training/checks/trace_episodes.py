"""Where in the task a policy's pick_place episodes end: the TCP, cube and place zone at every
replan of seeded episodes through the runtime's controller, and the phase each episode ended in. The traces behind docs/training.md ("LPS"): a deterministic latent actor that
stops moving shows up as a flat line long before the time-out.

Phases of an episode that did not succeed (checked in this order):
    held          the safety filter held the arm for at least one period
    never_lifted  the cube never rose 2 cm off the table
    dropped       it was lifted, and is back on the table at the end (not in the zone, or it
                  would be a success)
    not_placed    it is still off the table at the end (held, or in the air)

Where each episode starts closing the gripper (the first replan at which its measured width is
under `CLOSING_WIDTH`, the open hand being 8 cm): the TCP's horizontal distance to the cube's centre
and its height above it. A policy that closes beside the cube shows up there before it shows up as
a failure.

    scripts/with-env python training/checks/trace_episodes.py --head runs/pick_place/lps_s1_round1.onnx \\
        --episodes 20 --out runs/checks/trace_lps.json        # + trace_lps.png
    scripts/with-env python training/checks/trace_episodes.py --summarise runs/checks/trace_*.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from lps_train.pick_place.env import LIFT_HEIGHT, ControllerEpisode
from lps_train.pick_place.evaluation import controller_episode
from tqdm import tqdm

PHASES = ("success", "held", "never_lifted", "dropped", "not_placed")
CLOSING_WIDTH = 0.07  # m: under the open hand's 8 cm by more than the width's settling noise


def trace(decoder: str, head: str, episodes: int, seed: int) -> list[dict]:
    """One record per episode: success, holds, and at every replan t, TCP, cube and zone positions
    and the gripper's measured width."""
    ep = controller_episode(decoder, head)
    out = []
    for k in tqdm(range(episodes), desc="trace"):
        ep.controller.reseed(seed + k)
        ep.reset(seed + k, "nominal")
        rows = []
        while not ep.done:
            if ep.needs_chunk:
                rows.append(_row(ep))
            ep.period()
        rows.append(_row(ep))
        r = np.round(np.asarray(rows), 4)  # 0.1 mm: the traces are kept in the repository
        out.append({"seed": seed + k, "success": bool(ep.result.success), "hold_periods": int(ep.result.holds),
                    "t": r[:, 0].tolist(), "tcp": r[:, 1:4].tolist(), "cube": r[:, 4:7].tolist(),
                    "zone_xy": r[:, 7:9].tolist(), "gripper": r[:, 9].tolist(), "cube_half": float(ep.task.cube_half)})
    return out


def _row(ep: ControllerEpisode) -> list[float]:
    task = ep.task
    return [ep.now, *task.tcp_position(), *task.object_position(), *task.target_position()[:2],
            float(np.asarray(ep.obs["gripper_width"]).reshape(-1)[0])]


def phase(episode: dict) -> str:
    if episode["success"]:
        return "success"
    if episode["hold_periods"] > 0:
        return "held"
    cube = np.asarray(episode["cube"])
    lift = cube[:, 2] - episode["cube_half"]
    if lift.max() < LIFT_HEIGHT:
        return "never_lifted"
    return "dropped" if lift[-1] < LIFT_HEIGHT else "not_placed"


def close_point(episode: dict) -> tuple[float, float] | None:
    """(horizontal TCP-to-cube distance, TCP height above the cube's centre) in m where the gripper
    first measures under `CLOSING_WIDTH`; None if it never closes."""
    closing = np.flatnonzero(np.asarray(episode["gripper"]) < CLOSING_WIDTH)
    if closing.size == 0:
        return None
    i = closing[0]
    tcp, cube = np.asarray(episode["tcp"][i]), np.asarray(episode["cube"][i])
    return float(np.linalg.norm(tcp[:2] - cube[:2])), float(tcp[2] - cube[2])


def close_summary(episodes: list[dict]) -> dict:
    """How many episodes close the gripper, and the quartiles (cm) of where they start to."""
    points = np.array([p for p in map(close_point, episodes) if p is not None]).reshape(-1, 2)
    out = {"episodes": len(episodes), "closed": len(points)}
    if len(points):
        for k, name in enumerate(("horizontal_cm", "height_cm")):
            out[name] = [round(float(v) * 100, 2) for v in np.percentile(points[:, k], [25, 50, 75])]
    return out


def summarise(paths: list[Path]) -> None:
    print("| trace | phases | closes | horizontal TCP-cube at the close, cm (median, IQR) | height above the centre, cm |")
    print("|---|---|---|---|---|")
    for path in paths:
        res = json.loads(path.read_text())
        phases = ", ".join(f"{k} {v}" for k, v in res["phases"].items() if v)
        if not all("gripper" in e for e in res["episodes"]):
            print(f"| {path.name} | {phases} | no gripper widths in this trace | | |")
            continue
        c = close_summary(res["episodes"])
        h, z = c.get("horizontal_cm"), c.get("height_cm")
        cells = (f"{h[1]:.1f} ({h[0]:.1f}-{h[2]:.1f})", f"{z[1]:.1f} ({z[0]:.1f}-{z[2]:.1f})") if h else ("", "")
        print(f"| {path.name} | {phases} | {c['closed']}/{c['episodes']} | {cells[0]} | {cells[1]} |")


def plot(episodes: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharex=True)
    for e in episodes:
        t, tcp, cube = np.asarray(e["t"]), np.asarray(e["tcp"]), np.asarray(e["cube"])
        style = dict(lw=0.9, alpha=0.8, ls="-" if e["success"] else "--", color="tab:green" if e["success"] else
                     "tab:red")
        axes[0].plot(t, 100 * np.linalg.norm(tcp - cube, axis=1), **style)
        axes[1].plot(t, 100 * (cube[:, 2] - e["cube_half"]), **style)
        axes[2].plot(t, 100 * np.linalg.norm(cube[:, :2] - np.asarray(e["zone_xy"]), axis=1), **style)
    for ax, label in zip(axes, ("TCP to cube (cm)", "cube lift (cm)", "cube to zone, horizontal (cm)"), strict=True):
        ax.set_ylabel(label)
        ax.set_xlabel("episode time (s)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: solid = success, dashed = failure")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decoder", default="models/pick_place/decoder.onnx")
    p.add_argument("--head", default="", help="a steering head (.onnx) on the decoder (default: the frozen base)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=100_000)
    p.add_argument("--out", type=Path, help="results .json; the plot goes beside it as .png")
    p.add_argument("--summarise", type=Path, nargs="+", help="print the phases and close points of these traces, "
                   "as a Markdown table, instead of tracing")
    a = p.parse_args()
    if a.summarise:
        summarise(a.summarise)
        return
    if a.out is None:
        raise SystemExit("--out is required (or --summarise)")
    if a.episodes < 1:
        raise SystemExit(f"--episodes must be >= 1, got {a.episodes}")
    episodes = trace(a.decoder, a.head, a.episodes, a.seed)
    phases = Counter(phase(e) for e in episodes)
    counts = {name: phases.get(name, 0) for name in PHASES}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    # One line per episode: thousands of positions, one per line, would make the file ten times longer.
    lines = ",\n".join(json.dumps(e | {"phase": phase(e)}, separators=(",", ":")) for e in episodes)
    head = json.dumps({"decoder": a.decoder, "head": a.head, "seed": a.seed, "phases": counts,
                       "close": close_summary(episodes)})
    a.out.write_text(head[:-1] + ', "episodes": [\n' + lines + "\n]}\n")
    plot(episodes, a.out.with_suffix(".png"), Path(a.head).stem if a.head else "frozen base")
    print(", ".join(f"{k} {v}" for k, v in counts.items()), f"of {a.episodes} -> {a.out} (+ .png)")


if __name__ == "__main__":
    main()
