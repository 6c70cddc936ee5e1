"""Instance masks from YOLO prototypes, assembled at frame resolution.

Follows Ultralytics' `process_mask_native` (used with `retina_masks=True`):
mask logits = coefficients @ prototypes; the letterbox padding is cut off in
prototype space; the rest is bilinearly upsampled (align_corners=False) to the
frame and cropped to the box. Instead of upsampling N full-frame masks, each
mask is interpolated only inside its own box, with separable interpolation
matrices, which is exact and costs a few small matrix products per object;
the result is kept as that crop (`stream.masks.BoxMasks`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...stream.masks import BoxMasks


@lru_cache(maxsize=16)
def interpolation_taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's bilinear resize (align_corners=False, edges clamped) from
    in_size to out_size samples: output i = (1 - frac[i]) * in[lo[i]] + frac[i] * in[hi[i]].
    `lo` and `hi` never decrease, so outputs a..b read inputs lo[a]..hi[b]."""
    scale = in_size / out_size
    src = ((np.arange(out_size) + 0.5) * scale - 0.5).clip(0, None)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = (src - lo).astype(np.float32)
    for a in (lo, hi, frac):
        a.setflags(write=False)
    return lo, hi, frac


@lru_cache(maxsize=16)
def interpolation_matrix(out_size: int, in_size: int) -> np.ndarray:
    """(out_size, in_size) matrix M such that M @ v is that bilinear resize of v."""
    lo, hi, frac = interpolation_taps(out_size, in_size)
    m = np.zeros((out_size, in_size), dtype=np.float32)
    rows = np.arange(out_size)
    np.add.at(m, (rows, lo), 1 - frac)
    np.add.at(m, (rows, hi), frac)
    m.setflags(write=False)
    return m


def proto_region(proto_hw: tuple[int, int], frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the prototype map that covers the frame
    (the rest is letterbox padding), as Ultralytics' `scale_masks` computes it."""
    mh, mw = proto_hw
    h, w = frame_hw
    gain = min(mh / h, mw / w)
    pad_w, pad_h = (mw - w * gain) / 2, (mh - h * gain) / 2
    return int(pad_h), int(mh - pad_h), int(pad_w), int(mw - pad_w)


def box_pixel_ranges(xyxy: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Integer pixel ranges (x0, y0, x1, y1), end-exclusive, of the pixels whose
    index lies in [x1, x2) x [y1, y2) of each box (Ultralytics' `crop_mask`)."""
    h, w = frame_hw
    r = np.ceil(xyxy).astype(np.int64)
    r[:, [0, 2]] = r[:, [0, 2]].clip(0, w)
    r[:, [1, 3]] = r[:, [1, 3]].clip(0, h)
    return r


def assemble_masks(
    protos: np.ndarray, coefficients: np.ndarray, xyxy: np.ndarray, frame_hw: tuple[int, int]
) -> BoxMasks:
    """N masks at frame resolution from prototypes (C, mh, mw), coefficients
    (N, C) and frame-pixel boxes (N, 4), each kept as its crop inside the box."""
    h, w = frame_hw
    n = len(coefficients)
    ranges = box_pixel_ranges(np.asarray(xyxy, np.float32).reshape(-1, 4), frame_hw)
    if n == 0:
        return BoxMasks([], ranges[:, :2], (h, w))
    top, bottom, left, right = proto_region(protos.shape[1:], frame_hw)
    region = protos[:, top:bottom, left:right]
    c, rh, rw = region.shape
    logits = (coefficients.astype(np.float32) @ region.reshape(c, -1)).reshape(n, rh, rw)
    my, mx = interpolation_matrix(h, rh), interpolation_matrix(w, rw)
    (ylo, yhi, _), (xlo, xhi, _) = interpolation_taps(h, rh), interpolation_taps(w, rw)
    crops = []
    for i, (x0, y0, x1, y1) in enumerate(ranges.tolist()):
        if x1 <= x0 or y1 <= y0:
            crops.append(np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), bool))
            continue
        # Only the prototype rows/columns these pixels read from.
        ry0, ry1, rx0, rx1 = ylo[y0], yhi[y1 - 1] + 1, xlo[x0], xhi[x1 - 1] + 1
        crops.append((my[y0:y1, ry0:ry1] @ logits[i, ry0:ry1, rx0:rx1] @ mx[x0:x1, rx0:rx1].T) > 0)
    return BoxMasks(crops, ranges[:, :2], (h, w))
