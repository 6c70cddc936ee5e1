"""What every tracker shares: the struct-of-arrays base its tracks live in, and how it reports them."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

import numpy as np

from ..stream.types import Detections

T = TypeVar("T", bound="TrackArrays")


class TrackArrays:
    """Mixin for a dataclass whose fields are parallel arrays, one row per track
    (`ids` among them): selecting and appending rows touches every field."""

    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self: T, index: np.ndarray) -> T:
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})  # type: ignore[arg-type]

    def append(self: T, other: T) -> T:
        return type(self)(**{f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                             for f in fields(self)})  # type: ignore[arg-type]


def blend_features(old: np.ndarray, fresh: np.ndarray, ema: float) -> np.ndarray:
    """Tracks' appearance as an exponential moving average of their features
    (StrongSORT, BoT-SORT), kept unit length; a track with no feature yet
    (all zeros) takes the fresh one."""
    had = np.linalg.norm(old, axis=1, keepdims=True) > 0
    mixed = np.where(had, ema * old + (1 - ema) * fresh, fresh)
    return mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-6)


BOX_SOURCES = ("kalman", "detection")


def check_box_source(box: str) -> str:
    """Validate a tracker's `box` setting: report the filtered or the detected box."""
    if box not in BOX_SOURCES:
        raise ValueError(f"box must be 'kalman' or 'detection', got {box!r}")
    return box


def tracked_rows(dets: Detections, rows: np.ndarray, ids: np.ndarray, filtered: np.ndarray, box: str) -> Detections:
    """The tracker's output: detection `rows` (in detection order) with their
    track `ids`, and the Kalman boxes (`filtered`, xyxy) when `box` is "kalman"
    (the detector's then kept as `detected_xyxy`).
    Masks, keypoints and embeddings come with the rows, never copied twice."""
    order = np.argsort(rows)
    out = dets[rows[order]]
    out.track_ids = ids[order]  # `out` is a new object: set the column without revalidating
    if box == "kalman":
        out.detected_xyxy = out.xyxy  # what the masks and keypoints belong to
        out.xyxy = filtered[order].astype(np.float32)
    return out
