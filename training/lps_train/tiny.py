"""Tiny, randomly initialised decoders and heads with real manifests, for tests, demo and benchmarks.

They have the shapes of the real models (observation: arm joints 7 + gripper width 1 + object
position 3; action: 7 joint deltas + gripper width; chunk 8; latent 64) but no training: they
exercise export, loading, validation and the control cycle, not task skill.

The networks are written with the `onnx` helper API from numpy weights, without torch, so the
runtime's tests and the node demo need no torch. `TinyModels.decoder_module` and `head_modules`
rebuild the same networks in torch on first use (parity checks, torch baselines in bench/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from lps_steering.core.manifest import (
    OBSERVATION_SOURCES,
    ActionEntry,
    ActionLayout,
    ObservationEntry,
    ObservationLayout,
)
from onnx import TensorProto, helper, numpy_helper

from lps_train.manifests import write_manifest

CHUNK_LENGTH = 8
# FR3 "ready" pose: a central, collision-free configuration for the observation mean.
READY_Q = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]
OPSET = 17
# onnxruntime reads this IR version and opset; torch's exporter writes the same for these models.
IR_VERSION = 8


def tiny_observation_layout(joint_velocities: bool = False) -> ObservationLayout:
    stats = [("arm_q", "arm_joint_positions", list(READY_Q), [0.5] * 7),
             ("gripper", "gripper_width", [0.04], [0.02]),
             ("object", "object_position", [0.5, 0.0, 0.05], [0.1, 0.1, 0.05])]
    if joint_velocities:
        stats.append(("arm_dq", "arm_joint_velocities", [0.0] * 7, [0.5] * 7))
    return ObservationLayout(entries=[ObservationEntry(name, source, OBSERVATION_SOURCES[source], mean, std)
                                      for name, source, mean, std in stats])


def tiny_action_layout(delta_std: float = 0.02) -> ActionLayout:
    return ActionLayout(
        entries=[ActionEntry("arm_delta", 7, "rad", "joint_position_delta"),
                 ActionEntry("gripper", 1, "m", "gripper_width")],
        mean=[0.0] * 7 + [0.04], std=[delta_std] * 7 + [0.01])


@dataclass
class TinyMLP:
    """Linear layers (weight [out, in], bias [out]) with GELU between them, as numpy arrays."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    @classmethod
    def init(cls, rng: np.random.Generator, n_in: int, n_out: int, hidden: int, layers: int) -> TinyMLP:
        # torch.nn.Linear's default initialisation: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        sizes = [n_in, *([hidden] * layers), n_out]
        ws, bs = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            ws.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
            bs.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
        return cls(ws, bs)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w.T.astype(np.float64) + b
            if i < len(self.weights) - 1:
                x = 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
        return x

    def nodes(self, x: str, prefix: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
        nodes, inits = [], []
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            name = f"{prefix}.{2 * i}"
            # Gemm with the weight as [out, in], as torch's exporter writes a Linear layer.
            inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
            nodes.append(helper.make_node("Gemm", [x, f"{name}.weight", f"{name}.bias"], [f"{name}.out"], transB=1))
            x = f"{name}.out"
            if i < len(self.weights) - 1:  # exact GELU: 0.5 x (1 + erf(x / sqrt 2))
                g = f"{prefix}.gelu{i}"
                nodes += [helper.make_node("Div", [x, "sqrt2"], [f"{g}.s"]),
                          helper.make_node("Erf", [f"{g}.s"], [f"{g}.e"]),
                          helper.make_node("Add", [f"{g}.e", "one"], [f"{g}.p"]),
                          helper.make_node("Mul", [x, f"{g}.p"], [f"{g}.m"]),
                          helper.make_node("Mul", [f"{g}.m", "half"], [f"{g}.out"])]
                x = f"{g}.out"
        return nodes, inits, x

    def torch_sequential(self) -> Any:
        import torch
        from torch import nn

        mods: list[nn.Module] = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            lin = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(b))
            mods.append(lin)
            if i < len(self.weights) - 1:
                mods.append(nn.GELU())
        return nn.Sequential(*mods).eval()


