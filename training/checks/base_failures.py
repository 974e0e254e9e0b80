"""Why the frozen pick_place base fails, and how much room a latent leaves: the numbers behind
docs/training.md ("Why the base fails, and how much a latent can change").

Four measurements on an exported decoder, through the runtime's own controller (seeds 100000+,
the evaluation seeds):

1. failure anatomy: for each of `--episodes` episodes, success, how high the cube got, how
   many command periods the safety filter held, and where the TCP was relative to the cube's
   centre when the fingers started to close (height above it and horizontal distance);
2. scene or noise: `--scenes` scenes x `--noises` base-noise seeds; a scene that fails for every
   noise draw cannot be saved by picking among the base's own behaviours;
3. latent sensitivity: the spread of decoded chunks over 64 latents at 20 demonstration states,
   per joint and step, as a share of the dataset's standard deviation;
4. latent refresh: the same `--episodes` episodes with a fresh latent every chunk and with one
   latent kept for the whole episode (what a deterministic latent actor does to the base);
5. latent lever: at the replans where the open hand is in `--lever-window` (`grasp`: 2-8 cm above
   the cube and within 4 cm of it horizontally; `approach`: 8-16 cm above, within 8 cm), how far
   64 latents spread the TCP that the chunk's last executed target puts the hand at, in
   millimetres; a steering head moves the grasp by a fraction of this per chunk, to set against
   the centimetres by which failing grasps miss.

6. carry release: at `--states` carry states of successful demonstrations (cube 3 cm above its
   start), how often a random latent's chunk opens the fingers by more than 1 cm within its
   executed steps, against how often the demonstration's own chunk does there; what a latent
   actor searching the sphere can find and what the data shows its critics about it.

`--head` runs the anatomy with a steering head on the decoder (where a head's grasps close).

    scripts/with-env python training/checks/base_failures.py   # ~2.5 min on one core
    scripts/with-env python training/checks/base_failures.py --decoder OTHER.onnx --only refresh \
        --out runs/checks/refresh_other.json                     # one measurement, another base

Results go to training/checks/results/base_failures/results.json (the shipped base) or `--out`;
measurements not rerun keep their earlier results in that file when it is for the same decoder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from lps_steering.core.controller import SteeringController
from lps_steering.core.kinematics import tcp_position
from lps_steering.core.policy import SteeredPolicy, load_model
from lps_train.pick_place.dataset import load_dataset
from lps_train.pick_place.env import ControllerEpisode
from lps_train.pick_place.evaluation import controller_episode
from lps_train.pick_place.layout import entry_slice, layout_of
from lps_train.runlog import save_json
from tqdm import tqdm

RESULTS = Path(__file__).resolve().parent / "results" / "base_failures"
SEED = 100_000
CLOSING_WIDTH = 0.07  # m: the fingers open at 0.08; below this the gripper is closing


def _base_episodes(decoder: str, head: str = "") -> tuple[SteeringController, ControllerEpisode]:
    """The frozen base (or `head` on it) through the runtime's controller, on a fresh pick_place task."""
    ep = controller_episode(decoder, head)
    return ep.controller, ep


def failure_anatomy(decoder: str, episodes: int, head: str = "") -> dict:
    controller, ep = _base_episodes(decoder, head)
    task = ep.task
    rows = []
    for k in tqdm(range(episodes), desc="failure anatomy"):
        controller.reseed(SEED + k)
        ep.reset(SEED + k, "nominal")
        lift, close_offset = 0.0, None
        while not ep.done:
            ep.period()
            lift = max(lift, float(task.object_position()[2]) - task.cube_half)
            if close_offset is None and float(np.ravel(ep.obs["gripper_width"])[0]) < CLOSING_WIDTH:
                # Where the fingers started to close, relative to the cube's centre.
                close_offset = (task.tcp_position() - task.object_position()).tolist()
        rows.append({"seed": SEED + k, "success": ep.result.success, "max_lift_m": lift,
                     "hold_periods": ep.result.holds, "last_hold_reason": ep.result.hold_reason,
                     "close_offset_m": close_offset})
    failures = [r for r in rows if not r["success"]]
    groups = {"successes": [r for r in rows if r["success"]],
              "failures_without_holds": [r for r in failures if not r["hold_periods"]],
              "failures_with_holds": [r for r in failures if r["hold_periods"]]}
    return {"episodes": episodes, "successes": episodes - len(failures),
            "failures_never_lifted_without_holds": sum(r["max_lift_m"] < 0.02 and r["hold_periods"] == 0
                                                        for r in failures),
            "failures_with_holds": sum(r["hold_periods"] > 0 for r in failures),
            "hold_periods_of_failures": [r["hold_periods"] for r in failures if r["hold_periods"]],
            "close_height_above_cube_centre_m": {
                g: _median_offset(groups[g], "height") for g in ("successes", "failures_without_holds")},
            # Horizontal distance between TCP and cube centre at the close: the cube is 4.5 cm wide,
            # so a few centimetres put the fingers on its edge whatever the height.
            "close_lateral_offset_m": {g: _median_offset(members, "lateral") for g, members in groups.items()},
            "failures_held_by_the_workspace_box": sum("outside workspace" in r["last_hold_reason"]
                                                      for r in failures if r["hold_periods"]),
            "episodes_detail": rows}


