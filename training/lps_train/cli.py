"""`lps-train`: collect demonstrations, fit a base decoder, train a steering head, export, evaluate.

    lps-train <command> --help       # every setting of the command, with its meaning
    lps-train <command> --preset P   # the settings of a shipped run (lps_train.configs)

The shipped pick_place models, stage by stage (`scripts/make_models.sh` runs the chain):

    lps-train collect    --preset shipped-demos
    lps-train train-base --preset shipped-meanflow
    lps-train export     --checkpoint runs/pick_place/mf_mixed15.pt --out models/pick_place/decoder.onnx
    lps-train train-head --preset shipped-lpds
    lps-train lps-rounds                          # LPS: rounds of training and sim rollouts
    lps-train train-head --preset shipped-dsrl
    lps-train export     --checkpoint runs/pick_place/lpds.pt --decoder-onnx models/pick_place/decoder.onnx \
                         --out models/pick_place/heads/lpds.onnx
    lps-train evaluate   --head none lpds lpds_paper lps --episodes 200 --record

A new head for an already shipped decoder trains on that decoder's own weights (training runs are
not bit-reproducible, and LPS differentiates through the decoder):

    lps-train import-decoder --onnx models/pick_place/decoder.onnx --like runs/pick_place/mf_mixed15.pt \
                             --out runs/pick_place/decoder_shipped.pt

Offline data of any origin (docs/datasets.md): convert it once, then train decoder and LPS head from it
alone, with the reference's settings by default:

    lps-train convert --source mcap|lerobot|ogbench --input ... --out data/my_dataset
    lps-train train-offline --dataset data/my_dataset --out runs/my_dataset

The four-mode toy (`--env four_modes:<variant>`) goes through the same commands (no manifests:
the toy has no robot layout).

Dataset formats: pick_place, see `lps_train.pick_place.dataset`; toy: obs [N, 2], actions
[N, T_a, 2], rewards, next_obs, dones, goals and `env`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro
from lps_steering.core.manifest import sha256_file

from lps_train import dsrl, flow, lpds, lps, meanflow
from lps_train.checkpoints import load_decoder
from lps_train.configs import (
    PRESETS,
    Collect,
    Convert,
    Evaluate,
    Export,
    ImportDecoder,
    LpsRounds,
    TrainBase,
    TrainHead,
    TrainOffline,
)
from lps_train.envs import NormalizedEnv
from lps_train.normalization import Normalization
from lps_train.replay import ReplayBuffer, next_actions_within_episodes
from lps_train.rounds import choose_round
from lps_train.runlog import Logger, save_json

# Observation std floor (raw units) for pick_place: a coordinate that never varies in the
# demonstrations (the zone's height) must not turn tiny sensor noise into huge inputs.
PICK_PLACE_MIN_STD = 1e-2


def write_run_config(out: str | Path, cfg: Any, command: str) -> Path:
    """`<out>.config.json` beside a run's output: the command and every setting it ran with."""
    path = Path(out).with_suffix(".config.json")
    save_json(path, {"command": command, "config": dataclasses.asdict(cfg)})
    return path


def as_command(name: str, cfg: Any) -> str:
    """The `lps-train` command line that parses back into `cfg` (its preset plus what differs)."""
    presets = PRESETS.get(name, {})
    preset = getattr(cfg, "preset", None)
    base = presets[preset] if preset else _default(type(cfg))
    args = (["--preset", preset] if preset else []) + _flags(cfg, base, "")
    return f"lps-train {name} " + shlex.join(args) if args else f"lps-train {name}"


def _default(cls: type) -> Any:
    try:
        return cls()
    except TypeError:  # required fields: every given one differs
        return None


def _flags(cfg: Any, base: Any, prefix: str) -> list[str]:
    out: list[str] = []
    for f in dataclasses.fields(cfg):
        value, ref = getattr(cfg, f.name), (getattr(base, f.name) if base is not None else dataclasses.MISSING)
        name = f.name.replace("_", "-")
        if f.name == "preset" or value == ref:
            continue
        if dataclasses.is_dataclass(value):
            out += _flags(value, ref, f"{prefix}{name}.")
        elif isinstance(value, bool):
            out.append(f"--{prefix}{name}" if value else f"--{prefix}no-{name}")
        elif isinstance(value, tuple):
            out += [f"--{prefix}{name}", *map(str, value)]
        else:
            out += [f"--{prefix}{name}", str(value)]
    return out


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
        from lps_train.pick_place.dataset import load_dataset

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


