"""Cost matrices and the assignment step, independent of what the cost means."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..stream.boxes import box_iou


def iou_similarity(det_xyxy: np.ndarray, trk_xyxy: np.ndarray, det_cls: np.ndarray, trk_cls: np.ndarray) -> np.ndarray:
    """(D, T) IoU; pairs of different classes get 0 so a track never changes class."""
    iou = box_iou(det_xyxy, trk_xyxy)
    iou *= det_cls[:, None] == trk_cls[None, :]  # a multiply is cheaper than a masked store
    return iou


def iou_and_centre_penalty(
    det_xyxy: np.ndarray, trk_xyxy: np.ndarray, det_cls: np.ndarray, trk_cls: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(D, T) `iou_similarity` and DIoU's centre penalty, computed together to
    share the corner comparisons (the two largest costs of a BYTE update on
    few boxes). The penalty is the squared centre distance over the squared
    diagonal of the smallest box enclosing both: unlike IoU it still ranks
    pairs that do not overlap (fast motion, low frame rates) and prefers the
    nearer of two overlapping candidates."""
    a, b = det_xyxy.T[:, :, None], trk_xyxy.T[:, None, :]
    lo_x, hi_x = np.minimum(a[0], b[0]), np.maximum(a[0], b[0])
    lo_y, hi_y = np.minimum(a[1], b[1]), np.maximum(a[1], b[1])
    lo_x2, hi_x2 = np.minimum(a[2], b[2]), np.maximum(a[2], b[2])
    lo_y2, hi_y2 = np.minimum(a[3], b[3]), np.maximum(a[3], b[3])
    inter = np.maximum(lo_x2 - hi_x, 0.0) * np.maximum(lo_y2 - hi_y, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    iou *= det_cls[:, None] == trk_cls[None, :]
    dx = (a[0] + a[2]) - (b[0] + b[2])
    dy = (a[1] + a[3]) - (b[1] + b[3])
    w, h = hi_x2 - lo_x, hi_y2 - lo_y
    return iou, (dx * dx + dy * dy) / np.maximum(4 * (w * w + h * h), 1e-6)


def match(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment (Hungarian); pairs costing more than
    `max_cost` are rejected. Returns (matched rows, their cols, unmatched rows,
    unmatched cols), the first two in increasing row order."""
    rows_n, cols_n = cost.shape
    if rows_n == 0 or cols_n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.arange(rows_n), np.arange(cols_n)
    rows, cols = linear_sum_assignment(cost)
    ok = cost[rows, cols] <= max_cost
    rows, cols = rows[ok], cols[ok]
    free_rows = np.ones(rows_n, bool)
    free_rows[rows] = False
    free_cols = np.ones(cols_n, bool)
    free_cols[cols] = False
    return rows, cols, free_rows.nonzero()[0], free_cols.nonzero()[0]
