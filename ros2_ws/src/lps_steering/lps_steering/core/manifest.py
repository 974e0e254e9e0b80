"""Model manifest: the JSON file beside every exported ONNX network, as validated dataclasses.

`decoder.onnx` travels with `decoder.json`. `load_manifest` refuses anything it cannot vouch for
with a `ManifestError` naming the field, the expected value and the value found; nothing runs
from a manifest that did not pass here. The schema is documented in docs/architecture.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .robot import ROBOTS

FORMAT_VERSION = 1
KINDS = ("decoder", "head")
DECODER_TYPES = ("meanflow", "flow", "ddim")
HEAD_TYPES = ("lps", "lpds", "dsrl")
LATENT_GEOMETRIES = ("sphere", "gaussian")
# What the runtime does to a head's latent (lps, dsrl) or to eps + Delta (lpds) before the
# decoder sees it: "sphere" scales it onto the decoder's sphere of radius sqrt(d), where that
# decoder was trained; "none" passes it as it is.
LATENT_PROJECTIONS = ("sphere", "none")
# The observation vocabulary shared by the runtime, the sim and training: sources, their sizes and
# units. tcp_position is forward kinematics of the arm joints.
OBSERVATION_SOURCES: dict[str, int] = {
    "arm_joint_positions": 7,
    "arm_joint_velocities": 7,
    "gripper_width": 1,
    "tcp_position": 3,
    "object_position": 3,
    "target_position": 3,
}
OBSERVATION_UNITS: dict[str, str] = {
    "arm_joint_positions": "rad",
    "arm_joint_velocities": "rad/s",
    "gripper_width": "m",
    "tcp_position": "m",
    "object_position": "m",
    "target_position": "m",
}
ACTION_MODES: dict[str, int] = {"joint_position_delta": 7, "gripper_width": 1}
DTYPES = ("float32",)
POLICY_RATE_RANGE_HZ = (1.0, 200.0)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """A manifest (or the model it describes) is invalid; the message names field, expected, got."""


def _fail(field_name: str, expected: str, got: Any, where: str = "") -> ManifestError:
    prefix = f"{where}: " if where else ""
    return ManifestError(f"{prefix}`{field_name}` must be {expected}, got {got!r}")


@dataclass
class TensorSpec:
    """One ONNX input or output: name, shape (-1 for the batch axis) and dtype."""

    name: str
    shape: list[int]
    dtype: str = "float32"


@dataclass
class ObservationEntry:
    """A slice of the flat observation vector, with the statistics that normalise it."""

    name: str
    source: str
    size: int
    mean: list[float]
    std: list[float]


@dataclass
class ImagePreprocessing:
    """How a camera frame becomes a network input; applied by observation.preprocess_image.

    crop: [x, y, width, height] in pixels of the raw frame, or None. resize: [height, width] of
    the network input, or None. Pixels are multiplied by `scale`, then (p - mean) / std per channel.
    """

    crop: list[int] | None = None
    resize: list[int] | None = None
    scale: float = 1.0 / 255.0
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])


@dataclass
class ImageEntry:
    """A camera input: raw frame size on `topic`, and its preprocessing."""

    name: str
    topic: str
    height: int
    width: int
    channels: int
    preprocessing: ImagePreprocessing = field(default_factory=ImagePreprocessing)

    @property
    def output_hw(self) -> tuple[int, int]:
        p = self.preprocessing
        if p.resize is not None:
            return int(p.resize[0]), int(p.resize[1])
        if p.crop is not None:
            return int(p.crop[3]), int(p.crop[2])
        return self.height, self.width


@dataclass
class ObservationLayout:
    entries: list[ObservationEntry]
    images: list[ImageEntry] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def mean(self) -> list[float]:
        """The entries' normalisation means, concatenated in layout order (length `dim`)."""
        return [x for e in self.entries for x in e.mean]

    @property
    def std(self) -> list[float]:
        return [x for e in self.entries for x in e.std]


@dataclass
class ActionEntry:
    name: str
    size: int
    units: str
    mode: str


@dataclass
class ActionLayout:
    entries: list[ActionEntry]
    mean: list[float]
    std: list[float]


