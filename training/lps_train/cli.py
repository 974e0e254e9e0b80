"""`lps-train`: collect demonstrations, fit a base decoder, train a steering head, export, evaluate.

pick_place (the shipped models; `scripts/make_models.sh` runs the whole chain):

    lps-train collect    --task pick_place --episodes 200 --quality noisy --seed 0 --out data/pick_place/demos.npz
    lps-train train-base --demos data/pick_place/demos.npz --decoder meanflow --out runs/pick_place/meanflow.pt
    lps-train export     --checkpoint runs/pick_place/meanflow.pt --out models/pick_place/decoder.onnx
    lps-train train-head --algo lpds --decoder runs/pick_place/meanflow.pt \
                         --decoder-onnx models/pick_place/decoder.onnx --task pick_place --out runs/pick_place/lpds.pt
    lps-train train-head --algo lps  --decoder runs/pick_place/meanflow.pt --demos data/pick_place/demos.npz \
                         --out runs/pick_place/lps.pt
    lps-train export     --checkpoint runs/pick_place/lpds.pt --decoder-onnx models/pick_place/decoder.onnx \
                         --out models/pick_place/heads/lpds.onnx
    lps-train evaluate   --decoder models/pick_place/decoder.onnx --head none lpds lps dsrl --episodes 200 \
                         --profile nominal --record

A new head for an already shipped decoder trains on that decoder's own weights (training runs are
not bit-reproducible, and LPS differentiates through the decoder):

    lps-train import-decoder --onnx models/pick_place/decoder.onnx --like runs/pick_place/meanflow.pt \
                             --out runs/pick_place/decoder_shipped.pt

The four-mode toy (`--env four_modes:<variant>`) goes through the same commands (no manifests:
the toy has no robot layout). Hyperparameters not on the command line are set with
`--set name=value` (any field of the algorithm's config dataclass).

Dataset formats: pick_place, see `lps_train.pick_place`; toy: obs [N, 2], actions [N, T_a, 2],
rewards, next_obs, dones, goals and `env`.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lps_train import dsrl, flow, lpds, lps, meanflow
from lps_train.common import (
    Logger,
    Normalization,
    NormalizedEnv,
    ReplayBuffer,
    load_decoder,
    next_actions_within_episodes,
    save_json,
)

# Observation std floor (raw units) for pick_place: a coordinate that never varies in the
# demonstrations (the zone's height) must not turn tiny sensor noise into huge inputs.
PICK_PLACE_MIN_STD = 1e-2


_ARGV: list[str] = []


def command_line() -> str:
    """The command as typed (recorded in checkpoints and manifests)."""
    return "lps-train " + " ".join(shlex.quote(a) for a in _ARGV)


def apply_sets(cfg: Any, sets: list[str] | None) -> Any:
    """`name=value` strings -> dataclasses.replace(cfg, ...), converting to the field's type."""
    if not sets:
        return cfg
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {}
    for item in sets:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"--set {item!r}: expected name=value with name one of {sorted(fields)}")
        current = getattr(cfg, name)
        if isinstance(current, bool):
            changes[name] = value.lower() in ("1", "true", "yes")
        elif isinstance(current, int):
            changes[name] = int(value)
        elif isinstance(current, float):
            changes[name] = float(value)
        else:
            changes[name] = value
    return dataclasses.replace(cfg, **changes)


def make_env(spec: str):
    kind, _, variant = spec.partition(":")
    if kind == "four_modes":
        from lps_sim.four_modes import make

        return make(variant or "symmetric")
    raise ValueError(f"`--env` must be 'four_modes:<variant>', got {spec!r}")


def _load_demos(path: str, successful_only: bool = False,
                next_actions: bool = False) -> tuple[dict[str, np.ndarray], str, list | None]:
    """(arrays with toy-style keys obs/actions/rewards/next_obs/dones, task name or env spec, the
    recorded observation layout of a task dataset or None). `next_actions` adds the behaviour's
    action at each row's s' for a task dataset, read per file: demonstrations and rollouts space
    their rows differently, so it cannot be read after concatenation."""
    with np.load(path) as z:
        is_task = "layout" in z.files
    if is_task:
        from lps_train.pick_place import load_dataset

        d = load_dataset(path)
        keep = d["episode_success"][d["episode_ids"]] if successful_only else np.ones(len(d["rewards"]), bool)
        rows = {"obs": d["observations"][keep], "actions": d["actions"][keep], "rewards": d["rewards"][keep],
                "next_obs": d["next_observations"][keep], "dones": d["dones"][keep]}
        if next_actions:
            rows["next_actions"] = next_actions_within_episodes(
                d["observations"], d["actions"], d["next_observations"], d["episode_ids"])[keep]
        return rows, d["layout"]["task"], d["layout"].get("observation")
    with np.load(path) as z:
        return {k: z[k] for k in ("obs", "actions", "rewards", "next_obs", "dones")}, str(z["env"]), None


