"""Loaded models and `SteeredPolicy`: head(s) -> latent w; decoder(s, w) -> action chunk.

Head types:
    none  w = eps                     the frozen base policy
    lps   w = head(s)                 latent actor (LPS)
    lpds  w = eps + Delta(s)          noise residual (LP-DS), optional run-time trust-region guard
    dsrl  w = head(s[, xi])           latent policy replacing the base noise (DSRL); a stochastic
                                      one samples from standard-normal xi fed by the runtime
eps and xi are drawn from a seeded numpy Generator: eps Gaussian, or on the sphere of radius
sqrt(d) when the decoder's latent_geometry is "sphere". A head whose manifest says
`latent_projection: sphere` has its w scaled onto that sphere before the decoder sees it.

A head that passes every manifest check can still be wrong (NaN weights, a residual trained
without its trust region): `check_head_outputs` runs it on probe observations at load time and
refuses it before it is installed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .manifest import Manifest, ManifestError, latent_projection_of, load_manifest
from .sessions import create_session, warm_up

_ORT_DTYPES = {"float32": "tensor(float)"}

# The head type, and the value of the node's `steering_head` parameter, meaning "no head: the
# frozen base policy, w = eps".
NO_HEAD = "none"

# Default run-time guard of LP-DS heads, as a multiple of the head's trust region delta. The
# trust region bounds the *mean* ||Delta||^2; single states exceed it. In `make demo` (through ROS,
# 28 LP-DS episodes) the shipped head (delta = 4) gave ||Delta||^2 mean 2.1 and p95 7.5, i.e. 0.5 and
# 1.9 delta (training/checks/results/make_demo/make_demo_report.md); the fault suite's
# `guard_on_by_default` probe (`scripts/with-env python scripts/fault_probes.py --only guard`)
# counts the cycles a guard scales: 0. A guard of 6 delta leaves the head's success unchanged, while
# a head whose residual runs away off its training distribution is held to ||Delta|| <= sqrt(6 delta)
# (4.9 for the shipped head, against the latent sphere's radius 8).
DEFAULT_GUARD = 6.0

# A head whose warm-up residuals average more than this many times its declared trust region is
# refused at load. The probes are the mean observation and standard-normal (normalised)
# observations, wider than real states: the shipped head averages 0.9 delta on them (single
# probes up to 11 delta), a head scaled by 10 (100 x ||Delta||^2) averages ~90 delta.
WARMUP_TRUST_FACTOR = 10.0
WARMUP_PROBES = 16


class HeadRefused(ValueError):
    """A head's outputs at load time show it must not steer (non-finite, or far off its trust region)."""


@dataclass(frozen=True)
class LoadedModel:
    """A validated model: manifest, live session, file hash and a short id for telemetry."""

    manifest: Manifest
    session: ort.InferenceSession
    sha256: str
    path: str

    @property
    def model_id(self) -> str:
        return f"{self.manifest.name}@{self.sha256[:12]}"


@dataclass
class PolicyOutput:
    """One inference: actions in raw units [T_a, action_dim] and what steering did."""

    actions: np.ndarray
    latent: np.ndarray
    delta_sq_norm: float
    guard_scale: float
    latent_norm: float
    inference_ms: float


def _check_session_io(m: Manifest, session: ort.InferenceSession, path: str) -> None:
    """The manifest must describe the network that is really in the file."""
    for label, declared, real in (("inputs", m.inputs, session.get_inputs()),
                                  ("outputs", m.outputs, session.get_outputs())):
        real_names = [r.name for r in real]
        if real_names != [d.name for d in declared]:
            raise ManifestError(f"{path}: `{label}` names must match the ONNX graph ({real_names}), "
                                f"got {[d.name for d in declared]}")
        for i, (d, r) in enumerate(zip(declared, real, strict=True)):
            real_shape = [s if isinstance(s, int) and s > 0 else -1 for s in r.shape]
            if real_shape != d.shape:
                raise ManifestError(f"{path}: `{label}[{i}].shape` must match the ONNX graph "
                                    f"({real_shape}), got {d.shape}")
            if r.type != _ORT_DTYPES.get(d.dtype):
                raise ManifestError(f"{path}: `{label}[{i}].dtype` must match the ONNX graph "
                                    f"({r.type}), got {d.dtype}")


