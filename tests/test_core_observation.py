"""Observation assembly: layout order, staleness, NaN, missing sources, FK-derived TCP, images."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from lps_steering.core.kinematics import tcp_position
from lps_steering.core.manifest import (
    ImagePreprocessing,
    ObservationEntry,
    load_manifest,
)
from lps_steering.core.observation import (
    MissingObservation,
    NonFiniteObservation,
    ObservationAssembler,
    StaleObservation,
    preprocess_image,
)
from lps_train.tiny import READY_Q


@pytest.fixture
def manifest(tiny_models):
    return load_manifest(tiny_models.decoder)


def _fill(asm, t=10.0, q=READY_Q):
    asm.update("arm_joint_positions", q, t)
    asm.update("gripper_width", 0.03, t)
    asm.update("object_position", [0.5, 0.1, 0.02], t)


def test_assembles_in_manifest_order(manifest):
    asm = ObservationAssembler(manifest, max_age_s=0.1)
    assert asm.required_sources == ("arm_joint_positions", "gripper_width", "object_position")
    _fill(asm)
    np.testing.assert_array_equal(asm.assemble(10.05), np.array(READY_Q + [0.03, 0.5, 0.1, 0.02]))
    asm.update("gripper_width", 0.02, 10.06)
    asm.assemble(10.07)
    assert asm.newest_stamp == 10.06


def test_missing_stale_and_nan_name_the_source(manifest):
    asm = ObservationAssembler(manifest, max_age_s=0.1)
    asm.update("arm_joint_positions", READY_Q, 10.0)
    with pytest.raises(MissingObservation, match="`gripper_width` has not been received yet"):
        asm.assemble(10.0)
    _fill(asm)
    asm.update("object_position", [0.5, 0.1, 0.02], 9.8)
    with pytest.raises(StaleObservation, match=r"`object_position` is stale: age 250\.0 ms > limit 100\.0 ms"):
        asm.assemble(10.05)
    _fill(asm)
    asm.update("object_position", [0.5, np.nan, 0.02], 10.0)
    with pytest.raises(NonFiniteObservation, match="`object_position` is not finite"):
        asm.assemble(10.01)


def test_bad_updates_are_refused(manifest):
    asm = ObservationAssembler(manifest, max_age_s=0.1)
    with pytest.raises(ValueError, match="`source` must be one of .* got 'lidar'"):
        asm.update("lidar", [1.0], 0.0)
    with pytest.raises(ValueError, match="`arm_joint_positions` must have 7 values, got 6"):
        asm.update("arm_joint_positions", np.zeros(6), 0.0)


def test_tcp_position_is_forward_kinematics_of_the_arm(manifest):
    m = copy.deepcopy(manifest)
    m.observation.entries[2] = ObservationEntry("tcp", "tcp_position", 3, [0.3, 0.0, 0.5], [0.1] * 3)
    asm = ObservationAssembler(m, max_age_s=0.1)
    assert asm.required_sources == ("arm_joint_positions", "gripper_width")
    q = np.array(READY_Q) + 0.1
    asm.update("arm_joint_positions", q, 1.0)
    asm.update("gripper_width", 0.03, 1.0)
    np.testing.assert_allclose(asm.assemble(1.0)[8:], tcp_position(q))


def test_image_preprocessing_crop_area_resize_normalise():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    pre = ImagePreprocessing(crop=[4, 2, 8, 8], resize=[4, 4], scale=1 / 255, mean=[0.5, 0.4, 0.3],
                             std=[0.2, 0.25, 0.5])
    out = preprocess_image(frame, pre, 3)
    assert out.shape == (3, 4, 4) and out.dtype == np.float32
    # Reference: crop, 2x2 block means (area resize by exactly 2), scale, normalise, HWC -> CHW.
    crop = frame[2:10, 4:12].astype(np.float64)
    blocks = crop.reshape(4, 2, 4, 2, 3).mean(axis=(1, 3))
    ref = ((blocks / 255 - [0.5, 0.4, 0.3]) / [0.2, 0.25, 0.5]).transpose(2, 0, 1)
    np.testing.assert_allclose(out, ref, atol=0.02)  # cv2 rounds block means to uint8
    with pytest.raises(ValueError, match=r"image must be HxWx3, got shape \(12, 16\)"):
        preprocess_image(frame[:, :, 0], pre, 3)