def _data_record(paths: tuple[str, ...]) -> dict[str, Any]:
    """The datasets a model learns from, by content (taken when they are read: a path alone names
    whatever file is there later); its checkpoint carries this, and export copies it into the manifest."""
    return {"demos": " ".join(paths), "demos_sha256": [sha256_file(f) for f in paths]}


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
def cmd_collect(a: Collect, command: str) -> None:
    if a.terminate_on_hold and not (a.task and a.policy):
        raise SystemExit("--terminate-on-hold is for --task pick_place --policy rollouts (the expert's episodes are "
                         "not cut, and a --env has no safety filter)")
    if a.task:
        from lps_train.pick_place import demos, rollouts
        from lps_train.pick_place.dataset import save_dataset
        from lps_train.pick_place.layout import TASK

        if a.task != TASK:
            raise SystemExit(f"--task must be {TASK!r}, got {a.task!r}")
        t0 = time.perf_counter()
        if a.policy:
            out = a.out or f"data/{a.task}/rollouts.npz"
            data = rollouts.collect_rollouts(a.policy, a.head, a.episodes, a.seed, a.profile,
                                             terminate_on_hold=a.terminate_on_hold)
            who = "policy"
        else:
            out = a.out or f"data/{a.task}/demos_{a.quality}.npz"
            try:
                data = demos.collect(a.episodes, a.quality, a.seed, a.profile, expert=a.expert,
                                     observation=a.observation)
            except ValueError as e:
                raise SystemExit(str(e)) from None
            who = "expert"
        save_dataset(out, data)
        write_run_config(out, dataclasses.replace(a, out=out), command)
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
    write_run_config(a.out, a, command)
    print(f"{a.out}: {len(data['obs'])} transitions from {a.episodes} episodes")