def load_model(onnx_path: str | Path, expected_kind: str,
               providers: Sequence[str] = ("CPUExecutionProvider",), allow_fallback: bool = False,
               intra_op_threads: int = 1, warmup_runs: int = 10) -> LoadedModel:
    """Load manifest + session, check they agree, warm the session up.

    Raises:
        ManifestError: invalid manifest, wrong kind, hash mismatch, or manifest/graph mismatch.
        ProviderError: the session does not run on the requested providers.
        ModelLoadError: the ONNX file cannot be parsed.
    """
    path = str(onnx_path)
    manifest = load_manifest(path)
    if manifest.kind != expected_kind:
        raise ManifestError(f"{path}: `kind` must be {expected_kind!r}, got {manifest.kind!r}")
    session = create_session(path, providers, allow_fallback, intra_op_threads)
    _check_session_io(manifest, session, path)
    if warmup_runs > 0:
        warm_up(session, warmup_runs)
    return LoadedModel(manifest=manifest, session=session, sha256=manifest.onnx_sha256, path=path)


def check_head_outputs(head: LoadedModel, probes: int = WARMUP_PROBES, seed: int = 0) -> None:
    """Run the head on probe observations; refuse it if its outputs cannot be trusted.

    Probes: the layout's mean observation (zero after normalisation) and `probes` seeded
    standard-normal normalised observations; images, if any, are zeros. Every output must be
    finite; an lpds head's mean ||Delta||^2 over the probes must stay within
    WARMUP_TRUST_FACTOR x its declared trust_region_delta.

    Raises:
        HeadRefused: naming the head, the check and the values.
    """
    m = head.manifest
    session = head.session
    rng = np.random.default_rng(seed)
    observations = np.concatenate([np.zeros((1, m.obs_dim)), rng.standard_normal((probes, m.obs_dim))])
    images = {im.name: np.zeros((1, im.channels, *im.output_hw), dtype=np.float32)
              for im in m.observation.images}
    noise = ({"noise": rng.standard_normal((1, m.latent_dim)).astype(np.float32)} if m.noise_input else {})
    out_name = session.get_outputs()[0].name
    sq = []
    for k, obs in enumerate(observations.astype(np.float32)):
        try:
            out = session.run([out_name], {"observation": obs[None, :], **images, **noise})[0]
        except Exception as exc:  # onnxruntime raises several private exception types
            raise HeadRefused(f"{head.path}: the head fails on a probe observation: "
                              f"{type(exc).__name__}: {exc}") from None
        value = float(np.sum(np.square(out, dtype=np.float64)))
        if not math.isfinite(value):
            raise HeadRefused(f"{head.path}: the head's output is not finite on probe {k} "
                              f"({'the mean observation' if k == 0 else 'a normalised N(0, 1) observation'}): "
                              "its weights or graph are broken")
        sq.append(value)
    if m.head_type == "lpds" and m.trust_region_delta is not None:
        delta = float(m.trust_region_delta)
        mean = float(np.mean(sq))
        if mean > WARMUP_TRUST_FACTOR * delta:
            raise HeadRefused(f"{head.path}: mean ||Delta||^2 over {len(sq)} probe observations is "
                              f"{mean:.3g}, more than {WARMUP_TRUST_FACTOR:g} x its trust_region_delta "
                              f"({delta:g}): the residual is far outside the region it declares")


def check_head_matches(decoder: LoadedModel, head: LoadedModel) -> None:
    """A head may only steer the exact decoder it was trained against, with the same layouts."""
    d, h = decoder.manifest, head.manifest
    where = head.path
    if d.kind != "decoder":
        raise ManifestError(f"{decoder.path}: `kind` must be 'decoder', got {d.kind!r}")
    if h.kind != "head":
        raise ManifestError(f"{where}: `kind` must be 'head', got {h.kind!r}")
    if h.decoder_sha256 != decoder.sha256:
        raise ManifestError(f"{where}: `decoder_sha256` must equal the loaded decoder's "
                            f"({decoder.sha256}), got {h.decoder_sha256!r}: the head was trained "
                            "against another decoder")
    for name in ("robot", "chunk_length", "action_dim", "latent_dim", "latent_geometry"):
        if getattr(h, name) != getattr(d, name):
            raise ManifestError(f"{where}: `{name}` must equal the decoder's ({getattr(d, name)!r}), "
                                f"got {getattr(h, name)!r}")
    if h.observation != d.observation:
        for i, (he, de) in enumerate(zip(h.observation.entries, d.observation.entries, strict=False)):
            if he != de:
                raise ManifestError(f"{where}: `observation.entries[{i}]` must equal the decoder's "
                                    f"({de.name}/{de.source}), got {he.name}/{he.source} "
                                    "(or different statistics)")
        raise ManifestError(f"{where}: `observation` must equal the decoder's layout "
                            f"({[e.source for e in d.observation.entries]}, "
                            f"{len(d.observation.images)} images), got "
                            f"{[e.source for e in h.observation.entries]}, "
                            f"{len(h.observation.images)} images")
    if h.action != d.action:
        raise ManifestError(f"{where}: `action` must equal the decoder's action layout, got a "
                            "different one")


