"""Camera motion compensation: how the whole image moved between two frames.

A robot's camera turns and every track's predicted box ends up beside its
object. `CameraMotion` estimates the frame-to-frame similarity transform
(rotation, uniform scale, translation) from sparse optical flow on a
downscaled grey image, ignoring pixels inside detections (people move on
their own), so trackers can move their predictions with the camera before
association. Trackers themselves never see pixels: they receive the 2x3 warp.
"""

from __future__ import annotations

import cv2
import numpy as np

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def estimate_warp(prev: np.ndarray, curr: np.ndarray, exclude: np.ndarray | None = None, max_corners: int = 400) -> np.ndarray:
    """2x3 warp mapping `prev` pixel coordinates to `curr` ones (grey uint8
    images of the same size); identity when too few points can be followed.
    `exclude` (N, 4) xyxy boxes in these images' pixels are not sampled."""
    mask = np.full(prev.shape, 255, np.uint8)
    if exclude is not None:
        for x1, y1, x2, y2 in np.round(exclude).astype(int):
            mask[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = 0
    points = cv2.goodFeaturesToTrack(prev, max_corners, 0.01, 3, mask=mask, blockSize=3)
    if points is None or len(points) < 8:
        return IDENTITY.copy()
    moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, curr, points, None)
    ok = status.reshape(-1) == 1
    if ok.sum() < 8:
        return IDENTITY.copy()
    warp, _ = cv2.estimateAffinePartial2D(points[ok], moved[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0)
    return IDENTITY.copy() if warp is None else warp


class CameraMotion:
    """Per-stream state: the previous downscaled grey frame.

    `update(image, boxes)` returns the warp from the previous frame to this
    one in full-resolution pixels (identity for the first frame).
    """

    def __init__(self, downscale: int = 4) -> None:
        self.downscale = downscale
        self._prev: np.ndarray | None = None

    def update(self, image: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        s = self.downscale
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (grey.shape[1] // s, grey.shape[0] // s), interpolation=cv2.INTER_AREA)
        prev, self._prev = self._prev, small
        if prev is None or prev.shape != small.shape:  # first frame, or the camera came back at another resolution
            return IDENTITY.copy()
        warp = estimate_warp(prev, small, None if boxes is None else boxes / s)
        warp[:, 2] *= s  # translation back to full-resolution pixels
        return warp