def _sources(layout: list | None) -> list | str:
    return [e["source"] for e in layout] if layout else "the default"


def _load_demo_sets(paths: list[str], successful_only: bool = False,
                    next_actions: bool = False) -> tuple[dict[str, np.ndarray], str, list | None]:
    """Several datasets of one task and observation layout, concatenated (one operator over disjoint
    seed ranges, or demonstrations beside the base's rollouts); a mismatch is refused by name."""
    parts = [_load_demos(path, successful_only, next_actions) for path in paths]
    _, source, observation = parts[0]
    for path, (_, src, obs_layout) in zip(paths, parts, strict=True):
        if src != source:
            raise SystemExit(f"--demos {path}: task {src!r}, but {paths[0]} is {source!r}")
        if obs_layout != observation:
            raise SystemExit(f"--demos {path}: observation layout {_sources(obs_layout)}, but {paths[0]} has "
                             f"{_sources(observation)}")
    return {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}, source, observation


# ---------------------------------------------------------------------------------------------
def cmd_collect(a: argparse.Namespace) -> None:
    if a.terminate_on_hold and not (a.task and a.policy):
        raise SystemExit("--terminate-on-hold is for --task pick_place --policy rollouts (the expert's episodes are "
                         "not cut, and a --env has no safety filter)")
    if a.task:
        from lps_train import pick_place

        if a.task != pick_place.TASK:
            raise SystemExit(f"--task must be {pick_place.TASK!r}, got {a.task!r}")
        t0 = time.perf_counter()
        if a.policy:
            out = a.out or f"data/{a.task}/rollouts.npz"
            data = pick_place.collect_rollouts(a.policy, a.head or "", a.episodes, a.seed, a.profile,
                                               terminate_on_hold=a.terminate_on_hold)
            who = "policy"
        else:
            out = a.out or f"data/{a.task}/demos_{a.quality}.npz"
            expert = apply_sets(pick_place.expert_config(a.quality), a.set)
            data = pick_place.collect(a.episodes, a.quality, a.seed, a.profile, expert=expert,
                                      observation=a.observation)
            who = "expert"
        pick_place.save_dataset(out, data)
        succ = data["episode_success"]
        print(f"{out}: {len(data['observations'])} rows from {a.episodes} episodes, {who} success "
              f"{succ.mean():.2f}, {time.perf_counter() - t0:.0f} s")
        return
    from lps_sim.four_modes import collect_demos

    if not a.out:
        raise SystemExit("collect --env needs --out")
    env = make_env(a.env)
    data = collect_demos(env, a.episodes, a.seed)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, env=a.env, **data)
    print(f"{a.out}: {len(data['obs'])} transitions from {a.episodes} episodes")


