"""Greedy non-maximum suppression, class-aware by the coordinate-offset trick."""

from __future__ import annotations

import numpy as np

from ...stream.boxes import box_iou

# Offset per class so boxes of different classes never overlap (Ultralytics' max_wh).
CLASS_OFFSET = 7680.0


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of kept boxes, highest score first. A box is dropped when its IoU
    with an already kept, higher-scoring box exceeds `iou_threshold`."""
    order = np.argsort(-scores, kind="stable")
    if len(order) == 0:
        return order
    iou = box_iou(xyxy[order], xyxy[order])
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)]


def batched_nms(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS: boxes only suppress boxes of their own class."""
    shifted = xyxy + (class_ids.astype(xyxy.dtype) * CLASS_OFFSET)[:, None]
    return nms(shifted, scores, iou_threshold)