def cmd_train_base(a: TrainBase, command: str) -> None:
    if not a.demos or not a.out:
        raise SystemExit("train-base needs --demos and --out (or a --preset)")
    d, source, observation = _load_demo_sets(list(a.demos), a.successful_only)
    if a.no_normalize:
        norm = Normalization.identity(d["obs"].shape[1], d["actions"].shape[2])
    else:
        min_std = PICK_PLACE_MIN_STD if source == "pick_place" else 1e-3
        norm = Normalization.fit(d["obs"], d["actions"], min_std=min_std)
    obs, acts = norm.normalize_obs(d["obs"]), norm.normalize_actions(d["actions"])
    log = Logger()
    module = meanflow if a.decoder == "meanflow" else flow
    cfg = a.algo_config()
    t0 = time.perf_counter()
    dec = module.train(cfg, obs, acts, logger=log)
    wall = time.perf_counter() - t0
    extra = {"env": source, **_data_record(a.demos), "rows": int(len(obs)), "successful_only": a.successful_only,
             "observation": observation, "command": command, "train_wall_s": round(wall, 1)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    module.save_decoder(a.out, dec, norm, cfg, extra=extra)
    write_run_config(a.out, a, command)
    log.save_csv(Path(a.out).with_suffix(".csv"))
    log.plot(Path(a.out).with_suffix(".png"), title=f"{a.decoder} base policy ({source})")
    print(f"{a.out} (+ .csv, .png learning curves, .config.json), {wall:.0f} s")


def head_at(out: str | Path, updates: int) -> Path:
    """Where `train-head --save-head-every` saves the head after `updates` updates."""
    out = Path(out)
    return out.with_name(f"{out.stem}_u{updates}.pt")


def cmd_train_head(a: TrainHead, command: str) -> None:
    if not a.decoder or not a.out:
        raise SystemExit("train-head needs --decoder and --out (or a --preset)")
    if a.save_head_every < 0 or (a.save_head_every and a.algo != "lps"):
        raise SystemExit(f"--save-head-every must be >= 0 and is an option of --algo lps, got {a.save_head_every} "
                         f"with --algo {a.algo}")
    if a.critic_features != "none" and a.algo == "dsrl":
        raise SystemExit("--critic-features is an option of the action critics of lpds and lps, got --algo dsrl")
    dec, norm, dec_ckpt = load_decoder(a.decoder)
    log = Logger()
    task = dec_ckpt.get("extra", {}).get("env", "")
    cfg = a.algo_config()

    def critic_features(steps: int) -> torch.nn.Module | None:
        if a.critic_features == "none":
            return None
        if (a.task or task) != "pick_place":
            raise SystemExit(f"--critic-features {a.critic_features} needs a pick_place decoder (it is pick_place's "
                             f"geometry), got one for {(a.task or task)!r}")
        from lps_train.features import ChunkTcpFeatures

        return ChunkTcpFeatures(norm, steps, ("object", "target") if a.critic_features == "tcp-target" else ("object",))

    learnt_from = _data_record(a.demos)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def save_head(path: str | Path, actor: torch.nn.Module, wall: float, updates: int | None = None) -> None:
        # A head saved along the run says after how many of the run's updates (`config` holds the
        # whole run's settings).
        torch.save({"head_type": a.algo, "head": actor, "decoder": str(a.decoder), "task": task,
                    "decoder_onnx": a.decoder_onnx, "config": a.recorded_config(), "run": dataclasses.asdict(a),
                    "command": command, "train_wall_s": round(wall, 1), "seed": cfg.seed,
                    **({"updates": updates} if updates is not None else {}), **learnt_from}, path)

    if a.algo == "lps":
        if not a.demos:
            raise SystemExit("train-head --algo lps needs --demos (LPS is offline)")
        d, _, _ = _load_demo_sets(list(a.demos), next_actions=cfg.critic_target == "data")
        if d["obs"].shape[1] != dec.obs_dim:
            raise SystemExit(f"--demos {' '.join(a.demos)}: observations have {d['obs'].shape[1]} values, the "
                             f"decoder takes {dec.obs_dim} (collect them with the decoder's --observation layout)")
        next_actions = norm.normalize_actions(d["next_actions"]) if "next_actions" in d else None
        data = ReplayBuffer.from_arrays(norm.normalize_obs(d["obs"]), norm.normalize_actions(d["actions"]),
                                        d["rewards"], norm.normalize_obs(d["next_obs"]), d["dones"],
                                        next_actions=next_actions)
        along = None
        if a.save_head_every:

            def along(step: int, agent: lps.LPSAgent) -> dict[str, float]:
                save_head(head_at(a.out, step), agent.actor, time.perf_counter() - t0, updates=step)
                return {}

        agent, log = lps.train(dataclasses.replace(cfg, eval_every=a.save_head_every), data, dec, logger=log,
                               eval_fn=along, action_features=critic_features(cfg.critic_steps or dec.chunk_length))
    else:
        if a.task:
            from lps_train.pick_place.env import ControllerEnv

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
            agent, log = lpds.train(cfg, env, dec, logger=log,
                                    action_features=critic_features(cfg.critic_steps or dec.chunk_length))
        else:
            # Long on 2 cores (about 80 min): the run keeps a snapshot beside its output and goes on
            # from it when started again with the same command.
            agent, log = dsrl.train(cfg, env, dec, logger=log, state_path=Path(a.out).with_suffix(".state.pt"),
                                    run={"decoder_sha256": sha256_file(a.decoder), "decoder_onnx": a.decoder_onnx,
                                         "task": a.task, "env": a.env, "profile": a.profile,
                                         "terminate_on_hold": a.terminate_on_hold, "lift_bonus": a.lift_bonus})
    wall = agent.wall_s if a.algo == "dsrl" else time.perf_counter() - t0
    save_head(a.out, agent.actor, wall)
    write_run_config(a.out, a, command)
    Path(a.out).with_suffix(".state.pt").unlink(missing_ok=True)  # the run is done: nothing to go on from
    log.save_csv(Path(a.out).with_suffix(".csv"))
    keys = [k for k in log.history if k.split("/")[0] in ("charts", "lagrange", "constraint", "values", "losses",
                                                          "latent", "entropy")]
    log.plot(Path(a.out).with_suffix(".png"), keys=sorted(keys), title=f"{a.algo} head ({task or a.env})")
    print(f"{a.out} (+ .csv, .png learning curves, .config.json), {wall:.0f} s")


def cmd_lps_rounds(a: LpsRounds, command: str) -> None:
    if a.head.algo != "lps":
        raise SystemExit(f"lps-rounds trains LPS heads, got --head.algo {a.head.algo}")
    if a.max_rounds < 1:
        raise SystemExit(f"--max-rounds must be >= 1, got {a.max_rounds}")
    seed = a.head.lps.seed
    work, data_dir = Path(a.work_dir), Path(a.data_dir)

    def train_round(index: int, data: tuple[str, ...]) -> str:
        run = dataclasses.replace(a.head, demos=data, out=str(work / f"lps_s{seed}_round{index}.pt"))
        cmd_train_head(run, as_command("train-head", run))
        export = Export(checkpoint=run.out, out=str(Path(run.out).with_suffix(".onnx")), decoder_onnx=a.decoder_onnx)
        cmd_export(export, as_command("export", export))
        return run.out

    def roll_out(index: int, checkpoint: str) -> tuple[str, float]:
        col = Collect(task="pick_place", policy=a.decoder_onnx, head=str(Path(checkpoint).with_suffix(".onnx")),
                      episodes=a.rollout_episodes, seed=a.rollout_seed, terminate_on_hold=True,
                      out=str(data_dir / f"rollouts_lps_s{seed}_round{index}.npz"))
        cmd_collect(col, as_command("collect", col))
        success = np.load(col.out)["episode_success"]
        if len(success) == 0:
            raise SystemExit(f"{col.out} holds no episodes")
        return col.out, float(success.mean())

    rounds, best = choose_round(a.head.demos, a.max_rounds, train_round, roll_out,
                                report=lambda line: print(line, flush=True))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rounds[best - 1].checkpoint, a.out)
    save_json(Path(a.out).with_suffix(".rounds.json"),
              {"kept_round": best, "rounds": [dataclasses.asdict(r) for r in rounds]})
    write_run_config(a.out, a, command)
    print(f"{a.out}: round {best} of {len(rounds)} (+ .rounds.json, .config.json)")


