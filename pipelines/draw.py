"""Annotated frames for `--save`: semantic/panoptic maps, masks, boxes, track ids and COCO skeletons."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Sequence

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
    legend: Sequence[tuple[str, tuple[int, int, int]]] | None = None,
) -> np.ndarray:
    """A new image with the detections drawn on a copy of `image`; `labels`, a
    semantic or panoptic map of the frame, is tinted underneath them (with
    `legend`, from `legend_entries`, saying what the tints are), and
    `trails` (track id -> points, from `Trails`) are drawn under the boxes.
    Labels sit on plates that stay inside the frame and off each other."""
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
    texts = []
    for i in range(len(boxes)):
        name = class_names[dets.class_ids[i]] if dets.class_ids[i] < len(class_names) else str(dets.class_ids[i])
        texts.append(f"#{keys[i]} {name}" if dets.track_ids is not None else f"{name} {dets.scores[i]:.2f}")
    style = TextStyle.for_frame(out.shape[:2])
    plates = place_labels(boxes, [style.plate_size(t) for t in texts], out.shape[:2])
    for text, corner, color in zip(texts, plates, colors):  # last: labels on top of everything
        draw_plate(out, text, corner, color, style)
    if legend:
        draw_legend(out, legend, style)
    return out


@dataclass(frozen=True)
class TextStyle:
    """Label text sized to the frame, readable at 576p and at 4K."""

    scale: float
    thickness: int
    pad: int

    @classmethod
    def for_frame(cls, hw: tuple[int, int]) -> TextStyle:
        scale = max(0.4, min(hw) / 1080)
        return cls(scale, max(1, round(scale * 1.5)), max(2, round(3 * scale)))

    def plate_size(self, text: str) -> tuple[int, int]:
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, self.scale, self.thickness)
        return tw + 2 * self.pad, th + base + 2 * self.pad


def place_labels(boxes: np.ndarray, sizes: Sequence[tuple[int, int]], hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners of label plates (width, height in `sizes`), one per box,
    inside the frame and not covering each other where the frame leaves room.

    Each plate goes above its box's top-left corner, else just inside the box;
    where an earlier plate is, it steps up (then down) a plate's height at a
    time along the box's left edge, so two people side by side or one in
    front of the other get two readable labels instead of one over the
    other, stacked above them rather than over their bodies. Boxes are
    placed top to bottom."""
    h, w = hw
    placed: list[tuple[int, int, int, int]] = []
    corners: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda k: (float(boxes[k][1]), float(boxes[k][0]))):
        pw, ph = sizes[i]
        x = int(min(max(boxes[i][0], 0), max(w - pw, 0)))
        y0 = int(boxes[i][1] - ph if boxes[i][1] - ph >= 0 else max(boxes[i][1], 0))
        candidates = [y0] + [y0 - k * ph for k in range(1, 5)] + [y0 + k * ph for k in range(1, 9)]
        free = [y for y in candidates if 0 <= y <= h - ph and not any(
            x < px + qw and px < x + pw and y < py + qh and py < y + ph for px, py, qw, qh in placed)]
        y = free[0] if free else min(max(y0, 0), max(h - ph, 0))
        corners[i] = (x, y)
        placed.append((x, y, pw, ph))
    return corners


def draw_plate(image: np.ndarray, text: str, corner: tuple[int, int], color: tuple[int, int, int],
               style: TextStyle) -> None:
    """`text` on a plate of `color` at `corner`, in black or white, whichever reads better on it."""
    pw, ph = style.plate_size(text)
    x, y = corner
    cv2.rectangle(image, (x, y), (x + pw - 1, y + ph - 1), color, -1)
    b, g, r = color
    ink = (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)
    (_, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, style.scale, style.thickness)
    cv2.putText(image, text, (x + style.pad, y + style.pad + th), cv2.FONT_HERSHEY_SIMPLEX, style.scale, ink,
                style.thickness, cv2.LINE_AA)


def draw_label(image: np.ndarray, text: str, box: np.ndarray, color: tuple[int, int, int]) -> None:
    """One label on its box, as `annotate` places them (for a single box)."""
    style = TextStyle.for_frame(image.shape[:2])
    draw_plate(image, text, place_labels(np.asarray([box]), [style.plate_size(text)], image.shape[:2])[0], color,
               style)


LEGEND_ROWS = 12


def legend_entries(labels: np.ndarray, message: dict[str, Any]) -> list[tuple[str, tuple[int, int, int]]]:
    """What a semantic or panoptic map's tints mean, largest first: (name,
    colour) for each class (semantic) or stuff segment (panoptic; things carry
    their own labels) in this frame. Empty when the message has no map."""
    semantic, panoptic = message.get("semantic"), message.get("panoptic")
    if panoptic:
        segments = [s for s in panoptic.get("segments", ()) if not s.get("isthing")]
        segments.sort(key=lambda s: -int(s.get("area", 0)))
        colors = label_colors(max([int(s["id"]) for s in segments], default=0) + 1)
        return [(str(s.get("category", s["id"])), tuple(int(c) for c in colors[int(s["id"])])) for s in segments]
    if semantic:
        names = semantic.get("classes", [])
        counts = np.bincount(labels.reshape(-1), minlength=len(names))
        colors = label_colors(len(counts))
        ids = [int(i) for i in np.argsort(-counts) if counts[i] > 0 and i > 0]
        return [(str(names[i]) if i < len(names) else str(i), tuple(int(c) for c in colors[i])) for i in ids]
    return []


def draw_legend(image: np.ndarray, entries: Sequence[tuple[str, tuple[int, int, int]]], style: TextStyle) -> None:
    """A swatch and a name per entry, in the frame's bottom-left corner, on a dark plate."""
    shown = list(entries[:LEGEND_ROWS])
    if len(entries) > LEGEND_ROWS:
        shown.append((f"+{len(entries) - LEGEND_ROWS} more", (128, 128, 128)))
    sizes = [style.plate_size(name) for name, _ in shown]
    row_h = max(ph for _, ph in sizes)
    width = max(pw for pw, _ in sizes) + row_h
    h, w = image.shape[:2]
    x0, y0 = style.pad, max(h - row_h * len(shown) - style.pad, 0)
    region = image[y0:h, x0:min(x0 + width, w)]
    region[:] = (region * 0.35).astype(np.uint8)  # darken what is under the legend
    for k, (name, color) in enumerate(shown):
        y = y0 + k * row_h
        cv2.rectangle(image, (x0 + style.pad, y + style.pad), (x0 + row_h - style.pad, y + row_h - style.pad), color, -1)
        cv2.putText(image, name, (x0 + row_h, y + row_h - style.pad - 2), cv2.FONT_HERSHEY_SIMPLEX, style.scale,
                    (255, 255, 255), style.thickness, cv2.LINE_AA)