_CONSTANTS = [numpy_helper.from_array(np.array(v, np.float32), n)
              for n, v in (("sqrt2", math.sqrt(2.0)), ("one", 1.0), ("half", 0.5))]


def _save(path: Path, nodes: list, inits: list, inputs: list[tuple[str, int]], output: tuple[str, list]) -> Path:
    graph = helper.make_graph(
        nodes, path.stem,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", d]) for n, d in inputs],
        [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])],
        initializer=[t for t in [*_CONSTANTS, *inits] if t.name in {i for n in nodes for i in n.input}])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lps_train.tiny")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@dataclass
class TinyDecoder:
    """a = Phi(s, w): MLP over [s, w] -> normalised chunk [B, T_a, action_dim]."""

    mlp: TinyMLP
    chunk_length: int
    action_dim: int

    def __call__(self, observation: np.ndarray, latent: np.ndarray) -> np.ndarray:
        out = self.mlp(np.concatenate([observation, latent], axis=-1))
        return out.reshape(-1, self.chunk_length, self.action_dim)

    def save(self, path: Path, obs_dim: int) -> Path:
        nodes, inits, y = self.mlp.nodes("x", "net")
        shape = numpy_helper.from_array(np.array([-1, self.chunk_length, self.action_dim], np.int64), "shape")
        nodes = [helper.make_node("Concat", ["observation", "latent"], ["x"], axis=-1), *nodes,
                 helper.make_node("Reshape", [y, "shape"], ["actions"])]
        return _save(path, nodes, [*inits, shape], [("observation", obs_dim),
                                                    ("latent", self.chunk_length * self.action_dim)],
                     ("actions", ["batch", self.chunk_length, self.action_dim]))

    def torch_module(self) -> Any:
        from torch import nn

        net, t_a, a_dim = self.mlp.torch_sequential(), self.chunk_length, self.action_dim

        class Decoder(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, observation, latent):
                import torch

                return self.net(torch.cat([observation, latent], dim=-1)).reshape(-1, t_a, a_dim)

        return Decoder().eval()


@dataclass
class TinyHead:
    """Steering head s -> latent (lps: on the sphere; dsrl: tanh-bounded) or residual (lpds).

    `noise_input` (dsrl): a sampling head, scale * tanh(net(s) + noise) from the runtime's noise.
    """

    mlp: TinyMLP
    head_type: str
    latent_dim: int
    output_scale: float = 1.0
    noise_input: bool = False

    @property
    def radius(self) -> float:
        return math.sqrt(self.latent_dim)

    def __call__(self, observation: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        x = self.mlp(observation)
        if noise is not None:
            x = x + noise
        if self.head_type == "lps":
            return x * (self.radius / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6))
        if self.head_type == "dsrl":
            return np.tanh(x) * self.output_scale
        return x * self.output_scale

    @property
    def output_name(self) -> str:
        return "delta" if self.head_type == "lpds" else "latent"

    def save(self, path: Path, obs_dim: int) -> Path:
        nodes, inits, y = self.mlp.nodes("observation", "net")
        out = self.output_name
        inits.append(numpy_helper.from_array(np.array(self.output_scale, np.float32), "scale"))  # lpds, dsrl
        if self.head_type == "lps":
            inits += [numpy_helper.from_array(np.array(self.radius, np.float32), "radius"),
                      numpy_helper.from_array(np.array(1e-6, np.float32), "eps")]
            nodes += [helper.make_node("ReduceL2", [y], ["norm"], axes=[-1], keepdims=1),
                      helper.make_node("Max", ["norm", "eps"], ["norm_c"]),
                      helper.make_node("Div", ["radius", "norm_c"], ["gain"]),
                      helper.make_node("Mul", [y, "gain"], [out])]
        elif self.head_type == "dsrl":
            if self.noise_input:
                nodes.append(helper.make_node("Add", [y, "noise"], ["sampled"]))
                y = "sampled"
            nodes += [helper.make_node("Tanh", [y], ["bounded"]), helper.make_node("Mul", ["bounded", "scale"], [out])]
        else:
            nodes.append(helper.make_node("Mul", [y, "scale"], [out]))
        inputs = [("observation", obs_dim), *([("noise", self.latent_dim)] if self.noise_input else [])]
        return _save(path, nodes, inits, inputs, (out, ["batch", self.latent_dim]))

    def torch_module(self) -> Any:
        from torch import nn

        net, head = self.mlp.torch_sequential(), self

        class Head(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, observation, noise=None):
                x = self.net(observation)
                if noise is not None:
                    x = x + noise
                if head.head_type == "lps":
                    return x * (head.radius / x.norm(dim=-1, keepdim=True).clamp_min(1e-6))
                if head.head_type == "dsrl":
                    return x.tanh() * head.output_scale
                return x * head.output_scale

        return Head().eval()