def _projection(head_type: str, config: dict, geometry: str) -> str:
    """What training did to the head's latent before the decoder, for the runtime to do the same."""
    if geometry != "sphere":
        return "none"
    if head_type == "lps":
        return "sphere"
    # A config without `project` composed its latents unprojected.
    return "sphere" if config.get("project", False) else "none"


def cmd_export(a: Export, command: str) -> None:
    from lps_train.export import export_onnx, parity_check
    from lps_train.manifests import write_manifest

    ckpt = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    is_decoder = "decoder_type" in ckpt
    if is_decoder:
        module, norm, _ = load_decoder(a.checkpoint)
        ex = (torch.zeros(1, module.obs_dim), torch.zeros(1, module.latent_dim))
        path = export_onnx(module, ex, ["observation", "latent"], ["actions"], a.out)
        task = ckpt.get("extra", {}).get("env", "")
        made = ckpt.get("extra", {})
        config = ckpt.get("config", {})
    else:
        module = ckpt["head"].eval()
        dec_module, norm, dec_ckpt = load_decoder(ckpt["decoder"])
        obs_dim = len(norm.obs_mean)
        out_name = "delta" if ckpt["head_type"] == "lpds" else "latent"
        # A sampling head takes the runtime's standard-normal noise as a second input.
        noise_input = bool(getattr(module, "stochastic", False))
        ex = (torch.zeros(1, obs_dim), *([torch.zeros(1, dec_module.latent_dim)] if noise_input else []))
        path = export_onnx(module, ex, ["observation", *(["noise"] if noise_input else [])], [out_name], a.out)
        task = ckpt.get("task", "")
        made = ckpt
        config = ckpt.get("config", {})
    err = parity_check(module, path, n=1000)
    if err > 1e-4:
        raise SystemExit(f"{path}: ONNX Runtime differs from torch by {err:.2e} > 1e-4 on 1000 random inputs")
    if task != "pick_place":
        save_json(Path(a.out).with_suffix(".parity.json"), {"max_abs_err": err})
        print(f"{path}: max |torch - onnxruntime| = {err:.2e} (toy: no manifest, it has no robot layout)")
        return
    from lps_train.pick_place.layout import (
        CHUNK_LENGTH,
        POLICY_RATE_HZ,
        action_layout,
        layout_of,
        observation_layout,
    )

    metrics = {"parity_max_abs_err": err, "parity_inputs": 1000, "train_command": made.get("command", ""),
               "train_wall_s": made.get("train_wall_s"), "config": config}
    recorded = (made if is_decoder else dec_ckpt.get("extra", {})).get("observation")
    common = dict(observation=observation_layout(norm.obs_mean, norm.obs_std, layout_of(recorded)),
                  action=action_layout(norm.act_mean, norm.act_std), robot="fr3",
                  chunk_length=CHUNK_LENGTH, policy_rate_hz=POLICY_RATE_HZ, command=command,
                  metrics=metrics)
    if is_decoder:
        metrics |= {"demos": made.get("demos", ""), "demos_sha256": made.get("demos_sha256"),
                    "demo_rows": made.get("rows")}
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
        # The head is bound to the .onnx by its hash; this is where that binding is earned: the
        # decoder the head was trained through must compute what the .onnx computes, and see
        # observations normalised the same way.
        dec_err = parity_check(dec_module, decoder_onnx, n=1000)
        if dec_err > 1e-4:
            raise SystemExit(f"--decoder-onnx {decoder_onnx}: not the decoder the head was trained through "
                             f"({ckpt['decoder']}): outputs differ by {dec_err:.2e} > 1e-4 on 1000 random inputs")
        for name, mine, theirs in (("observation mean", norm.obs_mean, dm.observation.mean),
                                   ("observation std", norm.obs_std, dm.observation.std),
                                   ("action mean", norm.act_mean, dm.action.mean),
                                   ("action std", norm.act_std, dm.action.std)):
            if not np.allclose(np.asarray(mine, float), np.asarray(theirs, float), rtol=1e-5, atol=1e-7):
                raise SystemExit(f"--decoder-onnx {decoder_onnx}: its {name} is not that of the decoder the "
                                 f"head was trained through ({ckpt['decoder']})")
        dec_extra = dec_ckpt.get("extra", {})
        # An imported checkpoint's own config is its template's (architecture only): the decoder's
        # training is what the .onnx's manifest recorded.
        imported_from = dec_extra.get("imported_from")
        made_by = dm.provenance.metrics if imported_from else {
            "config": dec_ckpt.get("config", {}), "train_command": dec_extra.get("command", ""),
            "demos_sha256": dec_extra.get("demos_sha256")}
        if made.get("demos"):
            metrics |= {"demos": made["demos"], "demos_sha256": made.get("demos_sha256")}
        if made.get("updates") is not None:
            metrics["train_updates"] = made["updates"]  # saved along a longer run (--save-head-every)
        metrics |= {"decoder_parity_max_abs_err": dec_err, "decoder_config": made_by.get("config", {}),
                    "decoder_train_command": made_by.get("train_command", ""),
                    "decoder_demos_sha256": made_by.get("demos_sha256")}
        if imported_from:
            metrics["decoder_imported_from"] = imported_from
        m = write_manifest(path, kind="head", name=f"pick_place_{ckpt['head_type']}",
                           head_type=ckpt["head_type"], latent_geometry=dm.latent_geometry,
                           trust_region_delta=ckpt["config"].get("trust_region_delta"),
                           latent_projection=_projection(ckpt["head_type"], config, dm.latent_geometry),
                           noise_input=noise_input,
                           decoder_onnx=decoder_onnx, seed=ckpt.get("seed"), **common)
    print(f"{path} (+ {Path(path).with_suffix('.json').name}): parity {err:.2e}, sha256 {m.onnx_sha256[:12]}")


