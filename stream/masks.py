"""Instance masks stored as the crop inside each object's box: `BoxMasks`.

Why not a dense (N, H, W) array: it costs N x H x W bytes per frame (twenty
people on a 4K camera: 166 MB, held by every queued frame), and every stage
that allocates, slices, copies or encodes it pays for the whole frame. An
instance mask is zero outside its box by construction (YOLO crops the mask to
the box, Mask R-CNN pastes it into the box), so keeping the crop and where it
sits is exact, and selecting rows is a list index.

It still reads like the dense array where that is convenient: `len`, `shape`,
`masks[i]` (one dense (H, W) mask), `masks[rows]` (a `BoxMasks`), iteration
over dense masks, and `np.asarray(masks)` for the (N, H, W) array. Hot paths
(wire encoding, colour histograms, drawing, panoptic fusion) use `crops` and
`origins` directly.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np


class BoxMasks:
    """N boolean masks of a frame of `frame_hw`: mask i is zero everywhere
    except in the window of `crops[i]` (an (h, w) bool array) whose top-left
    pixel is `origins[i]` = (x, y)."""

    __slots__ = ("crops", "origins", "frame_hw")

    def __init__(self, crops: Sequence[np.ndarray], origins: Any, frame_hw: tuple[int, int]) -> None:
        self.crops = [np.asarray(c, dtype=bool) for c in crops]
        self.origins = np.asarray(origins, dtype=np.int64).reshape(-1, 2)
        self.frame_hw = (int(frame_hw[0]), int(frame_hw[1]))
        if len(self.crops) != len(self.origins):
            raise ValueError(f"BoxMasks: {len(self.crops)} crops but {len(self.origins)} origins")
        h, w = self.frame_hw
        for crop, (x, y) in zip(self.crops, self.origins):
            if crop.ndim != 2 or x < 0 or y < 0 or x + crop.shape[1] > w or y + crop.shape[0] > h:
                raise ValueError(f"BoxMasks: a crop of shape {crop.shape} at (x={x}, y={y}) does not fit a {w}x{h} frame")

    @classmethod
    def _unchecked(cls, crops: list[np.ndarray], origins: np.ndarray, frame_hw: tuple[int, int]) -> BoxMasks:
        """From parts of valid BoxMasks (slicing, concatenation): valid by construction."""
        out = object.__new__(cls)
        out.crops, out.origins, out.frame_hw = crops, origins, frame_hw
        return out

    @classmethod
    def from_dense(cls, masks: np.ndarray, ranges: np.ndarray | None = None) -> BoxMasks:
        """From an (N, H, W) array. `ranges` (N, 4) are end-exclusive pixel windows
        (x0, y0, x1, y1) outside which the caller knows the masks are zero;
        without them each mask is cut to its own bounding box."""
        masks = np.asarray(masks, dtype=bool)
        n, h, w = masks.shape
        if ranges is None:
            rows, cols = masks.any(axis=2), masks.any(axis=1)
            ranges = np.zeros((n, 4), np.int64)
            filled = rows.any(axis=1)
            ranges[filled, 0] = cols[filled].argmax(axis=1)
            ranges[filled, 1] = rows[filled].argmax(axis=1)
            ranges[filled, 2] = w - cols[filled, ::-1].argmax(axis=1)
            ranges[filled, 3] = h - rows[filled, ::-1].argmax(axis=1)
        ranges = np.asarray(ranges, dtype=np.int64).reshape(n, 4)
        crops = [masks[i, y0:y1, x0:x1].copy() for i, (x0, y0, x1, y1) in enumerate(ranges.tolist())]
        return cls(crops, ranges[:, :2], (h, w))

    @classmethod
    def empty(cls, n: int, frame_hw: tuple[int, int]) -> BoxMasks:
        """N all-zero masks (keypoint-only persons next to segmented ones)."""
        return cls._unchecked([np.zeros((0, 0), bool) for _ in range(n)], np.zeros((n, 2), np.int64),
                              (int(frame_hw[0]), int(frame_hw[1])))

    @classmethod
    def concat(cls, parts: Sequence[BoxMasks]) -> BoxMasks:
        sizes = {p.frame_hw for p in parts}
        if len(sizes) != 1:
            raise ValueError(f"BoxMasks.concat: masks of different frame sizes {sorted(sizes)}")
        crops = [c for p in parts for c in p.crops]
        return cls._unchecked(crops, np.concatenate([p.origins for p in parts]), parts[0].frame_hw)

    # ---- array-like reading ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.crops),) + self.frame_hw

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(bool)

    ndim = 3

    def __getitem__(self, key: Any) -> Any:
        """An int gives one dense (H, W) mask; a slice, index array or boolean
        mask gives BoxMasks of those rows; a tuple indexes the dense array."""
        if isinstance(key, (int, np.integer)):
            return self.mask(int(key))
        if isinstance(key, tuple):
            return self.dense()[key]
        if isinstance(key, slice):
            index = np.arange(len(self))[key]
        else:
            index = np.asarray(key)
            index = np.flatnonzero(index) if index.dtype == bool else index.astype(np.intp, copy=False).reshape(-1)
        origins = self.origins[index]  # raises IndexError out of range
        return BoxMasks._unchecked([self.crops[i] for i in index.tolist()], origins, self.frame_hw)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.mask(i) for i in range(len(self)))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if copy is False:
            raise ValueError("BoxMasks holds crops: the dense (N, H, W) array is always a new copy")
        dense = self.dense()
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"BoxMasks(n={len(self)}, frame_hw={self.frame_hw})"

    def mask(self, i: int) -> np.ndarray:
        """Mask i as a dense (H, W) array."""
        h, w = self.frame_hw
        return self.window(i, 0, 0, w, h)

    def dense(self) -> np.ndarray:
        """All masks as one (N, H, W) array."""
        out = np.zeros(self.shape, bool)
        for i, (crop, (x, y)) in enumerate(zip(self.crops, self.origins.tolist())):
            out[i, y:y + crop.shape[0], x:x + crop.shape[1]] = crop
        return out

    def window(self, i: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Mask i inside the end-exclusive pixel window [x0, x1) x [y0, y1), as an
        (y1 - y0, x1 - x0) array (zero where the crop does not reach)."""
        out = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), bool)
        crop = self.crops[i]
        cx, cy = self.origins[i].tolist()
        ax0, ay0 = max(x0, cx), max(y0, cy)
        ax1, ay1 = min(x1, cx + crop.shape[1]), min(y1, cy + crop.shape[0])
        if ax1 > ax0 and ay1 > ay0:
            out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = crop[ay0 - cy:ay1 - cy, ax0 - cx:ax1 - cx]
        return out

    def areas(self) -> np.ndarray:
        """(N,) number of pixels in each mask."""
        return np.array([np.count_nonzero(c) for c in self.crops], dtype=np.int64)


def paired_mask_iou(a: BoxMasks, b: BoxMasks) -> np.ndarray:
    """(N,) IoU of mask i of `a` with mask i of `b` (0 where both are empty),
    each pair compared only over the window that holds both crops."""
    if len(a) != len(b) or a.frame_hw != b.frame_hw:
        raise ValueError(f"paired_mask_iou: {a} and {b} do not pair up")
    out = np.zeros(len(a))
    for i, (ca, cb, (ax, ay), (bx, by)) in enumerate(zip(a.crops, b.crops, a.origins.tolist(), b.origins.tolist())):
        x0, y0 = min(ax, bx), min(ay, by)
        x1, y1 = max(ax + ca.shape[1], bx + cb.shape[1]), max(ay + ca.shape[0], by + cb.shape[0])
        wa, wb = a.window(i, x0, y0, x1, y1), b.window(i, x0, y0, x1, y1)
        union = np.count_nonzero(wa | wb)
        out[i] = np.count_nonzero(wa & wb) / union if union else 0.0
    return out


__all__ = ["BoxMasks", "paired_mask_iou"]