def _median_offset(rows: list[dict], which: str) -> float:
    """Median close offset of `rows`: 'height' above the cube's centre or 'lateral' (horizontal)."""
    offsets = [np.asarray(r["close_offset_m"]) for r in rows if r["close_offset_m"] is not None]
    values = [o[2] if which == "height" else float(np.hypot(o[0], o[1])) for o in offsets]
    return float(np.median(values)) if values else float("nan")


def scene_vs_noise(decoder: str, scenes: int, noises: int) -> dict:
    controller, ep = _base_episodes(decoder)
    m = np.zeros((scenes, noises), dtype=int)
    for k in tqdm(range(scenes), desc="scene x noise"):
        for j in range(noises):
            controller.reseed(5000 + 17 * j + k)
            ep.reset(SEED + k, "nominal")
            while not ep.done:
                ep.period()
            m[k, j] = ep.result.success
    per_scene = m.sum(1)
    return {"matrix": m.tolist(), "overall": float(m.mean()),
            "scenes_always": int((per_scene == noises).sum()), "scenes_never": int((per_scene == 0).sum()),
            "scenes_mixed": int(((per_scene > 0) & (per_scene < noises)).sum()),
            "best_noise_per_scene_bound": float((per_scene > 0).mean())}


def latent_refresh(decoder: str, episodes: int) -> dict:
    """The same episodes with a fresh latent every chunk (the base as shipped) and with one latent
    for the whole episode (the policy reseeded before every chunk): a deterministic latent choice,
    as an LPS or DSRL actor makes, without any training."""
    controller, ep = _base_episodes(decoder)
    result: dict[str, dict[str, list]] = {}
    for mode in ("fresh", "fixed"):
        rows = result.setdefault(mode, {"success": [], "hold_periods": []})
        for k in tqdm(range(episodes), desc=f"latent {mode}"):
            controller.reseed(SEED + k)
            ep.reset(SEED + k, "nominal")
            while not ep.done:
                if mode == "fixed" and ep.needs_chunk:
                    controller.reseed(SEED + k)  # the same draw again for this chunk
                ep.period()
            rows["success"].append(bool(ep.result.success))
            rows["hold_periods"].append(ep.result.holds)
    return {mode: {"successes": int(sum(r["success"])), "episodes": episodes,
                   "hold_periods_total": int(sum(r["hold_periods"])), **r} for mode, r in result.items()}


def latent_sensitivity(decoder: str, demos: str, states: int = 20, latents: int = 64) -> dict:
    dec = load_model(decoder, "decoder", warmup_runs=0)
    data = load_dataset(demos)
    m = dec.manifest
    chunk, dim = m.chunk_length, m.action_dim
    # Per action dimension, or per chunk step and dimension: either way one std per (step, dim).
    act_std = np.broadcast_to(np.asarray(m.action.std, dtype=np.float64).reshape(-1, dim), (chunk, dim))
    rng = np.random.default_rng(0)
    ratios = []
    for i in rng.choice(len(data["observations"]), states, replace=False):
        policy = SteeredPolicy(dec, seed=int(i))
        obs = data["observations"][i].astype(np.float64)
        actions = np.stack([policy.infer(obs).actions for _ in range(latents)])
        ratios.append(actions.std(0) / act_std)
    r = np.mean(ratios, 0)  # [chunk, dim]
    return {"spread_over_data_std": r.tolist(), "arm_min": float(r[:, :dim - 1].min()),
            "arm_max": float(r[:, :dim - 1].max()), "gripper_mean": float(r[:, dim - 1].mean())}