def cmd_evaluate(a: Evaluate, command: str) -> None:
    from lps_steering.core.manifest import load_manifest, manifest_path_for

    from lps_train.pick_place.evaluation import evaluate, paired_with_base

    heads_dir = Path(a.decoder).parent / "heads"

    def onnx_of(h: str) -> str:
        return h if h.endswith(".onnx") else str(heads_dir / f"{h}.onnx")

    results = [evaluate(a.decoder, "" if h == "none" else onnx_of(h), a.episodes, a.profile, a.seed, label=h)
               for h in a.head]
    base = next((r for r in results if r.head == "none"), None)
    print(f"\npick_place, profile {a.profile}, {a.episodes} episodes (seeds {a.seed}..{a.seed + a.episodes - 1}),"
          " SteeringController + ONNX Runtime")
    print(f"{'head':<8} {'success':>8} {'95% Wilson':>16} {'vs base':>8} {'holds':>6} {'wall s':>7}")
    for r in results:
        diff = f"{100 * (r.success_rate - base.success_rate):+.0f} pt" if base is not None else ""
        print(f"{r.head:<8} {100 * r.success_rate:>7.0f}% {100 * r.wilson_low:>7.1f}-{100 * r.wilson_high:.1f}% "
              f"{diff:>8} {r.holds:>6} {r.wall_s:>7.0f}")
    paired = {r.head: paired_with_base(base, r) for r in results if base is not None and r is not base}
    if paired:
        print("\npaired with the base on the same seeds (both / only head / only base / neither; Newcombe 95%, "
              "McNemar mid-p)")
        for h, c in paired.items():
            print(f"{h:<8} {c['both']}/{c['only_head']}/{c['only_base']}/{c['neither']}  "
                  f"{100 * c['difference']:+.1f} pt [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]  "
                  f"p {c['mcnemar_mid_p']:.3g}  {'separated' if c['separated'] else 'not separated'}")
    if a.png:
        _plot_eval(Path(a.png), results, a.profile)
    if a.out:
        save_json(a.out, {"profile": a.profile, "episodes": a.episodes, "seed": a.seed, "command": command,
                          "results": [r.to_dict() for r in results], "paired_with_base": paired})
        write_run_config(a.out, a, command)
    if a.record:
        for h, r in zip(a.head, results, strict=True):
            onnx = a.decoder if h == "none" else onnx_of(h)
            m = load_manifest(onnx)
            m.provenance.metrics[f"eval_{a.profile}"] = r.to_dict() | {
                "seed": a.seed, "command": command,
                "base_success_rate": base.success_rate if base is not None else None} | (
                {"paired_with_base": paired[r.head]} if r.head in paired else {})
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




