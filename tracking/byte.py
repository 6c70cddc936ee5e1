"""BYTE association (Zhang et al., ByteTrack 2022) on BoT-SORT's Kalman filter.

Differences from SORT that keep identities through occlusions:
- the Kalman state is (centre x, y, width, height) with noise that scales
  with the box's width and height (BoT-SORT's model), so far and near
  people are predicted with fitting uncertainty, and a box that widens is
  followed;
- tracks that lose their detection are kept "lost" for `lost_seconds` of
  the stream's frame rate and can be re-found, instead of dying after one frame;
- low-confidence detections are not thrown away: after high-confidence
  detections are matched, they get a second chance against the tracks still
  unmatched (occluded people often score low).

All state is arrays; every Kalman step runs once over all tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..stream.types import Detections
from .association import iou_and_centre_penalty, match
from .kalman import HeightScaledKalman, WidthHeightKalman
from .state import TrackArrays, blend_features, check_box_source, tracked_rows

TENTATIVE, CONFIRMED = 0, 1


@dataclass
class _Tracks(TrackArrays):
    mean: np.ndarray
    cov: np.ndarray
    ids: np.ndarray
    class_ids: np.ndarray
    state: np.ndarray
    since_update: np.ndarray
    emb: np.ndarray
    hits: np.ndarray

    @classmethod
    def empty(cls) -> _Tracks:
        z = np.zeros(0, np.int64)
        return cls(np.zeros((0, 8)), np.zeros((0, 8, 8)), z, z.copy(), z.copy(), z.copy(), np.zeros((0, 0), np.float32),
                   z.copy())



class ByteTracker:
    """`update(dets)` once per frame; returns the confirmed tracks matched this frame.

    - `high_thresh`: detections at or above it are matched first; those
      between `low_thresh` and it only in the second pass.
    - `new_track_thresh`: minimum score to start a track.
    - `match_iou`, `low_match_iou`, `tentative_match_iou`: minimum IoU (times
      the detection score in the first pass) for each pass.
    - `lost_seconds`: how long a lost track can be re-found, at `frame_rate`
      frames a second (30 when the stream does not say); `track_buffer`, in
      frames, overrides it.
    - `box`: "kalman" reports the filtered box, "detection" the matched one.
    - `min_hits`: consecutive matches before a new track is reported (after
      the first frame); `distance_weight`: weight of DIoU's centre-distance
      term added to 1 - IoU; `std_velocity`: the Kalman velocity noise.
    - `state`: "xywh" (BoT-SORT's Kalman state) or "xyah" (DeepSORT's).
    Thresholds, match IoUs, `min_hits` 2 (a track is reported from its second
    frame) and 1 s of lost track (ByteTrack's 30 frames at 30 fps, scaled by
    the frame rate) are ByteTrack's published values (0.5 / 0.1 / 0.6, match
    distances 0.8 / 0.5 / 0.7 as IoU 0.2 / 0.5 / 0.3). The (x, y, w, h) state,
    DIoU's centre term and velocity noise 1/80 were each chosen
    leave-one-sequence-out on MOT15, in all 8 folds (bench/loso.py,
    docs/benchmarks.md), as was `min_hits` 2.
    The returned detections are rows of the input with `track_ids` set.
    """

    def __init__(
        self,
        high_thresh: float = 0.5,
        low_thresh: float = 0.1,
        new_track_thresh: float = 0.6,
        match_iou: float = 0.2,
        low_match_iou: float = 0.5,
        tentative_match_iou: float = 0.3,
        track_buffer: int | None = None,
        lost_seconds: float = 1.0,
        frame_rate: float | None = None,
        state: str = "xywh",
        box: str = "kalman",
        appearance_thresh: float = 0.25,
        ema: float = 0.9,
        min_hits: int = 2,
        distance_weight: float = 1.0,
        std_velocity: float = 1.0 / 80,
        first_id: int = 1,
    ) -> None:
        if state not in ("xyah", "xywh"):
            raise ValueError(f"state must be 'xyah' or 'xywh', got {state!r}")
        self.min_hits = min_hits
        self.distance_weight = distance_weight
        self.box = check_box_source(box)
        self.appearance_thresh = appearance_thresh
        self.ema = ema
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.new_track_thresh = new_track_thresh
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.tentative_match_iou = tentative_match_iou
        self.track_buffer = track_buffer if track_buffer is not None else round(lost_seconds * (frame_rate or 30.0))
        self.frame_count = 0
        self._kf = (WidthHeightKalman if state == "xywh" else HeightScaledKalman)(std_velocity=std_velocity)
        self._tracks = _Tracks.empty()
        self._next_id = first_id

    def rescale(self, sx: float, sy: float) -> None:
        """The source's picture was resized (a camera back at another resolution):
        move every track with it, so ids carry on instead of all tracks being lost."""
        t = self._tracks
        t.mean, t.cov = self._kf.rescale(t.mean, t.cov, sx, sy)

    def update(self, dets: Detections, warp: np.ndarray | None = None) -> Detections:
        """`warp` (2x3, previous frame -> this frame, from tracking.cmc) moves
        every track with the camera before association."""
        self.frame_count += 1
        t = self._tracks
        if dets.embeddings is not None and t.emb.shape[1] != dets.embeddings.shape[1]:
            t.emb = np.zeros((len(t), dets.embeddings.shape[1]), np.float32)
        if len(t):
            t.mean, t.cov = self._kf.predict(t.mean, t.cov)
            if warp is not None:
                t.mean, t.cov = self._kf.warp(t.mean, t.cov, warp)
        det_of_track = np.full(len(t), -1, dtype=np.int64)
        xyxy = dets.xyxy.astype(np.float64)
        # One IoU and one distance matrix for all detections x all tracks; each pass slices them.
        iou = pen = None
        if len(t) and len(dets):
            boxes = self._kf.boxes(t.mean)
            iou, pen = iou_and_centre_penalty(xyxy, boxes, dets.class_ids, t.class_ids)
            pen *= self.distance_weight

        high = (dets.scores >= self.high_thresh).nonzero()[0]
        low = ((dets.scores >= self.low_thresh) & (dets.scores < self.high_thresh)).nonzero()[0]
        confirmed = (t.state == CONFIRMED).nonzero()[0]
        tentative = (t.state == TENTATIVE).nonzero()[0]

        # 1) high-score detections vs confirmed tracks (tracked and lost), IoU weighted by score
        free_high, free_conf = self._associate(dets, high, t, iou, pen, confirmed, self.match_iou, det_of_track,
                                               weight=True, appearance=True)
        # 2) low-score detections vs confirmed tracks still unmatched that were seen last frame
        recent = free_conf[t.since_update[free_conf] <= 1]
        self._associate(dets, low, t, iou, pen, recent, self.low_match_iou, det_of_track)
        # 3) remaining high-score detections vs tentative tracks (seen once)
        free_high, _ = self._associate(dets, free_high, t, iou, pen, tentative, self.tentative_match_iou, det_of_track)

        hit = det_of_track >= 0
        matched = hit.nonzero()[0]
        if len(matched):
            z = self._kf.measure(xyxy[det_of_track[matched]])
            t.mean[matched], t.cov[matched] = self._kf.update(t.mean[matched], t.cov[matched], z)
        if dets.embeddings is not None and len(matched):
            t.emb[matched] = blend_features(t.emb[matched], dets.embeddings[det_of_track[matched]], self.ema)
        t.since_update = np.where(hit, 0, t.since_update + 1)
        t.hits = t.hits + hit
        t.state = np.where(hit & (t.hits >= self.min_hits), CONFIRMED, t.state)
        is_confirmed = t.state == CONFIRMED
        unnamed = (is_confirmed & (t.ids == 0)).nonzero()[0]  # tentative tracks just confirmed
        t.ids[unnamed] = np.arange(self._next_id, self._next_id + len(unnamed))
        self._next_id += len(unnamed)

        # Tentative tracks that missed die; confirmed ones survive `track_buffer` frames.
        alive = np.where(is_confirmed, t.since_update <= self.track_buffer, hit)
        # New tracks (confirmed at once in the very first frame, as ByteTrack does).
        new = free_high[dets.scores[free_high] >= self.new_track_thresh]
        report = hit & is_confirmed
        rows, ids, means = det_of_track[report], t.ids[report], t.mean[report]
        if not alive.all():
            t = t.take(alive)
        if len(new):
            born = self._initiate(dets, new, CONFIRMED if self.frame_count == 1 or self.min_hits <= 1 else TENTATIVE,
                                  t.emb.shape[1])
            if born.state[0] == CONFIRMED:
                rows, ids, means = np.concatenate([rows, new]), np.concatenate([ids, born.ids]), np.concatenate([means, born.mean])
            t = t.append(born)
        self._tracks = t

        return tracked_rows(dets, rows, ids, self._kf.boxes(means), self.box)

    def _associate(
        self, dets: Detections, det_rows: np.ndarray, t: _Tracks, iou: np.ndarray | None, pen: np.ndarray | None,
        trk_rows: np.ndarray, min_iou: float, det_of_track: np.ndarray, weight: bool = False, appearance: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Match det_rows to trk_rows on 1 - IoU (times the score with `weight`)
        plus the centre-distance penalty, writing each match into
        `det_of_track`; returns the det rows and track rows left free."""
        if len(det_rows) == 0 or len(trk_rows) == 0:
            return det_rows, trk_rows
        sim = iou[det_rows][:, trk_rows]
        if weight:
            sim = sim * dets.scores[det_rows, None]
        cost = 1.0 - sim + pen[det_rows][:, trk_rows]
        if appearance and dets.embeddings is not None and t.emb.shape[1] == dets.embeddings.shape[1]:
            # BoT-SORT's fusion: appearance may only lower the cost of pairs that
            # are close in space and look alike.
            emb_cost = (1.0 - dets.embeddings[det_rows] @ t.emb[trk_rows].T) / 2
            emb_cost[(emb_cost > self.appearance_thresh / 2) | (cost > 1.0 - min_iou / 2)] = 1.0
            cost = np.minimum(cost, emb_cost)
        d, tr, free_d, free_t = match(cost, 1.0 - min_iou)
        det_of_track[trk_rows[tr]] = det_rows[d]
        return det_rows[free_d], trk_rows[free_t]

    def _initiate(self, dets: Detections, rows: np.ndarray, state: int, emb_dim: int) -> _Tracks:
        n = len(rows)
        mean, cov = self._kf.initiate(self._kf.measure(dets.xyxy[rows].astype(np.float64)))
        ids = np.zeros(n, np.int64)
        if state == CONFIRMED:
            ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
            self._next_id += n
        emb = dets.embeddings[rows] if dets.embeddings is not None else np.zeros((n, emb_dim), np.float32)
        return _Tracks(mean, cov, ids, dets.class_ids[rows].astype(np.int64), np.full(n, state), np.zeros(n, np.int64), emb,
                       np.ones(n, np.int64))