@dataclass(frozen=True)
class _HeadSlot:
    """Everything infer() needs about the head, swapped as one reference."""

    model: LoadedModel | None
    head_type: str
    trust_region_delta: float
    binding: ort.IOBinding | None = None  # inputs: the policy's buffers; output: `output`
    output: np.ndarray | None = None      # [1, latent_dim], written by each head run
    project: bool = False                 # w onto the decoder's sphere (latent_projection "sphere")
    noise: np.ndarray | None = None       # [1, latent_dim] standard normal fed to a sampling head


def bind_buffers(session: ort.InferenceSession, inputs: Mapping[str, np.ndarray], output_name: str,
                 output: np.ndarray) -> ort.IOBinding:
    """Bind preallocated buffers to a session: runs then read and write them in place.

    Saves ONNX Runtime's per-call feed conversion and output allocation, a fixed cost that is a
    sizeable share of a sub-0.1 ms decoder call. The buffers must stay alive and keep their address.
    """
    binding = session.io_binding()
    for name, buf in inputs.items():
        binding.bind_cpu_input(name, buf)
    binding.bind_output(output_name, "cpu", 0, output.dtype, list(output.shape), output.ctypes.data)
    return binding


class SteeredPolicy:
    """Steered inference on ONNX Runtime with preallocated buffers.

    Args:
        decoder: the frozen decoder.
        head: a steering head validated with check_head_matches, or None (w = eps).
        guard: lpds run-time guard; if > 0 and ||Delta||^2 > guard * delta, Delta is scaled
            so that ||Delta||^2 = guard * delta. 0 disables.
        seed: seed of the base noise generator.
    """

    def __init__(self, decoder: LoadedModel, head: LoadedModel | None = None, guard: float = 0.0,
                 seed: int = 0) -> None:
        m = decoder.manifest
        if m.kind != "decoder":
            raise ManifestError(f"{decoder.path}: `kind` must be 'decoder', got {m.kind!r}")
        if not math.isfinite(guard) or guard < 0:
            raise ValueError(f"`guard` must be >= 0, got {guard!r}")
        self.decoder = decoder
        self.guard = float(guard)
        self._rng = np.random.default_rng(seed)
        self._sphere = m.latent_geometry == "sphere"
        self._radius = math.sqrt(m.latent_dim)
        obs_mean = np.asarray(m.observation.mean, dtype=np.float32)
        obs_std = np.asarray(m.observation.std, dtype=np.float32)
        self._obs_mean = obs_mean[None, :]
        self._obs_inv_std = (1.0 / obs_std)[None, :]
        self._act_mean = np.asarray(m.action.mean, dtype=np.float32)
        self._act_std = np.asarray(m.action.std, dtype=np.float32)
        self._obs = np.zeros((1, m.obs_dim), dtype=np.float32)
        self._eps = np.zeros((1, m.latent_dim), dtype=np.float32)
        self._w = np.zeros((1, m.latent_dim), dtype=np.float32)
        self._image_names = [im.name for im in m.observation.images]
        self._images = {im.name: np.zeros((1, im.channels, *im.output_hw), dtype=np.float32)
                        for im in m.observation.images}
        self._decoder_feeds = {"observation": self._obs, **self._images, "latent": self._w}
        self._head_feeds = {"observation": self._obs, **self._images}
        self._actions = np.zeros((1, m.chunk_length, m.action_dim), dtype=np.float32)
        self._decoder_binding = bind_buffers(decoder.session, self._decoder_feeds, "actions", self._actions)
        self._slot = _HeadSlot(None, NO_HEAD, math.nan)
        self.swap_head(head)

    @property
    def head_type(self) -> str:
        return self._slot.head_type

    @property
    def head(self) -> LoadedModel | None:
        return self._slot.model

    def swap_head(self, head: LoadedModel | None) -> None:
        """Replace the head (None = base policy) by one reference assignment.

        The head is checked against the decoder first (cheap, no inference), so an unchecked
        head can never be installed.
        """
        if head is None:
            self._slot = _HeadSlot(None, NO_HEAD, math.nan)
            return
        check_head_matches(self.decoder, head)
        hm = head.manifest
        delta = float(hm.trust_region_delta) if hm.trust_region_delta is not None else math.nan
        name = head.session.get_outputs()[0].name
        output = np.zeros((1, hm.latent_dim), dtype=np.float32)
        noise = np.zeros((1, hm.latent_dim), dtype=np.float32) if hm.noise_input else None
        feeds = self._head_feeds if noise is None else {**self._head_feeds, "noise": noise}
        binding = bind_buffers(head.session, feeds, name, output)
        self._slot = _HeadSlot(head, hm.head_type, delta, binding, output,
                               project=latent_projection_of(hm) == "sphere", noise=noise)

    def reseed(self, seed: int) -> None:
        """Restart the base noise stream (e.g. after warm-up, so `seed` fixes the first real draw)."""
        self._rng = np.random.default_rng(seed)

    def sample_noise(self) -> np.ndarray:
        """Draw base noise eps into the internal buffer and return it ([1, latent_dim])."""
        eps = self._eps
        self._rng.standard_normal(dtype=np.float32, out=eps)
        if self._sphere:
            eps *= self._radius / max(float(np.sqrt(np.dot(eps[0], eps[0]))), 1e-12)
        return eps

    def infer(self, observation: np.ndarray,
              images: Mapping[str, np.ndarray] | None = None) -> PolicyOutput:
        """One steered inference from a raw observation vector (manifest order, raw units).

        Raises:
            ValueError: the observation has the wrong size, or an image is missing or misshapen.
        """
        t0 = time.perf_counter()
        obs = self._obs
        if np.shape(observation) != (obs.shape[1],):
            raise ValueError(f"`observation` must have shape ({obs.shape[1]},), got "
                             f"{np.shape(observation)}")
        obs[0] = observation
        obs -= self._obs_mean
        obs *= self._obs_inv_std
        for name in self._image_names:
            frame = images.get(name) if images is not None else None
            buf = self._images[name]
            if frame is None or frame.shape != buf.shape[1:]:
                raise ValueError(f"image `{name}` must have shape {buf.shape[1:]}, got "
                                 f"{None if frame is None else frame.shape}")
            buf[0] = frame

        slot = self._slot  # one read: a concurrent swap_head affects the next call only
        w = self._w
        delta_sq = math.nan
        guard_scale = math.nan
        if slot.head_type == NO_HEAD:
            w[...] = self.sample_noise()
        elif slot.head_type == "lpds":
            slot.model.session.run_with_iobinding(slot.binding)
            delta = slot.output
            delta_sq = float(np.dot(delta[0], delta[0]))
            guard_scale = 1.0
            if self.guard > 0.0:
                bound = self.guard * slot.trust_region_delta
                if delta_sq > bound:
                    guard_scale = math.sqrt(bound / delta_sq)
                    delta *= guard_scale
                    delta_sq = bound
            np.add(self.sample_noise(), delta, out=w)
        else:  # lps, dsrl: the head chooses the latent
            if slot.noise is not None:
                self._rng.standard_normal(dtype=np.float32, out=slot.noise)
            slot.model.session.run_with_iobinding(slot.binding)
            w[...] = slot.output
        if slot.project:
            w *= self._radius / max(float(np.sqrt(np.dot(w[0], w[0]))), 1e-12)
        w_sq = float(np.dot(w[0], w[0]))  # one pass: the norm for telemetry, and NaN/inf show up in it
        if not math.isfinite(w_sq):
            raise FloatingPointError(f"latent is not finite (head {slot.head_type})")

        self.decoder.session.run_with_iobinding(self._decoder_binding)
        actions = self._actions[0].copy()  # callers keep chunks; the buffer is rewritten next call
        actions *= self._act_std
        actions += self._act_mean
        if not math.isfinite(float(actions.sum())):  # any NaN or inf makes the sum non-finite
            raise FloatingPointError("decoder produced non-finite actions")
        return PolicyOutput(actions=actions, latent=w[0].copy(), delta_sq_norm=delta_sq,
                            guard_scale=guard_scale, latent_norm=math.sqrt(w_sq),
                            inference_ms=(time.perf_counter() - t0) * 1e3)