def cmd_train_base(a: argparse.Namespace) -> None:
    d, source, observation = _load_demo_sets(a.demos, a.successful_only)
    if a.no_normalize:
        norm = Normalization.identity(d["obs"].shape[1], d["actions"].shape[2])
    else:
        min_std = PICK_PLACE_MIN_STD if source == "pick_place" else 1e-3
        norm = Normalization.fit(d["obs"], d["actions"], min_std=min_std)
    obs, acts = norm.normalize_obs(d["obs"]), norm.normalize_actions(d["actions"])
    log = Logger()
    kind = a.decoder
    t0 = time.perf_counter()
    if kind == "meanflow":
        cfg = meanflow.MeanFlowConfig(seed=a.seed, steps=a.steps, hidden=a.hidden, layers=a.layers, lr=a.lr)
        cfg = apply_sets(cfg, a.set)
        dec = meanflow.train(cfg, obs, acts, logger=log)
    else:
        cfg = flow.FlowConfig(seed=a.seed, steps=a.steps, hidden=a.hidden, layers=a.layers, lr=a.lr)
        cfg = apply_sets(cfg, a.set)
        dec = flow.train(cfg, obs, acts, logger=log)
    wall = time.perf_counter() - t0
    extra = {"env": source, "demos": " ".join(a.demos), "rows": int(len(obs)), "successful_only": a.successful_only,
             "observation": observation, "command": command_line(),
             "train_wall_s": round(wall, 1)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    (meanflow if kind == "meanflow" else flow).save_decoder(a.out, dec, norm, cfg, extra=extra)
    log.save_csv(Path(a.out).with_suffix(".csv"))
    log.plot(Path(a.out).with_suffix(".png"), title=f"{kind} base policy ({source})")
    print(f"{a.out} (+ .csv, .png learning curves), {wall:.0f} s")


def cmd_train_head(a: argparse.Namespace) -> None:
    if a.critic_features != "none" and a.algo == "dsrl":
        raise SystemExit("--critic-features is an option of the action critics of lpds and lps, got --algo dsrl")
    dec, norm, dec_ckpt = load_decoder(a.decoder)
    log = Logger()
    task = dec_ckpt.get("extra", {}).get("env", "")

    def critic_features(steps: int) -> torch.nn.Module | None:
        if a.critic_features == "none":
            return None
        if (a.task or task) != "pick_place":
            raise SystemExit(f"--critic-features {a.critic_features} needs a pick_place decoder (it is pick_place's "
                             f"geometry), got one for {(a.task or task)!r}")
        from lps_train.features import ChunkTcpFeatures

        return ChunkTcpFeatures(norm, steps, ("object", "target") if a.critic_features == "tcp-target" else ("object",))

    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if a.algo == "lps":
        if not a.demos:
            raise SystemExit("train-head --algo lps needs --demos (LPS is offline)")
        cfg = apply_sets(lps.LPSConfig(seed=a.seed, steps=a.steps), a.set)
        d, _, _ = _load_demo_sets(a.demos, next_actions=cfg.critic_target == "data")
        if d["obs"].shape[1] != dec.obs_dim:
            raise SystemExit(f"--demos {' '.join(a.demos)}: observations have {d['obs'].shape[1]} values, the "
                             f"decoder takes {dec.obs_dim} (collect them with the decoder's --observation layout)")
        next_actions = norm.normalize_actions(d["next_actions"]) if "next_actions" in d else None
        data = ReplayBuffer.from_arrays(norm.normalize_obs(d["obs"]), norm.normalize_actions(d["actions"]),
                                        d["rewards"], norm.normalize_obs(d["next_obs"]), d["dones"],
                                        next_actions=next_actions)
        agent, log = lps.train(cfg, data, dec, logger=log,
                               action_features=critic_features(cfg.critic_steps or dec.chunk_length))
        head = agent.actor
        extra = {"critic_features": a.critic_features}
    else:
        if a.task:
            from lps_train.pick_place import ControllerEnv

            if not a.decoder_onnx:
                raise SystemExit(f"train-head --algo {a.algo} --task {a.task} needs --decoder-onnx (the exported "
                                 "decoder whose manifest the controller runs)")
            raw_env = ControllerEnv(a.decoder_onnx, profile=a.profile, terminate_on_hold=a.terminate_on_hold,
                                    lift_bonus=a.lift_bonus)
        elif a.env:
            raw_env = make_env(a.env)
        else:
            raise SystemExit(f"train-head --algo {a.algo} needs --task or --env (it trains online)")
        env = NormalizedEnv(raw_env, norm)
        if a.algo == "lpds":
            cfg = apply_sets(lpds.LPDSConfig(seed=a.seed, total_steps=a.steps, delta=a.delta), a.set)
            agent, log = lpds.train(cfg, env, dec, logger=log,
                                    action_features=critic_features(cfg.critic_steps or dec.chunk_length))
            extra = {"trust_region_delta": cfg.delta, "critic_features": a.critic_features}
        else:
            cfg = apply_sets(dsrl.DSRLConfig(seed=a.seed, total_steps=a.steps), a.set)
            agent, log = dsrl.train(cfg, env, dec, logger=log)
        head = agent.actor
    wall = time.perf_counter() - t0
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"head_type": a.algo, "head": head, "decoder": str(a.decoder), "task": task,
                "decoder_onnx": a.decoder_onnx or "", "config": dataclasses.asdict(cfg) | extra,
                "command": command_line(), "train_wall_s": round(wall, 1), "seed": a.seed}, a.out)
    log.save_csv(Path(a.out).with_suffix(".csv"))
    keys = [k for k in log.history if k.split("/")[0] in ("charts", "lagrange", "constraint", "values", "losses",
                                                          "latent", "entropy")]
    log.plot(Path(a.out).with_suffix(".png"), keys=sorted(keys), title=f"{a.algo} head ({task or a.env})")
    print(f"{a.out} (+ .csv, .png learning curves), {wall:.0f} s")