def carry_release(decoder: str, demos: str, states: int = 40, latents: int = 256, lift: float = 0.03,
                  opening: float = 0.01) -> dict:
    dec = load_model(decoder, "decoder", warmup_runs=0)
    data = load_dataset(demos)
    obs, ids = data["observations"], data["episode_ids"]
    execute = int(data["layout"]["execute_steps"])
    layout = layout_of(data["layout"]["observation"])
    width = entry_slice("gripper", layout).start
    cube_z = entry_slice("object", layout).start + 2
    first = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
    start_z = obs[first, cube_z][np.searchsorted(first, np.arange(len(obs)), side="right") - 1]
    carry = np.flatnonzero((obs[:, cube_z] - start_z > lift) & data["episode_success"][ids])
    if not len(carry):
        raise SystemExit(f"{demos}: no row of a successful episode has the cube {100 * lift:.0f} cm above its start")
    rng = np.random.default_rng(0)
    rates, demo_opens = [], 0
    for i in rng.choice(carry, min(states, len(carry)), replace=False):
        policy = SteeredPolicy(dec, seed=int(i))
        o = obs[i].astype(np.float64)
        grip = np.stack([policy.infer(o).actions[:execute, -1] for _ in range(latents)])
        rates.append(float(((grip - o[width]) > opening).any(1).mean()))
        demo_opens += int(((data["actions"][i, :execute, -1] - o[width]) > opening).any())
    r = np.asarray(rates)
    return {"demos": demos, "states": len(r), "latents": latents, "carry_rows": int(len(carry)), "opening_m": opening,
            "latent_release_rate_mean": float(r.mean()), "latent_release_rate_max": float(r.max()),
            "states_with_a_releasing_latent": int((r > 0).sum()), "demo_chunks_releasing": demo_opens}


# Where the hand may be for a replan to count, relative to the cube: (min height, max height,
# max horizontal distance), m.
LEVER_WINDOWS = {"grasp": (0.02, 0.08, 0.04), "approach": (0.08, 0.16, 0.08)}


def latent_lever(decoder: str, episodes: int, window: str = "grasp", latents: int = 64,
                 per_episode: int = 3) -> dict:
    low, high, radius = LEVER_WINDOWS[window]
    controller, ep = _base_episodes(decoder)
    task, policy = ep.task, controller.policy
    executed = controller.config.execute_steps
    principal, per_axis = [], []
    for k in tqdm(range(episodes), desc="latent lever"):
        policy.reseed(SEED + k)
        ep.reset(SEED + k, "nominal")
        found = 0
        while not ep.done and found < per_episode:
            ep.period()
            if not ep.needs_chunk:
                continue
            d = task.tcp_position() - task.object_position()
            opened = float(np.ravel(ep.obs["gripper_width"])[0]) > CLOSING_WIDTH
            if not (opened and np.hypot(d[0], d[1]) < radius and low < d[2] < high):
                continue
            raw, q = ep.raw_observation(), ep.obs["arm_joint_positions"]
            ends = []
            for j in range(latents):
                policy.reseed(1_000_000 + j)
                ends.append(tcp_position(q + policy.infer(raw).actions[executed - 1, :7])[:2])
            # The probes used the policy's noise stream: the episode goes on with a seeded one.
            policy.reseed(SEED + k + 7919 * (found + 1))
            xy = np.asarray(ends) - np.mean(ends, 0)
            principal.append(float(np.linalg.svd(xy, compute_uv=False)[0] / np.sqrt(latents)))
            per_axis.append(xy.std(0).tolist())
            found += 1
    return {"window": window, "states": len(principal), "latents": latents,
            "principal_std_mm_median": 1000 * float(np.median(principal)) if principal else float("nan"),
            "xy_std_mm_median": (1000 * np.median(per_axis, 0)).tolist() if per_axis else [],
            "principal_std_mm": [1000 * v for v in principal]}