def cmd_import_decoder(a: ImportDecoder, command: str) -> None:
    from lps_train.export import import_decoder

    try:
        ckpt = import_decoder(a.onnx, torch.load(a.like, map_location="cpu", weights_only=False))
    except (ValueError, OSError) as e:
        raise SystemExit(str(e)) from None
    ckpt["extra"]["command"] = command
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, a.out)
    print(f"{a.out}: the weights of {a.onnx} (sha256 {ckpt['extra']['onnx_sha256'][:12]}) in {a.like}'s architecture")


def cmd_convert(a: Convert, command: str) -> None:
    from lps_train.offline import format as fmt

    t0 = time.perf_counter()
    try:
        if a.source == "lerobot":
            from lps_train.offline.lerobot import convert

            if len(a.input) != 1:
                raise SystemExit(f"--input: one LeRobot folder, got {len(a.input)} paths")
            data = convert(a.input[0], a.observation_keys, a.action_key)
        elif a.source == "ogbench":
            from lps_train.offline.ogbench import convert_npz

            if len(a.input) != 1:
                raise SystemExit(f"--input: one OGBench .npz, got {len(a.input)} paths")
            data = convert_npz(a.input[0], a.task)
        elif a.source == "pick-place":
            from lps_train.offline.pick_place import convert_datasets

            data = convert_datasets(list(a.input))
        else:
            from lps_train.offline.mcap import convert_recordings

            data = convert_recordings(list(a.input), decoder_onnx=a.decoder_onnx or None, namespace=a.namespace)
    except fmt.DatasetError as e:
        raise SystemExit(str(e)) from None
    data.source["command"] = command
    fmt.save(data, a.out)
    print(f"{a.out}: {data.num_steps} steps in {data.num_episodes} episodes, success {data.success.mean():.2f}, "
          f"{time.perf_counter() - t0:.1f} s")