def cmd_export(a: argparse.Namespace) -> None:
    from lps_train.export import export_onnx, parity_check, write_manifest

    ckpt = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    is_decoder = "decoder_type" in ckpt
    if is_decoder:
        module, norm, _ = load_decoder(a.checkpoint)
        ex = (torch.zeros(1, module.obs_dim), torch.zeros(1, module.latent_dim))
        path = export_onnx(module, ex, ["observation", "latent"], ["actions"], a.out)
        task = ckpt.get("extra", {}).get("env", "")
        made = ckpt.get("extra", {})
    else:
        module = ckpt["head"].eval()
        _, norm, dec_ckpt = load_decoder(ckpt["decoder"])
        obs_dim = len(norm.obs_mean)
        out_name = "delta" if ckpt["head_type"] == "lpds" else "latent"
        path = export_onnx(module, (torch.zeros(1, obs_dim),), ["observation"], [out_name], a.out)
        task = ckpt.get("task", "")
        made = ckpt
    err = parity_check(module, path, n=1000)
    if err > 1e-4:
        raise SystemExit(f"{path}: ONNX Runtime differs from torch by {err:.2e} > 1e-4 on 1000 random inputs")
    if task != "pick_place":
        save_json(Path(a.out).with_suffix(".parity.json"), {"max_abs_err": err})
        print(f"{path}: max |torch - onnxruntime| = {err:.2e} (toy: no manifest, it has no robot layout)")
        return
    from lps_train import pick_place as pp

    metrics = {"parity_max_abs_err": err, "parity_inputs": 1000, "train_command": made.get("command", ""),
               "train_wall_s": made.get("train_wall_s"), "config": made.get("config", {})}
    recorded = (made if is_decoder else dec_ckpt.get("extra", {})).get("observation")
    common = dict(observation=pp.observation_layout(norm.obs_mean, norm.obs_std, pp.layout_of(recorded)),
                  action=pp.action_layout(norm.act_mean, norm.act_std), robot="fr3",
                  chunk_length=pp.CHUNK_LENGTH, policy_rate_hz=pp.POLICY_RATE_HZ, command=command_line(),
                  metrics=metrics)
    if is_decoder:
        metrics |= {"demos": made.get("demos", ""), "demo_rows": made.get("rows")}
        m = write_manifest(path, kind="decoder", name=f"pick_place_{module.decoder_type}",
                           decoder_type=module.decoder_type, latent_geometry=module.latent_geometry,
                           seed=ckpt["config"].get("seed"), **common)
    else:
        decoder_onnx = a.decoder_onnx or ckpt.get("decoder_onnx")
        if not decoder_onnx:
            raise SystemExit("export of a head needs --decoder-onnx (the exported decoder it steers)")
        from lps_steering.core.manifest import load_manifest

        dm = load_manifest(decoder_onnx)
        imported = dec_ckpt.get("extra", {}).get("onnx_sha256")
        if imported and imported != dm.onnx_sha256:
            # The head was trained through the weights of another .onnx (import-decoder); binding it to
            # this one would pass the runtime's hash check with a decoder it never saw.
            raise SystemExit(f"--decoder-onnx {decoder_onnx}: sha256 {dm.onnx_sha256[:12]} is not that of the "
                             f"decoder the head was trained on ({dec_ckpt['extra'].get('imported_from')}, "
                             f"{imported[:12]})")
        dec_type = dec_ckpt["decoder_type"]
        if dm.decoder_type != dec_type:
            raise SystemExit(f"--decoder-onnx {decoder_onnx}: `decoder_type` must be {dec_type!r} (the head's "
                             f"training decoder), got {dm.decoder_type!r}")
        m = write_manifest(path, kind="head", name=f"pick_place_{ckpt['head_type']}",
                           head_type=ckpt["head_type"], latent_geometry=dm.latent_geometry,
                           trust_region_delta=ckpt["config"].get("trust_region_delta"),
                           decoder_onnx=decoder_onnx, seed=ckpt.get("seed"), **common)
    print(f"{path} (+ {Path(path).with_suffix('.json').name}): parity {err:.2e}, sha256 {m.onnx_sha256[:12]}")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from lps_steering.core.manifest import load_manifest, manifest_path_for

    from lps_train.pick_place import evaluate

    heads_dir = Path(a.decoder).parent / "heads"
    results = []
    for h in a.head:
        path = "" if h == "none" else (h if h.endswith(".onnx") else str(heads_dir / f"{h}.onnx"))
        results.append(evaluate(a.decoder, path, a.episodes, a.profile, a.seed, label=h))
    base = next((r for r in results if r.head == "none"), None)
    print(f"\npick_place, profile {a.profile}, {a.episodes} episodes (seeds {a.seed}..{a.seed + a.episodes - 1}),"
          " SteeringController + ONNX Runtime")
    print(f"{'head':<8} {'success':>8} {'95% Wilson':>16} {'vs base':>8} {'holds':>6} {'wall s':>7}")
    for r in results:
        diff = f"{100 * (r.success_rate - base.success_rate):+.0f} pt" if base is not None else ""
        print(f"{r.head:<8} {100 * r.success_rate:>7.0f}% {100 * r.wilson_low:>7.1f}-{100 * r.wilson_high:.1f}% "
              f"{diff:>8} {r.holds:>6} {r.wall_s:>7.0f}")
    if a.png:
        _plot_eval(Path(a.png), results, a.profile)
    if a.out:
        save_json(a.out, {"profile": a.profile, "episodes": a.episodes, "seed": a.seed, "command": command_line(),
                          "results": [r.to_dict() for r in results]})
    if a.record:
        for h, r in zip(a.head, results, strict=True):
            onnx = a.decoder if h == "none" else (h if h.endswith(".onnx") else str(heads_dir / f"{h}.onnx"))
            m = load_manifest(onnx)
            m.provenance.metrics[f"eval_{a.profile}"] = r.to_dict() | {
                "seed": a.seed, "command": command_line(),
                "base_success_rate": base.success_rate if base is not None else None}
            m.save(manifest_path_for(onnx))
        print("recorded in the manifests' provenance.metrics")


