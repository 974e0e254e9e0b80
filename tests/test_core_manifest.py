"""Manifest validation, corrupt and mismatched files, provider refusal: each refusal and its message."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest
from lps_steering.core.manifest import ManifestError, load_manifest, sha256_file
from lps_steering.core.policy import check_head_matches, load_model
from lps_steering.core.sessions import ModelLoadError, ProviderError, create_session


def _copy_model(src: Path, dst_dir: Path, stem: str | None = None) -> Path:
    stem = stem or src.stem
    dst = dst_dir / f"{stem}.onnx"
    shutil.copyfile(src, dst)
    shutil.copyfile(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def _edit(path: Path, fn) -> None:
    data = json.loads(path.with_suffix(".json").read_text())
    fn(data)
    path.with_suffix(".json").write_text(json.dumps(data))


def _set(key, value):
    def fn(d):
        d[key] = value
    return fn


def _del(key):
    def fn(d):
        del d[key]
    return fn


def test_valid_manifests_load_and_round_trip(tiny_models, tmp_path):
    m = load_manifest(tiny_models.decoder)
    assert (m.kind, m.decoder_type, m.obs_dim, m.latent_dim) == ("decoder", "meanflow", 11, 64)
    assert m.onnx_sha256 == sha256_file(tiny_models.decoder)
    # save() -> load gives back an equal manifest.
    copy = _copy_model(tiny_models.decoder, tmp_path)
    m.save(copy.with_suffix(".json"))
    assert load_manifest(copy) == m
    head = load_manifest(tiny_models.heads["lpds"])
    assert head.decoder_sha256 == m.onnx_sha256 and head.trust_region_delta == 0.35


DECODER_REFUSALS = [
    (_set("format_version", 2), "`format_version` must be 1, got 2"),
    (_set("kind", "actor"), "`kind` must be one of ['decoder', 'head'], got 'actor'"),
    (_set("decoder_type", "vae"), "`decoder_type` must be one of ['meanflow', 'flow', 'ddim']"),
    (_set("robot", "ur5"), "`robot` must be one of ['fr3', 'panda'], got 'ur5'"),
    (_set("policy_rate_hz", 0), "`policy_rate_hz` must be in [1, 200] Hz, got 0.0"),
    (_set("policy_rate_hz", 5000), "`policy_rate_hz` must be in [1, 200] Hz, got 5000.0"),
    (_set("latent_dim", 63), "`latent_dim` must be chunk_length * action_dim (64), got 63"),
    (_set("action_dim", 9), "`action_dim` must be the sum of action entry sizes (8), got 9"),
    (_set("latent_geometry", "torus"), "`latent_geometry` must be one of ['sphere', 'gaussian']"),
    (_set("onnx_sha256", "abc"), "`onnx_sha256` must be 64 lowercase hex digits, got 'abc'"),
    (_set("head_type", "lps"), "`head_type` must be absent for a decoder, got 'lps'"),
    (_set("colour", "red"), "`colour` must be one of the known fields"),
    (_del("chunk_length"), "`chunk_length` is missing"),
    (_del("observation"), "`observation` is missing"),
    (_set("chunk_length", "8"), "`chunk_length` must be of type int, got '8'"),
    (lambda d: d["observation"]["entries"][0].update(std=[0.5] * 6 + [0.0]),
     "`observation.entries[0].std` must be finite values > 0"),
    (lambda d: d["observation"]["entries"][0].update(mean=[0.0] * 6),
     "`observation.entries[0].mean` must be 7 values, got 6"),
    (lambda d: d["observation"]["entries"][2].update(source="lidar"),
     "`observation.entries[2].source` must be one of"),
    (lambda d: d["observation"]["entries"][1].update(size=2, mean=[0, 0], std=[1, 1]),
     "`observation.entries[1].size` must be 1 for source gripper_width, got 2"),
    (lambda d: d["action"].update(std=[0.02] * 7),
     "`action.std` must be 8 values (action_dim), got 7"),
    (lambda d: d["action"].update(std=[0.02] * 7 + [-1.0]), "`action.std` must be finite values > 0"),
    (lambda d: d["action"]["entries"][0].update(mode="torque"), "`action.entries[0].mode` must be one of"),
    (lambda d: d["inputs"][1].update(shape=[-1, 32]), "`inputs[1].shape` must be [-1, 64] (from the layout)"),
    (lambda d: d["outputs"][0].update(name="chunk"), "`outputs` must be names ['actions'] for a decoder"),
    (lambda d: d["inputs"][0].update(dtype="float64"), "`inputs[0].dtype` must be one of ['float32']"),
    (lambda d: d["observation"].update(images=[{"name": "cam", "topic": "c", "height": 48, "width": 64,
                                                "channels": 3, "preprocessing": {"crop": [0, 0, 80, 10]}}]),
     "`observation.images[0].preprocessing.crop` must be inside the 64x48 frame"),
]


@pytest.mark.parametrize("mutate,message", DECODER_REFUSALS,
                         ids=[m for _, m in DECODER_REFUSALS])
def test_decoder_manifest_refusals_name_field_expected_and_found(tiny_models, tmp_path, mutate, message):
    path = _copy_model(tiny_models.decoder, tmp_path)
    _edit(path, mutate)
    with pytest.raises(ManifestError, match=re.escape(message)):
        load_manifest(path)


HEAD_REFUSALS = [
    (_del("trust_region_delta"), "`trust_region_delta` must be a positive number for an lpds head, got None"),
    (_set("trust_region_delta", -0.1), "`trust_region_delta` must be a positive number for an lpds head"),
    (_set("head_type", "sac"), "`head_type` must be one of ['lps', 'lpds', 'dsrl'] for a head, got 'sac'"),
    (_del("decoder_sha256"), "`decoder_sha256` must be the 64-hex SHA-256 of the decoder"),
    (lambda d: d["outputs"][0].update(name="latent"), "`outputs` must be names ['delta'] for a head (lpds)"),
]


@pytest.mark.parametrize("mutate,message", HEAD_REFUSALS, ids=[m for _, m in HEAD_REFUSALS])
def test_head_manifest_refusals(tiny_models, tmp_path, mutate, message):
    path = _copy_model(tiny_models.heads["lpds"], tmp_path)
    _edit(path, mutate)
    with pytest.raises(ManifestError, match=re.escape(message)):
        load_manifest(path)


def test_missing_manifest_and_bad_json(tiny_models, tmp_path):
    lone = tmp_path / "lone.onnx"
    shutil.copyfile(tiny_models.decoder, lone)
    with pytest.raises(ManifestError, match=r"manifest not found: expected .*lone\.json"):
        load_manifest(lone)
    lone.with_suffix(".json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(lone)
    with pytest.raises(ManifestError, match="model file not found"):
        load_manifest(tmp_path / "absent.onnx")


def test_corrupt_onnx_is_refused_by_hash_and_by_the_loader(tiny_models, tmp_path):
    path = _copy_model(tiny_models.decoder, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"`onnx_sha256` must match the file decoder|corrupt"):
        load_manifest(path)
    # A file that is not ONNX at all: the session loader names the path.
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 definitely not a protobuf" * 10)
    with pytest.raises(ModelLoadError, match=re.escape(str(garbage))):
        create_session(garbage)


def test_manifest_that_lies_about_the_graph_is_refused(tiny_models, tmp_path):
    """A manifest consistent in itself but describing another network: shapes differ from the graph."""
    path = _copy_model(tiny_models.decoder, tmp_path, stem="decoder")

    def widen_object(d):
        # Declare 3 more observation values than the graph takes (arm velocities added).
        d["observation"]["entries"].append({"name": "dq", "source": "arm_joint_velocities", "size": 7,
                                            "mean": [0.0] * 7, "std": [1.0] * 7})
        d["inputs"][0]["shape"] = [-1, 18]

    _edit(path, widen_object)
    load_manifest(path)  # self-consistent
    with pytest.raises(ManifestError, match=re.escape("`inputs[0].shape` must match the ONNX graph "
                                                      "([-1, 11]), got [-1, 18]")):
        load_model(path, "decoder", warmup_runs=0)


def test_kind_mismatch(tiny_models):
    with pytest.raises(ManifestError, match="`kind` must be 'decoder', got 'head'"):
        load_model(tiny_models.heads["lps"], "decoder")


def test_head_for_another_decoder_is_refused(tiny_models, tiny_models_gaussian):
    decoder = load_model(tiny_models.decoder, "decoder")
    foreign = load_model(tiny_models_gaussian.heads["lpds"], "head")
    with pytest.raises(ManifestError, match=r"`decoder_sha256` must equal the loaded decoder's "
                                            rf"\({decoder.sha256}\)"):
        check_head_matches(decoder, foreign)
    check_head_matches(decoder, load_model(tiny_models.heads["lpds"], "head"))


def test_head_with_other_layout_is_refused(tiny_models, tmp_path):
    """Same decoder hash but different normalisation statistics: still refused."""
    decoder = load_model(tiny_models.decoder, "decoder")
    path = _copy_model(tiny_models.heads["lps"], tmp_path)
    _edit(path, lambda d: d["observation"]["entries"][2].update(mean=[0.4, 0.0, 0.05]))
    head = load_model(path, "head")
    with pytest.raises(ManifestError, match=re.escape("`observation.entries[2]` must equal the decoder's")):
        check_head_matches(decoder, head)
    path2 = _copy_model(tiny_models.heads["lps"], tmp_path, stem="panda_head")
    _edit(path2, _set("robot", "panda"))
    with pytest.raises(ManifestError, match=re.escape("`robot` must equal the decoder's ('fr3'), got 'panda'")):
        check_head_matches(decoder, load_model(path2, "head"))


def test_provider_refusal_and_fallback(tiny_models):
    assert "CUDAExecutionProvider" not in ort.get_available_providers(), "test needs a CPU-only build"
    request = ("CUDAExecutionProvider", "CPUExecutionProvider")
    with pytest.raises(ProviderError, match=r"requested execution providers \['CUDAExecutionProvider', "
                                            r"'CPUExecutionProvider'\].*CUDAExecutionProvider"):
        create_session(tiny_models.decoder, request, allow_fallback=False)
    session = create_session(tiny_models.decoder, request, allow_fallback=True)
    assert session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ProviderError):
        load_model(tiny_models.decoder, "decoder", providers=request, allow_fallback=False)
