"""A class per frame pixel from per-pixel class logits at another resolution:
bilinear resize, then argmax over classes, as fast as it can be done
exactly on a CPU (the GPU data path does it in torch, `device_path`)."""

from __future__ import annotations

import cv2
import numpy as np


def label_dtype(num_classes: int) -> type:
    """The smallest label map type for `num_classes`."""
    return np.uint8 if num_classes <= 256 else np.uint16


def resize_argmax(logits: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The class of each pixel of `logits` (C, h, w) resized to `out_hw` (cv2's
    bilinear resize, then argmax over classes), as a `label_dtype` map.

    Only the classes that can win somewhere (`contending_classes`) are
    resized: a trained model's absent classes cost nothing, which matters at
    1080p with 150 ADE20K classes. Each class plane is resized alone and
    folded into a running maximum (`fold_argmax`), in far less memory than
    resizing all planes for an argmax over the class axis
    (bench/semantic_post.py times both).
    """
    fh, fw = out_hw
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    classes = contending_classes(logits)
    labels = np.full((fh, fw), classes[0], label_dtype(logits.shape[0]))
    if len(classes) == 1:
        return labels

    def resized(k: int) -> np.ndarray:
        return cv2.resize(logits[k], (fw, fh), interpolation=cv2.INTER_LINEAR)

    best = resized(classes[0])
    for k in classes[1:]:
        fold_argmax(labels, best, resized(k), k)
    return labels


def fold_argmax(labels: np.ndarray, best: np.ndarray, plane: np.ndarray, k: int) -> None:
    """One step of a running argmax over class planes: where `plane` (float32)
    beats `best`, label `k` and raise `best`, in place. `k` must exceed every
    label so far (classes taken in ascending order), so a maximum sets it;
    with cv2's SIMD compare/and/max this is several times faster than numpy's
    masked assignment, which branches per pixel on noisy borders."""
    if labels.size <= 4:  # cv2's Python binding reads an array of up to 4 values (1x1, 4x1) as a scalar
        labels[plane > best] = k
        np.maximum(best, plane, out=best)
        return
    higher = cv2.compare(plane, best, cv2.CMP_GT)  # 255 where plane wins
    if labels.dtype == np.uint8:
        cv2.max(labels, cv2.bitwise_and(higher, int(k)), dst=labels)
    else:
        np.maximum(labels, (higher > 0) * np.uint16(k), out=labels)
    cv2.max(best, plane, dst=best)


def contending_classes(logits: np.ndarray) -> np.ndarray:
    """The classes (ascending) that can be the argmax somewhere once `logits`
    (C, h, w, C-contiguous) are bilinearly resized.

    Inside a cell of four neighbouring logit pixels, bilinear interpolation
    is the same convex combination of the four corners for every class. So a
    class can beat the class that wins the cell's first corner somewhere in
    the cell only if it reaches that class's value at one of the corners
    (ties kept, so the first of equal classes still wins, as with argmax). A
    class is kept if, at some pixel, it reaches the value there of the first
    corner's winner of some cell the pixel is a corner of.
    """
    c, h, w = logits.shape
    top = np.zeros((h, w), label_dtype(c))  # argmax over classes, folded as in resize_argmax: 7x numpy's argmax(0)
    peak = logits[0].copy()
    for k in range(1, c):
        fold_argmax(top, peak, logits[k], k)
    top = top.astype(np.intp)
    flat = logits.reshape(-1)
    pixels = np.arange(h * w).reshape(h, w)
    reach = peak  # per pixel: the lowest value there of the winners of the cells it is a corner of
    for winners in (top[:-1], top[:, :-1], top[:-1, :-1]):  # the cells above, to the left, above-left
        dy, dx = h - winners.shape[0], w - winners.shape[1]
        np.minimum(reach[dy:, dx:], flat[winners * (h * w) + pixels[dy:, dx:]], out=reach[dy:, dx:])
    return np.flatnonzero((logits >= reach).any(axis=(1, 2)))
