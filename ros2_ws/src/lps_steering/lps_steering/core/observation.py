"""Observation assembly: the newest value of every source -> the flat vector the model declares.

Each source carries its stamp; a cycle refuses to run on an observation that was never received,
is older than the limit or is not finite. `tcp_position` is not a topic: it is derived from the
arm joint positions by forward kinematics, so it shares their stamp. Camera frames are
preprocessed here (OpenCV) so that simulation and the real camera go through the same code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np

from .kinematics import tcp_position
from .manifest import OBSERVATION_SOURCES, ImageEntry, ImagePreprocessing, Manifest


class ObservationError(RuntimeError):
    """The observation cannot be used this cycle; the message names the source."""


class MissingObservation(ObservationError):
    pass


class StaleObservation(ObservationError):
    pass


class NonFiniteObservation(ObservationError):
    pass


# Derived sources and the source they are computed from.
_DERIVED = {"tcp_position": "arm_joint_positions"}


def preprocess_image(frame: np.ndarray, pre: ImagePreprocessing, channels: int) -> np.ndarray:
    """Raw HxW(xC) uint8/float frame -> CxHxW float32: crop, resize (area), scale, normalise."""
    img = np.asarray(frame)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] != channels:
        raise ValueError(f"image must be HxWx{channels}, got shape {np.shape(frame)}")
    if pre.crop is not None:
        x, y, w, h = pre.crop
        if y + h > img.shape[0] or x + w > img.shape[1]:
            raise ValueError(f"crop {pre.crop} does not fit a frame of {img.shape[1]}x{img.shape[0]}")
        img = img[y:y + h, x:x + w]
    if pre.resize is not None:
        out_h, out_w = pre.resize
        if (img.shape[0], img.shape[1]) != (out_h, out_w):
            # INTER_AREA averages pixels when shrinking, which avoids aliasing on camera frames.
            interp = cv2.INTER_AREA if out_h < img.shape[0] else cv2.INTER_LINEAR
            img = cv2.resize(np.ascontiguousarray(img), (out_w, out_h), interpolation=interp)
            if img.ndim == 2:
                img = img[:, :, None]
    out = img.astype(np.float32) * np.float32(pre.scale)
    out -= np.asarray(pre.mean, dtype=np.float32)
    out /= np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


class ObservationAssembler:
    """Keeps the newest value and stamp of each source and assembles the model's observation.

    Args:
        manifest: the decoder's manifest (its observation layout is followed exactly).
        max_age_s: an observation older than this (at assemble time) is stale.
    """

    def __init__(self, manifest: Manifest, max_age_s: float) -> None:
        if not math.isfinite(max_age_s) or max_age_s <= 0:
            raise ValueError(f"`max_age_s` must be > 0, got {max_age_s!r}")
        self.max_age_s = float(max_age_s)
        self._layout = [(e.source, e.size) for e in manifest.observation.entries]
        self._values = {s: np.zeros(n) for s, n in OBSERVATION_SOURCES.items()}
        self._stamps = {s: math.nan for s in OBSERVATION_SOURCES}
        self._out = np.zeros(manifest.obs_dim)
        self._mean = np.asarray(manifest.observation.mean, dtype=np.float64)
        self._images: dict[str, ImageEntry] = {im.name: im for im in manifest.observation.images}
        self._image_values: dict[str, np.ndarray] = {}
        self._image_stamps: dict[str, float] = {}
        self.newest_stamp = math.nan
        needed: list[str] = []
        for source, _ in self._layout:
            raw = _DERIVED.get(source, source)
            if raw not in needed:
                needed.append(raw)
        self.required_sources: tuple[str, ...] = tuple(needed)
        self.image_topics: dict[str, str] = {im.name: im.topic for im in manifest.observation.images}

    def update(self, source: str, value: np.ndarray | float, stamp_s: float) -> None:
        """Store the newest value of `source` (raw units) stamped `stamp_s` (seconds)."""
        buf = self._values.get(source)
        if buf is None:
            raise ValueError(f"`source` must be one of {list(OBSERVATION_SOURCES)}, got {source!r}")
        v = np.asarray(value, dtype=np.float64).reshape(-1)
        if v.shape != buf.shape:
            raise ValueError(f"observation `{source}` must have {buf.shape[0]} values, got {v.shape[0]}")
        buf[:] = v
        self._stamps[source] = float(stamp_s)

    def update_image(self, name: str, frame: np.ndarray, stamp_s: float) -> None:
        """Preprocess and store a camera frame for image input `name`."""
        entry = self._images.get(name)
        if entry is None:
            raise ValueError(f"image `name` must be one of {list(self._images)}, got {name!r}")
        self._image_values[name] = preprocess_image(frame, entry.preprocessing, entry.channels)
        self._image_stamps[name] = float(stamp_s)

    def latest_value(self, source: str) -> np.ndarray | None:
        """Newest raw value of a source, or None if never received."""
        if source not in self._values or math.isnan(self._stamps[source]):
            return None
        return self._values[source].copy()

    def mean_raw_observation(self) -> np.ndarray:
        """The layout's mean observation: a plausible input for warming sessions up."""
        return self._mean.copy()

    @property
    def images(self) -> Mapping[str, np.ndarray]:
        return self._image_values

    def _check(self, source: str, stamp: float, now_s: float) -> None:
        if math.isnan(stamp):
            raise MissingObservation(f"observation `{source}` has not been received yet")
        age = now_s - stamp
        if age > self.max_age_s:
            raise StaleObservation(f"observation `{source}` is stale: age {age * 1e3:.1f} ms > "
                                   f"limit {self.max_age_s * 1e3:.1f} ms")

    def assemble(self, now_s: float) -> np.ndarray:
        """The flat raw observation in manifest order (an internal buffer, overwritten next call).

        Raises:
            MissingObservation, StaleObservation, NonFiniteObservation naming the source.
        """
        out = self._out
        offset = 0
        newest = -math.inf
        for source, size in self._layout:
            raw = _DERIVED.get(source, source)
            stamp = self._stamps[raw]
            self._check(raw, stamp, now_s)
            value = self._values[raw]
            if not np.isfinite(value).all():
                raise NonFiniteObservation(f"observation `{raw}` is not finite: {value.tolist()}")
            if source == "tcp_position":
                value = tcp_position(value)
            out[offset:offset + size] = value
            offset += size
            newest = max(newest, stamp)
        for name in self._images:
            stamp = self._image_stamps.get(name, math.nan)
            self._check(f"image:{name}", stamp, now_s)
            if not np.isfinite(self._image_values[name]).all():
                raise NonFiniteObservation(f"observation `image:{name}` is not finite")
            newest = max(newest, stamp)
        self.newest_stamp = newest
        return out