MEASUREMENTS = ("anatomy", "scenes", "refresh", "sensitivity", "lever", "carry")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decoder", default="models/pick_place/decoder.onnx")
    p.add_argument("--head", default="", help="anatomy only: a steering head (.onnx) on the decoder")
    p.add_argument("--lever-window", choices=sorted(LEVER_WINDOWS), default="grasp")
    p.add_argument("--demos", default="data/pick_place/demos_clean.npz",
                   help="the decoder's demonstrations (lps-train collect --quality clean ...)")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--states", type=int, default=40, help="carry: demonstration states")
    p.add_argument("--noises", type=int, default=5)
    p.add_argument("--only", nargs="+", choices=MEASUREMENTS, default=list(MEASUREMENTS),
                   help="measurements to run (default: all)")
    p.add_argument("--out", type=Path, default=RESULTS / "results.json")
    a = p.parse_args()
    if a.head and (set(a.only) != {"anatomy"} or a.out == RESULTS / "results.json"):
        raise SystemExit("--head is for `--only anatomy` with an --out of its own (the default file is the "
                         "shipped base's)")
    out: dict = {}
    if a.out.exists():
        # `--only` reruns some measurements: keep the others' results if they were for these models.
        previous = json.loads(a.out.read_text())
        if previous.get("decoder") == a.decoder and previous.get("head", "") == a.head:
            out = previous
    out["decoder"] = a.decoder
    if a.head:
        out["head"] = a.head
    if "anatomy" in a.only:
        fa = out["failure_anatomy"] = failure_anatomy(a.decoder, a.episodes, a.head)
        print(f"failure anatomy: {fa['successes']}/{fa['episodes']} successes; of the failures "
              f"{fa['failures_never_lifted_without_holds']} never lifted the cube without a hold, "
              f"{fa['failures_with_holds']} held (periods {fa['hold_periods_of_failures']}; "
              f"{fa['failures_held_by_the_workspace_box']} by the workspace box)")
        z = fa["close_height_above_cube_centre_m"]
        print(f"gripper starts closing {100 * z['successes']:.1f} cm above the cube centre in successes "
              f"(median), {100 * z['failures_without_holds']:.1f} cm in failures without holds")
        xy = fa["close_lateral_offset_m"]
        print(f"... and {100 * xy['successes']:.1f} cm beside it horizontally in successes, "
              f"{100 * xy['failures_without_holds']:.1f} cm in failures without holds, "
              f"{100 * xy['failures_with_holds']:.1f} cm in held failures")
    if "scenes" in a.only:
        sn = out["scene_vs_noise"] = scene_vs_noise(a.decoder, a.scenes, a.noises)
        print(f"scene x noise: overall {sn['overall']:.2f}; scenes always {sn['scenes_always']}, never "
              f"{sn['scenes_never']}, mixed {sn['scenes_mixed']}; bound {sn['best_noise_per_scene_bound']:.0%}")
    if "refresh" in a.only:
        lr = out["latent_refresh"] = latent_refresh(a.decoder, a.episodes)
        print(f"latent per chunk: fresh {lr['fresh']['successes']}/{a.episodes}, one per episode "
              f"{lr['fixed']['successes']}/{a.episodes} (hold periods {lr['fresh']['hold_periods_total']} vs "
              f"{lr['fixed']['hold_periods_total']})")
    if "sensitivity" in a.only:
        ls = out["latent_sensitivity"] = latent_sensitivity(a.decoder, a.demos)
        print(f"latent spread / data std: arm {ls['arm_min']:.2f}-{ls['arm_max']:.2f}, "
              f"gripper {ls['gripper_mean']:.2f}")
    if "carry" in a.only:
        cr = out["carry_release"] = carry_release(a.decoder, a.demos, a.states)
        print(f"carry release ({cr['states']} carry states, {cr['latents']} latents each): a random latent opens the "
              f"fingers > {100 * cr['opening_m']:.0f} cm in {100 * cr['latent_release_rate_mean']:.2f}% of chunks "
              f"(at most {100 * cr['latent_release_rate_max']:.1f}%, in {cr['states_with_a_releasing_latent']} "
              f"states); demonstration chunks there: {cr['demo_chunks_releasing']}")
    if "lever" in a.only:
        lv = out.setdefault("latent_lever", {})[a.lever_window] = latent_lever(a.decoder, a.episodes,
                                                                                a.lever_window)
        print(f"latent lever, {a.lever_window} ({lv['states']} replans): the chunk's last executed target puts "
              f"the TCP {lv['principal_std_mm_median']:.1f} mm apart (std along its main axis, median) "
              f"across {lv['latents']} latents")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_json(a.out, out)
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