def _plot_eval(path: Path, results: list, profile: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    x = np.arange(len(results))
    rate = np.array([100 * r.success_rate for r in results])
    err = np.array([[100 * (r.success_rate - r.wilson_low), 100 * (r.wilson_high - r.success_rate)] for r in results]).T
    colors = ["tab:gray" if r.head == "none" else "tab:blue" for r in results]
    ax.bar(x, rate, yerr=err, capsize=4, color=colors)
    for i, r in enumerate(results):
        ax.text(i, 2, f"{r.successes}/{r.episodes}", ha="center", color="white", fontsize=8)
    ax.set_xticks(x, ["base" if r.head == "none" else r.head for r in results])
    ax.set_ylim(0, 100)
    ax.set_ylabel("success % (95% Wilson)")
    ax.set_title(f"pick_place, {profile}: steering heads vs frozen MeanFlow base", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_import_decoder(a: argparse.Namespace) -> None:
    from lps_train.export import import_decoder

    try:
        ckpt = import_decoder(a.onnx, torch.load(a.like, map_location="cpu", weights_only=False))
    except (ValueError, OSError) as e:
        raise SystemExit(str(e)) from None
    ckpt["extra"]["command"] = command_line()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, a.out)
    print(f"{a.out}: the weights of {a.onnx} (sha256 {ckpt['extra']['onnx_sha256'][:12]}) in {a.like}'s architecture")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lps-train", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="scripted demonstrations (or --policy rollouts) -> .npz")
    c.add_argument("--task", help="MuJoCo task (pick_place); else --env")
    c.add_argument("--policy", help="pick_place: roll out this exported decoder (.onnx) instead of the expert")
    c.add_argument("--head", help="with --policy: steering head .onnx (default: the frozen base policy)")
    c.add_argument("--terminate-on-hold", action="store_true",
                   help="with --policy: a chunk the SafetyFilter refuses ends the episode as a failure (terminal)")
    c.add_argument("--env", default="four_modes:symmetric")
    c.add_argument("--quality", default="noisy",
                   help="demonstration quality: a key of lps_train.pick_place.QUALITIES (the shipped base: "
                        "clean); an unknown one is refused with the list")
    c.add_argument("--set", action="append",
                   help="pick_place: expert setting override name=value on the quality's ExpertConfig "
                        "(repeatable), e.g. early_close_prob=0.3")
    c.add_argument("--observation", default="state",
                   help="pick_place expert demonstrations: observation layout, a key of "
                        "lps_train.pick_place.OBSERVATION_LAYOUTS (state; state_velocity adds the joint velocities)")
    c.add_argument("--profile", default="nominal")
    c.add_argument("--episodes", type=int, default=400)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out")
    b = sub.add_parser("train-base", help="fit a MeanFlow or flow decoder")
    b.add_argument("--demos", nargs="+", required=True, help="dataset(s) of one task and layout, concatenated")
    b.add_argument("--decoder", "--kind", dest="decoder", choices=["meanflow", "flow"], default="meanflow")
    b.add_argument("--steps", type=int, default=20_000)
    b.add_argument("--hidden", type=int, default=512)
    b.add_argument("--layers", type=int, default=4)
    b.add_argument("--lr", type=float, default=3e-4)
    b.add_argument("--no-normalize", action="store_true", help="identity normalisation (units already ~[-1, 1])")
    b.add_argument("--successful-only", action="store_true", help="fit only the episodes that succeeded")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--set", action="append", help="config field override name=value (repeatable)")
    b.add_argument("--out", required=True)
    h = sub.add_parser("train-head", help="train a steering head against a frozen decoder")
    h.add_argument("--algo", choices=["lps", "lpds", "dsrl"], required=True)
    h.add_argument("--decoder", required=True, help="decoder checkpoint (.pt) from train-base")
    h.add_argument("--decoder-onnx", help="online pick_place: the exported decoder (.onnx + manifest)")
    h.add_argument("--task", help="online algorithms: MuJoCo task (pick_place)")
    h.add_argument("--profile", default="nominal", help="randomisation profile of the training task")
    h.add_argument("--env", help="online algorithms: toy env spec")
    h.add_argument("--terminate-on-hold", action="store_true",
                   help="online pick_place: end a training episode (reward 0) when the safety filter holds")
    h.add_argument("--lift-bonus", type=float, default=0.0,
                   help="online pick_place: one-time reward when the cube first clears 2 cm (success pays 1)")
    h.add_argument("--demos", nargs="+", help="lps: the offline dataset(s), concatenated")
    h.add_argument("--steps", type=int, default=20_000)
    h.add_argument("--delta", type=float, default=0.35, help="lpds trust-region radius")
    h.add_argument("--critic-features", choices=["none", "tcp", "tcp-target"], default="none",
                   help="lpds and lps on pick_place: also give the action critic the TCP position of each "
                        "executed joint target relative to the cube (tcp) or to the cube and the place zone "
                        "(tcp-target) (lps_train.features); the exported head is unchanged")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--set", action="append", help="config field override name=value (repeatable)")
    h.add_argument("--out", required=True)
    e = sub.add_parser("export", help="checkpoint -> .onnx (+ parity check, + manifest for pick_place)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--decoder-onnx", help="heads: the exported decoder they steer (default: from training)")
    e.add_argument("--out", required=True)
    i = sub.add_parser("import-decoder", help="exported decoder (.onnx + manifest) -> torch checkpoint, for "
                       "training heads against a shipped decoder")
    i.add_argument("--onnx", required=True, help="the exported decoder, e.g. models/pick_place/decoder.onnx")
    i.add_argument("--like", required=True, help="a decoder checkpoint of the same architecture (train-base), "
                   "e.g. one retrained with the shipped command; only its structure is used")
    i.add_argument("--out", required=True)
    v = sub.add_parser("evaluate", help="success of exported models through SteeringController (no ROS)")
    v.add_argument("--decoder", default="models/pick_place/decoder.onnx")
    v.add_argument("--head", nargs="+", default=["none", "lpds", "lps", "dsrl"],
                   help="'none' (frozen base), a head name under <decoder dir>/heads/, or an .onnx path")
    v.add_argument("--episodes", type=int, default=100)
    v.add_argument("--profile", default="nominal")
    v.add_argument("--seed", type=int, default=100_000, help="first episode seed (episode k: seed + k)")
    v.add_argument("--record", action="store_true", help="write the results into the manifests' metrics")
    v.add_argument("--out", help="JSON file for the results")
    v.add_argument("--png", help="bar chart of the success rates with their Wilson intervals")
    a = p.parse_args(argv)
    _ARGV[:] = list(argv) if argv is not None else sys.argv[1:]
    {"collect": cmd_collect, "train-base": cmd_train_base, "train-head": cmd_train_head, "export": cmd_export,
     "import-decoder": cmd_import_decoder, "evaluate": cmd_evaluate}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