@dataclass
class Provenance:
    """How the artifact was made, so any shipped model can be traced to a command and commit."""

    command: str = ""
    seed: int | None = None
    commit: str = ""
    created: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    format_version: int
    kind: str
    name: str
    onnx_sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    observation: ObservationLayout
    action: ActionLayout
    robot: str
    chunk_length: int
    action_dim: int
    policy_rate_hz: float
    latent_dim: int
    latent_geometry: str
    decoder_type: str | None = None
    head_type: str | None = None
    trust_region_delta: float | None = None
    decoder_sha256: str | None = None
    # Heads only. Absent: the head type's default (lps heads onto a sphere decoder's sphere, the
    # others unprojected); `latent_projection_of` resolves it.
    latent_projection: str | None = None
    # Heads only: the head samples its latent from standard-normal `noise` the runtime feeds it
    # (an extra input [B, latent_dim]), as a stochastic DSRL actor is evaluated.
    noise_input: bool = False
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def obs_dim(self) -> int:
        return self.observation.dim

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # Fields that do not apply to this kind are left out rather than written as null.
        for key in ("decoder_type", "head_type", "trust_region_delta", "decoder_sha256", "latent_projection"):
            if d[key] is None:
                del d[key]
        if not d["noise_input"]:
            del d["noise_input"]
        return d

    def save(self, json_path: str | Path) -> None:
        self.validate(where=str(json_path))
        Path(json_path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def validate(self, where: str = "") -> None:
        """Check internal consistency; raises ManifestError naming the first bad field."""
        _validate(self, where)


def manifest_path_for(onnx_path: str | Path) -> Path:
    """`model.onnx` -> `model.json` (the manifest travels beside the network)."""
    return Path(onnx_path).with_suffix(".json")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(onnx_path: str | Path, verify_sha: bool = True) -> Manifest:
    """Read and validate the manifest of `onnx_path`; with verify_sha, check the file's hash too.

    Raises:
        ManifestError: missing files, bad JSON, any invalid field, or a hash mismatch.
    """
    onnx_path = Path(onnx_path)
    json_path = manifest_path_for(onnx_path)
    if onnx_path.suffix != ".onnx":
        raise _fail("path", "a .onnx file", str(onnx_path))
    if not onnx_path.is_file():
        raise ManifestError(f"model file not found: {onnx_path}")
    if not json_path.is_file():
        raise ManifestError(f"manifest not found: expected {json_path} beside {onnx_path.name}")
    try:
        data = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{json_path}: not valid JSON ({exc})") from exc
    manifest = from_dict(data, where=str(json_path))
    if verify_sha:
        actual = sha256_file(onnx_path)
        if actual != manifest.onnx_sha256:
            raise ManifestError(
                f"{json_path}: `onnx_sha256` must match the file {onnx_path.name} ({actual}), got "
                f"{manifest.onnx_sha256!r}: the .onnx is corrupt or not the one this manifest describes")
    return manifest


# ---------------------------------------------------------------------------- parsing
def _take(d: dict[str, Any], key: str, where: str, ctx: str, types: type | tuple[type, ...],
          default: Any = ..., expected: str = "") -> Any:
    name = f"{ctx}{key}"
    if key not in d:
        if default is ...:
            raise ManifestError(f"{where + ': ' if where else ''}`{name}` is missing")
        return default
    value = d[key]
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in _as_tuple(types))
    if not ok:
        raise _fail(name, expected or f"of type {_type_names(types)}", value, where)
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _as_tuple(types))


def _floats(value: Any, name: str, where: str) -> list[float]:
    if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise _fail(name, "a list of numbers", value, where)
    return [float(v) for v in value]


