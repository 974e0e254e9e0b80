"""`lps-train`: collect demonstrations, fit a base decoder, train a steering head, export ONNX.

    lps-train collect     --env four_modes:unequal --episodes 400 --out runs/toy/demos.npz
    lps-train train-base  --demos runs/toy/demos.npz --kind meanflow --steps 20000 --out runs/toy/decoder.pt
    lps-train train-head  --algo lpds --decoder runs/toy/decoder.pt --env four_modes:unequal --out runs/toy/lpds.pt
    lps-train train-head  --algo lps  --decoder runs/toy/decoder.pt --demos runs/toy/demos.npz --out runs/toy/lps.pt
    lps-train export      --checkpoint runs/toy/lpds.pt --out runs/toy/lpds.onnx

Dataset format (`collect`, an .npz of chunk-level transitions, N rows): obs [N, obs_dim] float32
(raw units), actions [N, T_a, action_dim] float32 (raw units), rewards [N], next_obs [N, obs_dim],
dones [N] (1.0 where the episode terminated, not where it was cut by a time limit), goals [N]
(the demonstrator's intent, toy only), plus `env` (the env spec string).

Only the four-mode toy (`four_modes:<variant>`) is wired as an env so far; the MuJoCo pick_place
task still needs a chunk-env adapter (see the training README / report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from lps_train import dsrl, flow, lpds, lps, meanflow
from lps_train.common import Logger, Normalization, NormalizedEnv, ReplayBuffer, load_decoder, save_json


def make_env(spec: str):
    kind, _, variant = spec.partition(":")
    if kind == "four_modes":
        from lps_sim.four_modes import make

        return make(variant or "symmetric")
    raise ValueError(f"`--env` must be 'four_modes:<variant>', got {spec!r}")


def cmd_collect(a: argparse.Namespace) -> None:
    from lps_sim.four_modes import collect_demos

    env = make_env(a.env)
    data = collect_demos(env, a.episodes, a.seed)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, env=a.env, **data)
    print(f"{a.out}: {len(data['obs'])} transitions from {a.episodes} episodes")


def cmd_train_base(a: argparse.Namespace) -> None:
    d = np.load(a.demos)
    norm = Normalization.identity(d["obs"].shape[1], d["actions"].shape[2]) if a.no_normalize \
        else Normalization.fit(d["obs"], d["actions"])
    obs, acts = norm.normalize_obs(d["obs"]), norm.normalize_actions(d["actions"])
    log = Logger()
    if a.kind == "meanflow":
        cfg = meanflow.MeanFlowConfig(seed=a.seed, steps=a.steps, hidden=a.hidden, layers=a.layers, lr=a.lr)
        dec = meanflow.train(cfg, obs, acts, logger=log)
        meanflow.save_decoder(a.out, dec, norm, cfg, extra={"env": str(d["env"])})
    else:
        fcfg = flow.FlowConfig(seed=a.seed, steps=a.steps, hidden=a.hidden, layers=a.layers, lr=a.lr)
        dec = flow.train(fcfg, obs, acts, logger=log)
        flow.save_decoder(a.out, dec, norm, fcfg, extra={"env": str(d["env"])})
    log.plot(Path(a.out).with_suffix(".png"), title=f"{a.kind} base policy")
    print(f"{a.out} (+ .png learning curve)")


def cmd_train_head(a: argparse.Namespace) -> None:
    dec, norm, _ = load_decoder(a.decoder)
    log = Logger()
    if a.algo == "lps":
        if not a.demos:
            raise SystemExit("train-head --algo lps needs --demos (LPS is offline)")
        d = np.load(a.demos)
        data = ReplayBuffer.from_arrays(norm.normalize_obs(d["obs"]), norm.normalize_actions(d["actions"]),
                                        d["rewards"], norm.normalize_obs(d["next_obs"]), d["dones"])
        cfg = lps.LPSConfig(seed=a.seed, steps=a.steps)
        agent, log = lps.train(cfg, data, dec, logger=log)
        head, extra = agent.actor, {}
    else:
        if not a.env:
            raise SystemExit(f"train-head --algo {a.algo} needs --env (it trains online)")
        env = NormalizedEnv(make_env(a.env), norm)
        if a.algo == "lpds":
            cfg = lpds.LPDSConfig(seed=a.seed, total_steps=a.steps, delta=a.delta)
            agent, log = lpds.train(cfg, env, dec, logger=log)
            head, extra = agent.actor, {"trust_region_delta": a.delta}
        else:
            cfg = dsrl.DSRLConfig(seed=a.seed, total_steps=a.steps)
            agent, log = dsrl.train(cfg, env, dec, logger=log)
            head, extra = agent.actor, {}
    torch.save({"head_type": a.algo, "head": head, "decoder": str(a.decoder), "config": vars(cfg) | extra}, a.out)
    log.save_csv(Path(a.out).with_suffix(".csv"))
    log.plot(Path(a.out).with_suffix(".png"), title=f"{a.algo} head")
    print(f"{a.out} (+ .csv, .png learning curves)")


def cmd_export(a: argparse.Namespace) -> None:
    from lps_train.export import export_onnx, parity_check

    ckpt = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    if "decoder_type" in ckpt:
        dec, _, _ = load_decoder(a.checkpoint)
        ex = (torch.zeros(1, dec.obs_dim), torch.zeros(1, dec.latent_dim))
        path = export_onnx(dec, ex, ["observation", "latent"], ["actions"], a.out)
        err = parity_check(dec, path)
    else:
        head = ckpt["head"].eval()
        obs_dim = head.net[0].in_features if hasattr(head, "net") else head.trunk[0].in_features
        out_name = "delta" if ckpt["head_type"] == "lpds" else "latent"
        path = export_onnx(head, (torch.zeros(1, obs_dim),), ["observation"], [out_name], a.out)
        err = parity_check(head, path)
    save_json(Path(a.out).with_suffix(".parity.json"), {"max_abs_err": err})
    print(f"{path}: max |torch - onnxruntime| = {err:.2e}. The manifest needs the task's observation "
          "layout (lps_train.export.write_manifest); the toy has none.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lps-train", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="scripted demonstrations -> .npz")
    c.add_argument("--env", default="four_modes:symmetric")
    c.add_argument("--episodes", type=int, default=400)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True)
    b = sub.add_parser("train-base", help="fit a MeanFlow or flow decoder")
    b.add_argument("--demos", required=True)
    b.add_argument("--kind", choices=["meanflow", "flow"], default="meanflow")
    b.add_argument("--steps", type=int, default=20_000)
    b.add_argument("--hidden", type=int, default=512)
    b.add_argument("--layers", type=int, default=4)
    b.add_argument("--lr", type=float, default=3e-4)
    b.add_argument("--no-normalize", action="store_true", help="identity normalisation (units already ~[-1, 1])")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", required=True)
    h = sub.add_parser("train-head", help="train a steering head against a frozen decoder")
    h.add_argument("--algo", choices=["lps", "lpds", "dsrl"], required=True)
    h.add_argument("--decoder", required=True)
    h.add_argument("--env", help="online algorithms: the env spec")
    h.add_argument("--demos", help="lps: the offline dataset")
    h.add_argument("--steps", type=int, default=20_000)
    h.add_argument("--delta", type=float, default=0.35, help="lpds trust-region radius")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--out", required=True)
    e = sub.add_parser("export", help="checkpoint -> .onnx (+ parity check)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True)
    a = p.parse_args(argv)
    {"collect": cmd_collect, "train-base": cmd_train_base, "train-head": cmd_train_head, "export": cmd_export}[
        a.cmd.replace("_", "-")](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