@dataclass
class TinyModels:
    decoder: Path
    heads: dict[str, Path]
    decoder_net: TinyDecoder
    head_nets: dict[str, TinyHead] = field(default_factory=dict)

    @cached_property
    def decoder_module(self) -> Any:
        """The decoder as a torch module with the same weights (imports torch)."""
        return self.decoder_net.torch_module()

    @cached_property
    def head_modules(self) -> dict[str, Any]:
        """The heads as torch modules with the same weights (imports torch)."""
        return {k: h.torch_module() for k, h in self.head_nets.items()}


def build_tiny_models(out_dir: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2,
                      robot: str = "fr3", latent_geometry: str = "sphere",
                      head_types: tuple[str, ...] = ("lps", "lpds", "dsrl"),
                      trust_region_delta: float = 0.35, lpds_scale: float = 0.1,
                      policy_rate_hz: float = 10.0, decoder_name: str = "tiny_decoder",
                      head_hidden: int | None = None, joint_velocities: bool = False,
                      dsrl_noise_input: bool = False) -> TinyModels:
    """Write a tiny decoder and one head per type (with manifests) into `out_dir`.

    `lpds_scale` scales the lpds residual: large values give ||Delta||^2 far beyond the trust
    region, which exercises the run-time guard. `joint_velocities` appends the arm's joint
    velocities to the observation (as `collect --observation state_velocity` does).
    `dsrl_noise_input` makes the dsrl head a sampling one (manifest `noise_input`).
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    obs_layout, act_layout = tiny_observation_layout(joint_velocities), tiny_action_layout()
    obs_dim = obs_layout.dim
    action_dim = sum(e.size for e in act_layout.entries)
    latent_dim = CHUNK_LENGTH * action_dim
    common = dict(observation=obs_layout, action=act_layout, robot=robot, chunk_length=CHUNK_LENGTH,
                  policy_rate_hz=policy_rate_hz, latent_geometry=latent_geometry, seed=seed,
                  command=f"lps_train.tiny.build_tiny_models(seed={seed}, hidden={hidden}, "
                          f"layers={layers})")

    decoder = TinyDecoder(TinyMLP.init(rng, obs_dim + latent_dim, latent_dim, hidden, layers), CHUNK_LENGTH,
                          action_dim)
    dec_path = decoder.save(out_dir / f"{decoder_name}.onnx", obs_dim)
    write_manifest(dec_path, kind="decoder", name=decoder_name, decoder_type="meanflow", **common)

    heads, nets = {}, {}
    for head_type in head_types:
        scale = lpds_scale if head_type == "lpds" else 1.0
        noise_input = dsrl_noise_input and head_type == "dsrl"
        head = TinyHead(TinyMLP.init(rng, obs_dim, latent_dim, head_hidden or hidden, layers), head_type,
                        latent_dim, scale, noise_input)
        path = head.save(out_dir / f"tiny_head_{head_type}.onnx", obs_dim)
        write_manifest(path, kind="head", name=f"tiny_head_{head_type}", head_type=head_type,
                       trust_region_delta=trust_region_delta if head_type == "lpds" else None,
                       noise_input=noise_input,
                       decoder_onnx=dec_path, **common)
        heads[head_type], nets[head_type] = path, head
    return TinyModels(decoder=dec_path, heads=heads, decoder_net=decoder, head_nets=nets)
