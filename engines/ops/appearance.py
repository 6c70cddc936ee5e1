"""Model-free appearance embeddings from what the pipeline already has.

When no re-identification model is available, the colours inside each
instance mask (or the box, without masks) still tell people apart: a
hue/saturation/value histogram, square-rooted (Hellinger) and L2-normalised
so that a dot product is a similarity in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

from ...stream.types import Detections, Frame, as_frame

BINS = (8, 4, 4)
# Boxes at least this many pixels each way are sampled at every other pixel each way:
# a quarter of the work, the same histogram to a cosine of 0.998 (a 1080p person).
HALF_SAMPLE_PX = 48


def color_embeddings(frame: Frame | np.ndarray, dets: Detections, bins: tuple[int, int, int] = BINS) -> np.ndarray:
    """(N, prod(bins)) float32 embeddings for the detections of one frame (or BGR image).
    Only the boxes are converted: a video file's frame is never converted whole here;
    a large box is sampled at every other pixel (`HALF_SAMPLE_PX`)."""
    out = np.zeros((len(dets), int(np.prod(bins))), np.float32)
    if len(dets) == 0:
        return out
    frame = as_frame(frame)
    h, w = frame.height, frame.width
    for i, (x1, y1, x2, y2) in enumerate(np.round(dets.xyxy).astype(int).tolist()):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 <= x1 or y2 <= y1:
            continue
        step = 2 if min(x2 - x1, y2 - y1) >= HALF_SAMPLE_PX else 1
        mask = None
        if dets.masks is not None:
            mask = np.ascontiguousarray(dets.masks.window(i, x1, y1, x2, y2)[::step, ::step]).view(np.uint8)
            if not mask.any():
                mask = None
        # Only the box: people cover a fraction of the frame.
        hsv = cv2.cvtColor(frame.crop(x1, y1, x2, y2, step), cv2.COLOR_BGR2HSV)
        out[i] = cv2.calcHist([hsv], [0, 1, 2], mask, list(bins), [0, 180, 0, 256, 0, 256]).reshape(-1)
    out = np.sqrt(out / np.maximum(out.sum(axis=1, keepdims=True), 1.0))
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