def _check_keys(d: dict[str, Any], allowed: set[str], ctx: str, where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise _fail(f"{ctx}{unknown[0]}", f"one of the known fields {sorted(allowed)}", unknown[0], where)


def _tensor(d: Any, ctx: str, where: str) -> TensorSpec:
    if not isinstance(d, dict):
        raise _fail(ctx.rstrip("."), "an object {name, shape, dtype}", d, where)
    _check_keys(d, {"name", "shape", "dtype"}, ctx, where)
    shape = _take(d, "shape", where, ctx, list)
    if not all(isinstance(s, int) and not isinstance(s, bool) and (s > 0 or s == -1) for s in shape):
        raise _fail(f"{ctx}shape", "a list of positive ints (-1 for the batch axis)", shape, where)
    return TensorSpec(name=_take(d, "name", where, ctx, str), shape=list(shape),
                      dtype=_take(d, "dtype", where, ctx, str, "float32"))


def from_dict(data: Any, where: str = "") -> Manifest:
    """Build a Manifest from parsed JSON and validate it."""
    if not isinstance(data, dict):
        raise _fail("manifest", "a JSON object", type(data).__name__, where)
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise _fail("format_version", str(FORMAT_VERSION), version, where)
    top = {f for f in Manifest.__dataclass_fields__}
    _check_keys(data, top, "", where)

    obs_d = _take(data, "observation", where, "", dict)
    _check_keys(obs_d, {"entries", "images"}, "observation.", where)
    entries = []
    for i, e in enumerate(_take(obs_d, "entries", where, "observation.", list)):
        ctx = f"observation.entries[{i}]."
        if not isinstance(e, dict):
            raise _fail(ctx[:-1], "an object", e, where)
        _check_keys(e, {"name", "source", "size", "mean", "std"}, ctx, where)
        entries.append(ObservationEntry(
            name=_take(e, "name", where, ctx, str), source=_take(e, "source", where, ctx, str),
            size=_take(e, "size", where, ctx, int),
            mean=_floats(_take(e, "mean", where, ctx, list), ctx + "mean", where),
            std=_floats(_take(e, "std", where, ctx, list), ctx + "std", where)))
    images = []
    for i, e in enumerate(_take(obs_d, "images", where, "observation.", list, [])):
        ctx = f"observation.images[{i}]."
        if not isinstance(e, dict):
            raise _fail(ctx[:-1], "an object", e, where)
        _check_keys(e, {"name", "topic", "height", "width", "channels", "preprocessing"}, ctx, where)
        p = _take(e, "preprocessing", where, ctx, dict, {})
        pctx = ctx + "preprocessing."
        _check_keys(p, {"crop", "resize", "scale", "mean", "std"}, pctx, where)
        crop = _take(p, "crop", where, pctx, (list, type(None)), None)
        resize = _take(p, "resize", where, pctx, (list, type(None)), None)
        channels = _take(e, "channels", where, ctx, int)
        pre = ImagePreprocessing(
            crop=crop, resize=resize,
            scale=float(_take(p, "scale", where, pctx, (int, float), 1.0 / 255.0)),
            mean=_floats(_take(p, "mean", where, pctx, list, [0.0] * channels), pctx + "mean", where),
            std=_floats(_take(p, "std", where, pctx, list, [1.0] * channels), pctx + "std", where))
        images.append(ImageEntry(name=_take(e, "name", where, ctx, str),
                                 topic=_take(e, "topic", where, ctx, str),
                                 height=_take(e, "height", where, ctx, int),
                                 width=_take(e, "width", where, ctx, int), channels=channels,
                                 preprocessing=pre))

    act_d = _take(data, "action", where, "", dict)
    _check_keys(act_d, {"entries", "mean", "std"}, "action.", where)
    action_entries = []
    for i, e in enumerate(_take(act_d, "entries", where, "action.", list)):
        ctx = f"action.entries[{i}]."
        if not isinstance(e, dict):
            raise _fail(ctx[:-1], "an object", e, where)
        _check_keys(e, {"name", "size", "units", "mode"}, ctx, where)
        action_entries.append(ActionEntry(name=_take(e, "name", where, ctx, str),
                                          size=_take(e, "size", where, ctx, int),
                                          units=_take(e, "units", where, ctx, str, ""),
                                          mode=_take(e, "mode", where, ctx, str)))
    action = ActionLayout(entries=action_entries,
                          mean=_floats(_take(act_d, "mean", where, "action.", list), "action.mean", where),
                          std=_floats(_take(act_d, "std", where, "action.", list), "action.std", where))

    prov_d = _take(data, "provenance", where, "", dict, {})
    _check_keys(prov_d, set(Provenance.__dataclass_fields__), "provenance.", where)
    provenance = Provenance(
        command=_take(prov_d, "command", where, "provenance.", str, ""),
        seed=_take(prov_d, "seed", where, "provenance.", (int, type(None)), None),
        commit=_take(prov_d, "commit", where, "provenance.", str, ""),
        created=_take(prov_d, "created", where, "provenance.", str, ""),
        metrics=_take(prov_d, "metrics", where, "provenance.", dict, {}))

    trd = _take(data, "trust_region_delta", where, "", (int, float, type(None)), None)
    m = Manifest(
        format_version=version,
        kind=_take(data, "kind", where, "", str),
        name=_take(data, "name", where, "", str),
        onnx_sha256=_take(data, "onnx_sha256", where, "", str),
        inputs=[_tensor(t, f"inputs[{i}].", where)
                for i, t in enumerate(_take(data, "inputs", where, "", list))],
        outputs=[_tensor(t, f"outputs[{i}].", where)
                 for i, t in enumerate(_take(data, "outputs", where, "", list))],
        observation=ObservationLayout(entries=entries, images=images),
        action=action,
        robot=_take(data, "robot", where, "", str),
        chunk_length=_take(data, "chunk_length", where, "", int),
        action_dim=_take(data, "action_dim", where, "", int),
        policy_rate_hz=float(_take(data, "policy_rate_hz", where, "", (int, float))),
        latent_dim=_take(data, "latent_dim", where, "", int),
        latent_geometry=_take(data, "latent_geometry", where, "", str),
        decoder_type=_take(data, "decoder_type", where, "", (str, type(None)), None),
        head_type=_take(data, "head_type", where, "", (str, type(None)), None),
        trust_region_delta=float(trd) if trd is not None else None,
        decoder_sha256=_take(data, "decoder_sha256", where, "", (str, type(None)), None),
        latent_projection=_take(data, "latent_projection", where, "", (str, type(None)), None),
        noise_input=_take(data, "noise_input", where, "", bool, False),
        provenance=provenance,
    )
    _validate(m, where)
    return m


# ---------------------------------------------------------------------------- validation
def expected_io(m: Manifest) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs a network of this kind must have (batch axis -1)."""
    obs = TensorSpec("observation", [-1, m.obs_dim])
    images = [TensorSpec(im.name, [-1, im.channels, *im.output_hw]) for im in m.observation.images]
    if m.kind == "decoder":
        return ([obs, *images, TensorSpec("latent", [-1, m.latent_dim])],
                [TensorSpec("actions", [-1, m.chunk_length, m.action_dim])])
    out_name = "delta" if m.head_type == "lpds" else "latent"
    noise = [TensorSpec("noise", [-1, m.latent_dim])] if m.noise_input else []
    return [obs, *images, *noise], [TensorSpec(out_name, [-1, m.latent_dim])]


def latent_projection_of(m: Manifest) -> str:
    """The projection a head's latent gets before the decoder (see LATENT_PROJECTIONS)."""
    if m.latent_projection is not None:
        return m.latent_projection
    return "sphere" if m.head_type == "lps" and m.latent_geometry == "sphere" else "none"


def _stats_ok(values: list[float], positive: bool) -> bool:
    return all(math.isfinite(v) and (v > 0 if positive else True) for v in values)


def _validate(m: Manifest, where: str) -> None:
    """Every check in order; the first that fails raises a ManifestError naming its field."""
    for check in (_check_identity, _check_kind_fields, _check_timing_and_latent, _check_observation,
                  _check_images, _check_action, _check_io):
        check(m, where)


def _check_identity(m: Manifest, where: str) -> None:
    if m.format_version != FORMAT_VERSION:
        raise _fail("format_version", str(FORMAT_VERSION), m.format_version, where)
    if m.kind not in KINDS:
        raise _fail("kind", f"one of {list(KINDS)}", m.kind, where)
    if not m.name:
        raise _fail("name", "a non-empty string", m.name, where)
    if not _SHA256.match(m.onnx_sha256 or ""):
        raise _fail("onnx_sha256", "64 lowercase hex digits", m.onnx_sha256, where)


def _check_kind_fields(m: Manifest, where: str) -> None:
    """A decoder names its type; a head its type and the decoder it was trained against."""
    if m.kind == "decoder":
        if m.decoder_type not in DECODER_TYPES:
            raise _fail("decoder_type", f"one of {list(DECODER_TYPES)} for a decoder", m.decoder_type, where)
        for name, value, unset in (("head_type", m.head_type, None), ("latent_projection", m.latent_projection, None),
                                   ("noise_input", m.noise_input, False)):
            if value != unset:
                raise _fail(name, "absent for a decoder", value, where)
        return
    if m.head_type not in HEAD_TYPES:
        raise _fail("head_type", f"one of {list(HEAD_TYPES)} for a head", m.head_type, where)
    if m.decoder_type is not None:
        raise _fail("decoder_type", "absent for a head", m.decoder_type, where)
    if not _SHA256.match(m.decoder_sha256 or ""):
        raise _fail("decoder_sha256", "the 64-hex SHA-256 of the decoder the head was trained against",
                    m.decoder_sha256, where)
    if m.latent_projection is not None and m.latent_projection not in LATENT_PROJECTIONS:
        raise _fail("latent_projection", f"one of {list(LATENT_PROJECTIONS)}", m.latent_projection, where)
    if m.latent_projection == "sphere" and m.latent_geometry != "sphere":
        raise _fail("latent_projection", "'none' for a decoder whose latents are not on a sphere",
                    m.latent_projection, where)
    if m.noise_input and m.head_type == "lpds":
        raise _fail("noise_input", "false for an lpds head (the runtime adds its noise outside the head)",
                    m.noise_input, where)
    if m.head_type == "lpds":
        delta = m.trust_region_delta
        if delta is None or not math.isfinite(delta) or delta <= 0:
            raise _fail("trust_region_delta", "a positive number for an lpds head", delta, where)


def _check_timing_and_latent(m: Manifest, where: str) -> None:
    if m.robot not in ROBOTS:
        raise _fail("robot", f"one of {list(ROBOTS)}", m.robot, where)
    if m.chunk_length < 1:
        raise _fail("chunk_length", ">= 1", m.chunk_length, where)
    lo, hi = POLICY_RATE_RANGE_HZ
    if not math.isfinite(m.policy_rate_hz) or not lo <= m.policy_rate_hz <= hi:
        raise _fail("policy_rate_hz", f"in [{lo:g}, {hi:g}] Hz", m.policy_rate_hz, where)
    if m.latent_geometry not in LATENT_GEOMETRIES:
        raise _fail("latent_geometry", f"one of {list(LATENT_GEOMETRIES)}", m.latent_geometry, where)


def _check_observation(m: Manifest, where: str) -> None:
    """Known, unique sources of their fixed sizes, each with finite statistics (std > 0)."""
    if not m.observation.entries:
        raise _fail("observation.entries", "a non-empty list", m.observation.entries, where)
    seen: set[str] = set()
    for i, e in enumerate(m.observation.entries):
        ctx = f"observation.entries[{i}]"
        if e.source not in OBSERVATION_SOURCES:
            raise _fail(f"{ctx}.source", f"one of {list(OBSERVATION_SOURCES)}", e.source, where)
        if e.source in seen:
            raise _fail(f"{ctx}.source", "unique within the observation layout", e.source, where)
        seen.add(e.source)
        if e.size != OBSERVATION_SOURCES[e.source]:
            raise _fail(f"{ctx}.size", f"{OBSERVATION_SOURCES[e.source]} for source {e.source}", e.size, where)
        _check_stats(e.mean, e.std, e.size, ctx, "", where)


def _check_stats(mean: list[float], std: list[float], size: int, ctx: str, count: str, where: str) -> None:
    """`size` finite means and `size` finite stds > 0 (`count` adds why that many)."""
    prefix = f"{ctx}." if ctx else ""
    if len(mean) != size:
        raise _fail(f"{prefix}mean", f"{size} values{count}", len(mean), where)
    if len(std) != size:
        raise _fail(f"{prefix}std", f"{size} values{count}", len(std), where)
    if not _stats_ok(mean, False):
        raise _fail(f"{prefix}mean", "finite values", mean, where)
    if not _stats_ok(std, True):
        raise _fail(f"{prefix}std", "finite values > 0", std, where)


def _check_images(m: Manifest, where: str) -> None:
    for i, im in enumerate(m.observation.images):
        ctx = f"observation.images[{i}]"
        if im.height < 1 or im.width < 1 or im.channels not in (1, 3):
            raise _fail(ctx, "height, width >= 1 and channels 1 or 3", (im.height, im.width, im.channels), where)
        _check_preprocessing(im, f"{ctx}.preprocessing", where)


def _check_preprocessing(im: ImageEntry, ctx: str, where: str) -> None:
    p = im.preprocessing
    if p.crop is not None:
        if len(p.crop) != 4 or any(not isinstance(v, int) for v in p.crop):
            raise _fail(f"{ctx}.crop", "[x, y, width, height] ints", p.crop, where)
        x, y, w, h = p.crop
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > im.width or y + h > im.height:
            raise _fail(f"{ctx}.crop", f"inside the {im.width}x{im.height} frame", p.crop, where)
    if p.resize is not None and (len(p.resize) != 2 or any(not isinstance(v, int) or v < 1 for v in p.resize)):
        raise _fail(f"{ctx}.resize", "[height, width] positive ints", p.resize, where)
    if not math.isfinite(p.scale) or p.scale <= 0:
        raise _fail(f"{ctx}.scale", "a positive number", p.scale, where)
    if len(p.mean) != im.channels or not _stats_ok(p.mean, False):
        raise _fail(f"{ctx}.mean", f"{im.channels} finite values", p.mean, where)
    if len(p.std) != im.channels or not _stats_ok(p.std, True):
        raise _fail(f"{ctx}.std", f"{im.channels} finite values > 0", p.std, where)


def _check_action(m: Manifest, where: str) -> None:
    """Known modes of their fixed sizes adding up to action_dim, statistics, latent = chunk x action."""
    if not m.action.entries:
        raise _fail("action.entries", "a non-empty list", m.action.entries, where)
    for i, e in enumerate(m.action.entries):
        ctx = f"action.entries[{i}]"
        if e.mode not in ACTION_MODES:
            raise _fail(f"{ctx}.mode", f"one of {list(ACTION_MODES)}", e.mode, where)
        if e.size != ACTION_MODES[e.mode]:
            raise _fail(f"{ctx}.size", f"{ACTION_MODES[e.mode]} for mode {e.mode}", e.size, where)
    total = sum(e.size for e in m.action.entries)
    if m.action_dim != total:
        raise _fail("action_dim", f"the sum of action entry sizes ({total})", m.action_dim, where)
    _check_stats(m.action.mean, m.action.std, m.action_dim, "action", " (action_dim)", where)
    if m.latent_dim != m.chunk_length * m.action_dim:
        raise _fail("latent_dim", f"chunk_length * action_dim ({m.chunk_length * m.action_dim})", m.latent_dim, where)


def _check_io(m: Manifest, where: str) -> None:
    """The declared inputs and outputs are the ones this kind and layout imply (`expected_io`)."""
    exp_in, exp_out = expected_io(m)
    for label, declared, expected in (("inputs", m.inputs, exp_in), ("outputs", m.outputs, exp_out)):
        if [t.name for t in declared] != [t.name for t in expected]:
            raise _fail(f"{label}", f"names {[t.name for t in expected]} for a {m.kind}"
                        f"{' (' + m.head_type + ')' if m.head_type else ''}", [t.name for t in declared], where)
        for i, (d, e) in enumerate(zip(declared, expected, strict=True)):
            if d.shape != e.shape:
                raise _fail(f"{label}[{i}].shape", f"{e.shape} (from the layout)", d.shape, where)
            if d.dtype not in DTYPES:
                raise _fail(f"{label}[{i}].dtype", f"one of {list(DTYPES)}", d.dtype, where)
