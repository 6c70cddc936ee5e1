"""COCO run-length encoding of instance masks, both ways, for the wire.

Masks travel as COCO's compressed RLE: run lengths of alternating 0s and 1s
over the mask in column-major order, as a string. Encoding uses pycocotools
(the reference); decoding is done here, checked, so that a malformed or
hostile message costs bounded time and memory and raises `WireError`, never
garbage (pycocotools leaves a buffer uninitialised when the runs fall short).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from pycocotools import mask as coco_mask

from .errors import PublishError

# The largest mask (and frame) a reader decodes unless told otherwise: an 8K
# frame is 33 million pixels.
DEFAULT_MAX_PIXELS = 1 << 26


class WireError(PublishError):
    """A received message does not follow the wire schema."""


def mask_to_rle(
    mask: np.ndarray, origin: tuple[int, int] = (0, 0), frame_hw: tuple[int, int] | None = None
) -> dict[str, Any] | None:
    """(h, w) bool -> COCO compressed RLE with `counts` as str; None if empty.

    `mask` is the whole frame, or (with `frame_hw`) a crop whose top-left
    pixel sits at `origin` = (x, y) of a frame of that size, as `BoxMasks`
    keeps them. Runs are found only in the columns the mask occupies (COCO RLE
    is column-major), which is several times faster than encoding the whole
    frame for the small objects of a typical scene."""
    h, w = frame_hw if frame_hw is not None else mask.shape
    cols = np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0:
        return None
    ox, oy = int(origin[0]), int(origin[1])
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    if oy == 0 and mask.shape[0] == h:
        flat = mask[:, c0:c1].T.ravel()
    else:  # a crop: pad its columns to the frame's height
        strip = np.zeros((c1 - c0, h), bool)
        strip[:, oy:oy + mask.shape[0]] = mask[:, c0:c1].T
        flat = strip.ravel()
    x0, x1 = ox + c0, ox + c1
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [len(flat)]]))
    lead, trail = x0 * h, (w - x1) * h
    # Counts alternate zeros, ones, zeros, ... starting with a (maybe empty) run of zeros.
    if flat[0]:
        runs = np.concatenate([[lead], runs])
    else:
        runs[0] += lead
    if not flat[-1]:
        runs[-1] += trail
    elif trail:
        runs = np.concatenate([runs, [trail]])
    rle = coco_mask.frPyObjects({"size": [h, w], "counts": runs.tolist()}, h, w)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def rle_counts(counts: str) -> np.ndarray:
    """The run lengths of a COCO compressed RLE string (`rleFrString` in COCO's
    maskApi.c), checked: each run is a signed number in 5-bit groups, least
    significant first, each written as the character 48 + group; bit 0x20
    says another group follows and bit 0x10 of the last group is the sign
    (two's complement); from the fourth run on, the number is the difference
    to the run two places earlier. Raises WireError for a character out of
    range, a number cut short or longer than 64 bits, or a negative run."""
    try:
        raw = counts.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raise WireError("mask counts must be an ASCII string") from None
    out: list[int] = []
    p = 0
    while p < len(raw):
        x = k = 0
        while True:
            if p >= len(raw) or k > 12:
                raise WireError("mask counts end inside a number, or a number is too long")
            c = raw[p] - 48
            if not 0 <= c < 64:
                raise WireError(f"mask counts hold a character out of range: {chr(raw[p])!r}")
            x |= (c & 0x1F) << (5 * k)
            p += 1
            k += 1
            if not c & 0x20:
                if c & 0x10:
                    x -= 1 << (5 * k)
                break
        if len(out) > 2:
            x += out[-2]
        if x < 0:
            raise WireError("mask counts hold a negative run")
        out.append(x)
    return np.array(out, np.int64)


def rle_to_mask(rle: Mapping[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """COCO RLE dict (compressed str counts or uncompressed list) -> (H, W) bool.

    Checked before anything is allocated: `size` is two non-negative ints of at
    most `max_pixels` pixels together, and the runs cover exactly the mask
    (pycocotools leaves the rest of its buffer uninitialised when they fall
    short). Anything else raises WireError."""
    if not isinstance(rle, Mapping):
        raise WireError("a mask must be a JSON object with size and counts")
    size, counts = rle.get("size"), rle.get("counts")
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise WireError(f"mask size must be [height, width], got {size!r:.40}")
    h, w = size
    if h * w > max_pixels:
        raise WireError(f"mask size {h}x{w} is over the {max_pixels}-pixel limit")
    if isinstance(counts, str):
        runs = rle_counts(counts)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        runs = np.array(counts, np.int64)
    else:
        raise WireError("mask counts must be a string or a list of non-negative ints")
    if int(runs.sum()) != h * w:
        raise WireError(f"mask runs cover {int(runs.sum())} pixels, not the {h}x{w} of its size")
    values = np.arange(len(runs)) % 2 == 1  # runs alternate 0s and 1s, starting with 0s
    return np.repeat(values, runs).reshape(w, h).T  # column-major
