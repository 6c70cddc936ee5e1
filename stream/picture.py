"""A decoded 4:2:0 picture kept in its planes until something needs BGR.

Why: at 1080p, converting each decoded frame to BGR costs about a third of
decoding it, yet the network sees the frame at a few hundred pixels and the
colour features see only the boxes. So the planes are resized or cropped
first and converted after, on thousands of pixels instead of two million.
Whoever needs the whole frame in BGR (drawing, a user's callback) gets it on
first use from FFmpeg's own converter, the same pixels OpenCV's decoder gives.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np


def _bt601_video_levels() -> np.ndarray:
    """(3, 4) affine map from Y, U, V to B, G, R for `cv2.transform`: BT.601 at
    video levels, what FFmpeg assumes for untagged 4:2:0. The -1 stands for
    FFmpeg's truncation where `cv2.transform` rounds (mean difference from
    FFmpeg's conversion of a whole 1080p frame: 0.3 levels)."""
    ky, bu, gu, gv, rv = 1.164, 2.017, 0.392, 0.813, 1.596
    return np.array([
        [ky, bu, 0.0, -16 * ky - 128 * bu - 1.0],
        [ky, -gu, -gv, -16 * ky + 128 * (gu + gv) - 1.0],
        [ky, 0.0, rv, -16 * ky - 128 * rv - 1.0],
    ], np.float32)


YUV_TO_BGR = _bt601_video_levels()


def transform_fixed_point(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How `cv2.transform` applies a small (3, 4) matrix to uint8 pixels, for
    code that must give its exact values elsewhere (on a GPU): (3, 3) weights
    and (3,) offsets in 10-bit fixed point; out = clip((weights @ px + offsets) >> 10).
    Checked against OpenCV on real frames and on noise."""
    m = matrix.astype(np.float32)
    weights = np.rint(m[:, :3] * np.float32(1024)).astype(np.int32)
    offsets = np.rint((m[:, 3] + np.float32(0.5)) * np.float32(1024)).astype(np.int32)
    return weights, offsets


class Yuv420:
    """Planes of one decoded picture: `y` (H, W), `u` and `v` (ceil(H/2), ceil(W/2)),
    uint8 at video levels, as views of the decoder's buffers. `to_bgr()` makes
    the whole frame in BGR exactly as the decoder would have."""

    def __init__(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, to_bgr: Callable[[], np.ndarray]) -> None:
        self.y, self.u, self.v = y, u, v
        self.to_bgr = to_bgr

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.y.shape[0]), int(self.y.shape[1])

    def resized_bgr(self, width: int, height: int) -> np.ndarray:
        """The whole picture as (height, width, 3) BGR, each plane resized
        (bilinear) to that size, then converted. Against converting first and
        resizing after, as the network input was made before: 0.6 levels apart
        on average, a few levels at most but for hard colour edges."""
        size = (width, height)
        planes = [cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in (self.y, self.u, self.v)]
        return cv2.transform(cv2.merge(planes), YUV_TO_BGR)

    def crop_bgr(self, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        """Pixels [y1:y2, x1:x2] in BGR (bounds inside the picture), converted alone
        by OpenCV in one call: each chroma sample covers its 2x2 block, as in
        FFmpeg's converter, and the colours are within a level of its on average."""
        cx1, cy1, cx2, cy2 = x1 // 2, y1 // 2, (x2 + 1) // 2, (y2 + 1) // 2
        w, h = (cx2 - cx1) * 2, (cy2 - cy1) * 2
        y = self.y[cy1 * 2: cy1 * 2 + h, cx1 * 2: cx1 * 2 + w]
        if y.shape != (h, w):  # an odd-sized picture's last row or column
            y = cv2.copyMakeBorder(y, 0, h - y.shape[0], 0, w - y.shape[1], cv2.BORDER_REPLICATE)
        bgr = _i420_to_bgr(y, self.u[cy1:cy2, cx1:cx2], self.v[cy1:cy2, cx1:cx2])
        return bgr[y1 - cy1 * 2: y2 - cy1 * 2, x1 - cx1 * 2: x2 - cx1 * 2]

    def crop_bgr_half(self, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        """About `crop_bgr(...)[::2, ::2]`, from a quarter of the pixels: the
        luma sample at each kept pixel and the chroma sample that covers it,
        converted with `YUV_TO_BGR` (within a level or two of `crop_bgr`'s
        pixels there). For statistics such as colour histograms, which a
        regular sample of the box describes as well: 0.13 ms instead of 0.34
        for a 200x400-pixel person, histogram included."""
        y = self.y[y1:y2:2, x1:x2:2]
        h, w = y.shape
        u = self.u[y1 // 2: y1 // 2 + h, x1 // 2: x1 // 2 + w]
        v = self.v[y1 // 2: y1 // 2 + h, x1 // 2: x1 // 2 + w]
        if u.shape != (h, w):  # an odd-sized picture's last row or column
            u = cv2.copyMakeBorder(u, 0, h - u.shape[0], 0, w - u.shape[1], cv2.BORDER_REPLICATE)
            v = cv2.copyMakeBorder(v, 0, h - v.shape[0], 0, w - v.shape[1], cv2.BORDER_REPLICATE)
        return cv2.transform(cv2.merge([y, u, v]), YUV_TO_BGR)


def _i420_to_bgr(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Even-sized planes -> BGR, in OpenCV's I420 layout (Y rows, then U, then V)."""
    h, w = y.shape
    planar = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)
    return cv2.cvtColor(planar, cv2.COLOR_YUV2BGR_I420)
