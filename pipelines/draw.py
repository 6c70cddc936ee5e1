"""Annotated frames for `--save`: semantic/panoptic maps, masks, boxes, track ids and COCO skeletons."""

from __future__ import annotations

import collections
from typing import Sequence

import cv2
import numpy as np

from ..stream.types import Detections

# COCO keypoint skeleton (0-based indices).
SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
KEYPOINT_MIN_CONF = 0.5


def colors_for(keys: np.ndarray) -> np.ndarray:
    """(N, 3) stable, well-spread BGR colours for N keys (track, class or label ids), in one conversion."""
    hues = (np.asarray(keys, np.int64) * 47) % 180
    if len(hues) == 0:  # cv2 refuses an empty image
        return np.zeros((0, 3), np.uint8)
    hsv = np.stack([hues, np.full(len(hues), 220), np.full(len(hues), 255)], axis=-1).astype(np.uint8)[:, None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[:, 0]


def color_for(key: int) -> tuple[int, int, int]:
    """The BGR colour of one track id (or class id)."""
    b, g, r = colors_for(np.array([key]))[0].tolist()
    return b, g, r


def label_colors(count: int) -> np.ndarray:
    """(count, 3) BGR colours for label ids, spread apart from the track colours;
    id 0 (background / unlabelled) is never drawn."""
    return colors_for(np.arange(count) * 7 + 3)


def tint_labels(image: np.ndarray, labels: np.ndarray, weight: float = 0.4) -> None:
    """Blend each pixel with a non-zero label `weight` of the way to its
    label's colour, in place. A lookup table (for up to 256 ids, which a
    panoptic map's segments almost always are) and cv2's blend over the
    whole frame, then a masked copy: 1080p in a few ms, where numpy's boolean
    indexing of the labelled pixels took 100."""
    count = int(labels.max()) + 1
    colors = label_colors(count)
    if count <= 256:
        lut = np.zeros((256, 1, 3), np.uint8)
        lut[:count, 0] = colors
        tinted = cv2.LUT(cv2.cvtColor(labels.astype(np.uint8, copy=False), cv2.COLOR_GRAY2BGR), lut)
    else:
        tinted = colors[labels]
    blended = cv2.addWeighted(image, 1 - weight, tinted, weight, 0)
    cv2.copyTo(blended, (labels > 0).view(np.uint8), image)


def _blend_masks(out: np.ndarray, dets: Detections, colors: list[tuple[int, int, int]], alpha: float) -> None:
    """Paint the masks (later ones on top) and blend them `alpha` into `out`,
    in place, touching only the rectangle that holds them all: a few people in
    a 1080p frame cost their region, not two passes over the whole frame."""
    masks = dets.masks
    corners = masks.origins.astype(np.int64)
    sizes = np.array([crop.shape[::-1] for crop in masks.crops], np.int64).reshape(-1, 2)
    (x0, y0), (x1, y1) = corners.min(axis=0), (corners + sizes).max(axis=0)
    if x1 <= x0 or y1 <= y0:
        return
    region = out[y0:y1, x0:x1]
    overlay = region.copy()
    for crop, (x, y), color in zip(masks.crops, (corners - (x0, y0)).tolist(), colors):
        overlay[y:y + crop.shape[0], x:x + crop.shape[1]][crop] = color
    cv2.addWeighted(overlay, alpha, region, 1 - alpha, 0, dst=region)


class Trails:
    """Each track's recent positions (the middle of its box's bottom edge,
    where a person stands) over the last `frames` frames of one source, for
    `annotate`. A track not seen for `frames` frames is forgotten."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self._points: dict[int, collections.deque[tuple[int, int]]] = {}
        self._seen: dict[int, int] = {}
        self._count = 0

    def update(self, dets: Detections) -> dict[int, np.ndarray]:
        """Add this frame's tracks; their trails as (K, 2) int32 point arrays."""
        self._count += 1
        if dets.track_ids is not None and len(dets):
            box = dets.boxes_found
            feet = np.stack([(box[:, 0] + box[:, 2]) / 2, box[:, 3]], axis=1).round().astype(np.int32).tolist()
            for track_id, point in zip(dets.track_ids.tolist(), feet):
                self._points.setdefault(track_id, collections.deque(maxlen=self.frames)).append(tuple(point))
                self._seen[track_id] = self._count
        for track_id in [t for t, seen in self._seen.items() if self._count - seen >= self.frames]:
            del self._points[track_id], self._seen[track_id]
        return {t: np.array(p, np.int32) for t, p in self._points.items() if self._seen[t] == self._count}


def annotate(
    image: np.ndarray, dets: Detections, class_names: Sequence[str], alpha: float = 0.45,
    labels: np.ndarray | None = None, trails: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """A new image with the detections drawn on a copy of `image`; `labels`, a
    semantic or panoptic map of the frame, is tinted underneath them, and
    `trails` (track id -> points, from `Trails`) are drawn under the boxes."""
    out = image.copy()
    if labels is not None and labels.shape == out.shape[:2]:
        tint_labels(out, labels)
    keys = dets.track_ids if dets.track_ids is not None else dets.class_ids
    colors = [tuple(c) for c in colors_for(keys).tolist()]  # one conversion for all objects
    if dets.masks is not None and len(dets):
        _blend_masks(out, dets, colors, alpha)
    if trails and dets.track_ids is not None:
        thickness = max(2, round(min(out.shape[:2]) / 360))
        for track_id, color in zip(dets.track_ids.tolist(), colors):
            points = trails.get(track_id)
            if points is not None and len(points) > 1:
                cv2.polylines(out, [points], False, color, thickness, cv2.LINE_AA)
    boxes = dets.boxes_found.astype(int)  # the boxes the masks and keypoints were found in
    for box, color in zip(boxes, colors):
        cv2.rectangle(out, tuple(box[:2]), tuple(box[2:]), color, 2)
    if dets.keypoints is not None:
        for kps, color in zip(dets.keypoints, colors):
            visible = kps[:, 2] >= KEYPOINT_MIN_CONF
            pts = kps[:, :2].astype(int)
            for a, b in SKELETON:
                if visible[a] and visible[b]:
                    cv2.line(out, tuple(pts[a]), tuple(pts[b]), color, 2, cv2.LINE_AA)
            for p in pts[visible]:
                cv2.circle(out, tuple(p), 3, (255, 255, 255), -1, cv2.LINE_AA)
    for i, (box, color) in enumerate(zip(boxes, colors)):  # last: labels on top of everything
        name = class_names[dets.class_ids[i]] if dets.class_ids[i] < len(class_names) else str(dets.class_ids[i])
        label = f"#{keys[i]} {name}" if dets.track_ids is not None else f"{name} {dets.scores[i]:.2f}"
        draw_label(out, label, box, color)
    return out


def draw_label(image: np.ndarray, text: str, box: np.ndarray, color: tuple[int, int, int]) -> None:
    """`text` on a plate of the box's colour, sized to the frame (readable at
    576p and at 4K), above the box's top-left corner, or inside the box when
    the frame's top edge is in the way, and moved left to stay in the frame.
    Black or white text, whichever reads better on the colour."""
    h, w = image.shape[:2]
    scale = max(0.4, min(h, w) / 1080)
    thickness = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, round(3 * scale))
    pw, ph = tw + 2 * pad, th + base + 2 * pad
    x = int(min(max(box[0], 0), max(w - pw, 0)))
    y = int(box[1] - ph if box[1] - ph >= 0 else max(box[1], 0))  # above the box, else inside its top
    y = min(y, max(h - ph, 0))
    cv2.rectangle(image, (x, y), (x + pw - 1, y + ph - 1), color, -1)
    b, g, r = color
    ink = (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + pad, y + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thickness, cv2.LINE_AA)
