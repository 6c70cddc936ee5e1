"""SORT (Bewley et al. 2016): constant-velocity Kalman boxes + IoU + Hungarian.

Behaviour follows the reference implementation (abewley/sort) rule for rule,
so its published MOT15 numbers are reproducible, with two deliberate changes:
track ids come from a counter owned by each tracker (per stream, starting at
1, never reused), and a track only matches detections of its own class.
All track state lives in arrays and every Kalman step runs once for all tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..stream.types import Detections
from .association import iou_similarity, match
from .kalman import KalmanFilter, scale_states
from .state import TrackArrays


def _sort_filter() -> KalmanFilter:
    """SORT's model: state [u, v, s, r, du, dv, ds] (centre, area, aspect ratio)."""
    F = np.eye(7)
    F[0, 4] = F[1, 5] = F[2, 6] = 1.0
    H = np.eye(4, 7)
    R = np.eye(4)
    R[2:, 2:] *= 10.0
    Q = np.eye(7)
    Q[-1, -1] *= 0.01
    Q[4:, 4:] *= 0.01
    return KalmanFilter(F, H, Q, R)


def _initial_cov() -> np.ndarray:
    P = np.eye(7)
    P[4:, 4:] *= 1000.0  # unobserved velocities: high uncertainty
    return P * 10.0


def xyxy_to_z(xyxy: np.ndarray) -> np.ndarray:
    w = xyxy[:, 2] - xyxy[:, 0]
    h = xyxy[:, 3] - xyxy[:, 1]
    return np.stack([xyxy[:, 0] + w / 2, xyxy[:, 1] + h / 2, w * h, w / h], axis=1)


def x_to_xyxy(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.sqrt(x[:, 2] * x[:, 3])
        h = x[:, 2] / w
    half = np.stack([w, h], axis=1) / 2
    return np.concatenate([x[:, :2] - half, x[:, :2] + half], axis=1)


@dataclass
class _Tracks(TrackArrays):
    """Struct of arrays, one row per live track."""

    mean: np.ndarray
    cov: np.ndarray
    ids: np.ndarray
    class_ids: np.ndarray
    hits: np.ndarray
    hit_streak: np.ndarray
    age: np.ndarray
    time_since_update: np.ndarray

    @classmethod
    def empty(cls) -> _Tracks:
        z = np.zeros(0, np.int64)
        return cls(np.zeros((0, 7)), np.zeros((0, 7, 7)), z, z.copy(), z.copy(), z.copy(), z.copy(), z.copy())



class Sort:
    """`update(dets)` once per frame; returns the confirmed tracks seen this frame.

    - `max_age`: frames a track survives without a matching detection.
    - `min_hits`: consecutive matches before a track is reported (all tracks are
      reported during the first `min_hits` frames, as in the reference).
    - `iou_threshold`: minimum IoU between a detection and a predicted box.
    - `box`: "kalman" reports the filtered box (the reference behaviour),
      "detection" the matched detection's box.

    The returned detections are rows of the input (mask, keypoints, class,
    score, embedding kept) with `track_ids` set.
    """

    def __init__(
        self, max_age: int = 1, min_hits: int = 3, iou_threshold: float = 0.3, box: str = "kalman", first_id: int = 1,
    ) -> None:
        if box not in ("kalman", "detection"):
            raise ValueError(f"box must be 'kalman' or 'detection', got {box!r}")
        self.max_age = max_age
        self.min_hits = min_hits
        self.iou_threshold = iou_threshold
        self.box = box
        self.frame_count = 0
        self._kf = _sort_filter()
        self._tracks = _Tracks.empty()
        self._next_id = first_id

    def rescale(self, sx: float, sy: float) -> None:
        """The source's picture was resized (a camera back at another resolution):
        move every track with it, so ids carry on instead of all tracks being lost."""
        t = self._tracks
        # State [u, v, s, r, du, dv, ds]: s is an area, r = width / height.
        t.mean, t.cov = scale_states(t.mean, t.cov, np.array([sx, sy, sx * sy, sx / sy, sx, sy, sx * sy]))

    def update(self, dets: Detections) -> Detections:
        self.frame_count += 1
        t = self._predict(self._tracks)

        predicted = x_to_xyxy(t.mean)
        iou = iou_similarity(dets.xyxy, predicted, dets.class_ids, t.class_ids)
        det_rows, trk_rows, new_dets, _ = match(1.0 - iou, 1.0 - self.iou_threshold)

        if len(det_rows):
            t.mean[trk_rows], t.cov[trk_rows] = self._kf.update(
                t.mean[trk_rows], t.cov[trk_rows], xyxy_to_z(dets.xyxy[det_rows].astype(np.float64))
            )
            t.time_since_update[trk_rows] = 0
            t.hits[trk_rows] += 1
            t.hit_streak[trk_rows] += 1
        det_of_track = np.full(len(t), -1, dtype=np.int64)
        det_of_track[trk_rows] = det_rows

        born = self._initiate(dets, new_dets)
        t = t.append(born)
        det_of_track = np.concatenate([det_of_track, new_dets])

        report = (t.time_since_update < 1) & ((t.hit_streak >= self.min_hits) | (self.frame_count <= self.min_hits))
        # Report in detection order: when every detection is reported (the usual
        # case) no column, masks included, is copied.
        reported = report.nonzero()[0]
        reported = reported[np.argsort(det_of_track[reported])]
        out = dets[det_of_track[reported]].with_(track_ids=t.ids[reported])
        if self.box == "kalman":
            out = out.with_(xyxy=x_to_xyxy(t.mean[reported]).astype(np.float32), detected_xyxy=out.xyxy)

        self._tracks = t.take(t.time_since_update <= self.max_age)
        return out

    def _predict(self, t: _Tracks) -> _Tracks:
        mean = t.mean.copy()
        # Keep the predicted area positive: zero the area velocity if it would not be.
        mean[mean[:, 6] + mean[:, 2] <= 0, 6] = 0.0
        mean, cov = self._kf.predict(mean, t.cov)
        finite = np.isfinite(mean).all(axis=1) & (mean[:, 2] * mean[:, 3] > 0)  # box computable
        t = t.take(finite)
        t.mean, t.cov = mean[finite], cov[finite]
        t.age += 1
        t.hit_streak[t.time_since_update > 0] = 0
        t.time_since_update += 1
        return t

    def _initiate(self, dets: Detections, rows: np.ndarray) -> _Tracks:
        n = len(rows)
        mean = np.zeros((n, 7))
        mean[:, :4] = xyxy_to_z(dets.xyxy[rows].astype(np.float64))
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        zeros = np.zeros(n, np.int64)
        return _Tracks(
            mean, np.broadcast_to(_initial_cov(), (n, 7, 7)).copy(), ids,
            dets.class_ids[rows].astype(np.int64), zeros, zeros.copy(), zeros.copy(), zeros.copy(),
        )
