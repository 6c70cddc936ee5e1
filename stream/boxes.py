"""Vectorised box geometry shared by the engines (NMS, model fusion) and the tracker."""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (N, M) between xyxy boxes a (N, 4) and b (M, 4).

    Called every frame by NMS, model fusion and the trackers with a few dozen
    boxes, so it is written for few numpy calls rather than brevity."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ax1, ay1, ax2, ay2 = a.T[:, :, None]  # (N, 1) each
    bx1, by1, bx2, by2 = b.T[:, None, :]  # (1, M) each
    inter = np.maximum(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0.0) * np.maximum(
        np.minimum(ay2, by2) - np.maximum(ay1, by1), 0.0)
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Top-left width/height (MOTChallenge) -> corners."""
    out = np.array(boxes, dtype=np.float64, copy=True)
    out[:, 2:4] += out[:, 0:2]
    return out


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Centre width/height (YOLO heads) -> corners."""
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, 0:2] - half, boxes[:, 0:2] + half], axis=1)