def train_offline(a: TrainOffline, command: str, eval_fn: Any = None, progress: bool = True) -> dict[str, Any]:
    """`lps-train train-offline`, callable with an evaluation hook (training/checks): returns the export
    report plus wall time and steps/s."""
    from lps_train.offline import format as fmt
    from lps_train.offline.chunks import ChunkDataset
    from lps_train.offline.export import export_models

    if not a.dataset or not a.out:
        raise SystemExit("train-offline needs --dataset and --out")
    try:
        data = fmt.load(a.dataset)
    except fmt.DatasetError as e:
        raise SystemExit(str(e)) from None
    if a.normalize:
        norm = Normalization.fit(data.observations, data.actions)
    else:
        norm = Normalization.identity(data.observations.shape[1], data.actions.shape[1])
    if a.algo == "dsrl" and a.device != "cpu":
        raise SystemExit("train-offline --algo dsrl trains on the CPU (--device is an LPS setting)")
    if a.algo == "dsrl" and a.checkpoint_every:
        raise SystemExit("--checkpoint-every is an LPS setting (offline DSRL runs in one go)")
    if a.algo == "dsrl" and a.decoder_training != "frozen":
        raise SystemExit("train-offline --algo dsrl steers a frozen decoder: add --decoder-training frozen")
    chunks = ChunkDataset(data, a.chunk_length, (a.dsrl if a.algo == "dsrl" else a.lps).gamma, norm)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Logger()
    t0 = time.perf_counter()
    given = None
    if a.decoder_checkpoint:
        if a.decoder_training != "frozen":
            raise SystemExit("--decoder-checkpoint is a frozen decoder: add --decoder-training frozen")
        given, dec_norm, _ = load_decoder(a.decoder_checkpoint)
        if dec_norm.to_dict() != norm.to_dict():
            raise SystemExit(f"--decoder-checkpoint {a.decoder_checkpoint}: its normalisation is not this dataset's "
                             "(it was fitted on other observations or actions)")
    if a.action_bound < 0:
        raise SystemExit(f"--action-bound must be >= 0 (0: unbounded), got {a.action_bound}")
    bounds = None if a.action_bound == 0 else (norm.normalize_actions(np.full(data.actions.shape[1], -a.action_bound)),
                                               norm.normalize_actions(np.full(data.actions.shape[1], a.action_bound)))
    hook = (lambda step, ag: eval_fn(step, ag, norm, data)) if eval_fn else None
    if a.algo == "dsrl":
        if bounds is not None:
            raise SystemExit("--action-bound is an LPS setting (DSRL's decoder outputs are never clipped)")
        if given is None:
            obs, acts = chunks.observations_and_chunks()
            given = meanflow.train(dataclasses.replace(a.meanflow, steps=a.decoder_steps), obs, acts,
                                   progress=progress, logger=log)
        agent, log = dsrl.train_offline(a.dsrl, chunks, given, a.dsrl_steps, progress=progress, logger=log,
                                        eval_fn=hook)
        head_cfg, head_steps, seed = a.dsrl, a.dsrl_steps, a.dsrl.seed
    else:
        try:
            agent, log = lps.train_from_chunks(a.lps, a.meanflow, chunks, a.decoder_training, a.decoder_steps,
                                               progress=progress, logger=log, decoder=given, action_bounds=bounds,
                                               device=a.device, eval_fn=hook,
                                               checkpoint=out / "resume.pt" if a.checkpoint_every else None,
                                               checkpoint_every=a.checkpoint_every)
        except ValueError as e:
            raise SystemExit(str(e)) from None
        head_cfg, head_steps, seed = a.lps, a.lps.steps, a.lps.seed
    wall = time.perf_counter() - t0 - agent.eval_wall_s + getattr(agent, "prior_train_s", 0.0)
    steps = head_steps + (a.decoder_steps if a.decoder_training == "frozen" and a.decoder_checkpoint == "" else 0)
    extra = {"env": data.source.get("converter", ""), "dataset": a.dataset, "rows": len(chunks), "command": command,
             "train_wall_s": round(wall, 1)}
    meanflow.save_decoder(out / "decoder.pt", agent.decoder, norm, a.meanflow, extra=extra)
    torch.save({"head_type": a.algo, "head": agent.actor, "decoder": str(out / "decoder.pt"),
                "config": dataclasses.asdict(head_cfg), "run": dataclasses.asdict(a), "command": command,
                "train_wall_s": round(wall, 1), "seed": seed}, out / f"{a.algo}.pt")
    metrics = {"train_wall_s": round(wall, 1), "gradient_steps": steps, "steps_per_s": round(steps / wall, 2),
               "config": dataclasses.asdict(a)}
    projection = None if a.algo == "lps" else ("sphere" if agent.projects else "none")
    report = export_models(out, agent.decoder, agent.actor, norm, data, a.name or Path(a.dataset).name, command,
                           seed, metrics, head_type=a.algo, latent_projection=projection)
    write_run_config(out / "train_offline", a, command)
    log.save_csv(out / "train.csv")
    keys = [k for k in log.history if k.split("/")[0] in ("values", "losses", "latent", "eval")]
    log.plot(out / "train.png", keys=sorted(keys), title=f"offline {a.algo.upper()} ({Path(a.dataset).name})")
    return report | {"train_wall_s": wall, "steps_per_s": steps / wall, "logger": log, "agent": agent, "norm": norm}


def cmd_train_offline(a: TrainOffline, command: str) -> None:
    r = train_offline(a, command)
    layout = "runtime layout" if r["decoder"]["runtime_layout"] else "benchmark layout (not the robot's sources)"
    print(f"{a.out}: decoder.onnx + heads/{a.algo}.onnx ({layout}), {r['train_wall_s']:.0f} s, "
          f"{r['steps_per_s']:.1f} steps/s")


COMMANDS: dict[str, tuple[type, Any]] = {
    "collect": (Collect, cmd_collect), "train-base": (TrainBase, cmd_train_base),
    "train-head": (TrainHead, cmd_train_head), "lps-rounds": (LpsRounds, cmd_lps_rounds),
    "export": (Export, cmd_export), "import-decoder": (ImportDecoder, cmd_import_decoder),
    "evaluate": (Evaluate, cmd_evaluate), "convert": (Convert, cmd_convert),
    "train-offline": (TrainOffline, cmd_train_offline),
}


def parse(name: str, argv: list[str]) -> Any:
    """The command's settings from `argv`: a `--preset` (and for collect a `--quality`) sets the
    defaults, the other options override single fields."""
    cls, _ = COMMANDS[name]
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset")
    pre.add_argument("--quality")
    known, _ = pre.parse_known_args(argv)
    default = None
    presets = PRESETS.get(name, {})
    if known.preset is not None:
        if known.preset not in presets:
            raise SystemExit(f"--preset must be one of {sorted(presets)} for {name}, got {known.preset!r}")
        default = copy.deepcopy(presets[known.preset])
    if name == "collect" and known.quality is not None:
        from lps_train.pick_place.demos import expert_config

        try:
            expert = expert_config(known.quality)
        except ValueError as e:
            raise SystemExit(str(e)) from None
        default = dataclasses.replace(default or Collect(), quality=known.quality, expert=expert)
    return tyro.cli(cls, args=argv, default=default, prog=f"lps-train {name}", description=cls.__doc__)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {n:<{width}}  {cls.__doc__.splitlines()[0]}" for n, (cls, _) in COMMANDS.items()]
        print(__doc__.split("\n\n")[0] + "\n\nusage: lps-train <command> [--help | --preset NAME | options]\n\n"
              + "\n".join(lines))
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(f"unknown command {argv[0]!r}")
        return 0 if argv else 2
    name = argv[0]
    cfg = parse(name, argv[1:])
    COMMANDS[name][1](cfg, "lps-train " + shlex.join(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
