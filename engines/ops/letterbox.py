"""Letterbox resize (Ultralytics convention) and the inverse mapping back to frame pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...stream.types import Frame, as_frame

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed into the network input: scaled by `gain`, then
    padded by `left`/`top` pixels. `frame_hw` is the original frame size."""

    gain: float
    left: int
    top: int
    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]

    def boxes_to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        """Input-pixel boxes -> frame-pixel boxes, clipped to the frame."""
        out = (xyxy - np.array([self.left, self.top, self.left, self.top], dtype=xyxy.dtype)) / self.gain
        h, w = self.frame_hw
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
        return out

    def points_to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Input-pixel points (..., 2) -> frame pixels, clipped to the frame."""
        out = (xy - np.array([self.left, self.top], dtype=xy.dtype)) / self.gain
        h, w = self.frame_hw
        out[..., 0] = out[..., 0].clip(0, w)
        out[..., 1] = out[..., 1].clip(0, h)
        return out


def letterbox_geometry(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> tuple[Letterbox, int, int]:
    """Where a frame goes in the network input (Ultralytics' rounding): the
    `Letterbox` and the resized size (new_w, new_h). Shared by the CPU and the
    GPU letterbox so both place frames identically."""
    h, w = frame_hw
    ih, iw = input_hw
    gain = min(ih / h, iw / w)
    new_w, new_h = int(round(w * gain)), int(round(h * gain))
    dw, dh = (iw - new_w) / 2, (ih - new_h) / 2
    return Letterbox(gain, int(round(dw - 0.1)), int(round(dh - 0.1)), (h, w), (ih, iw)), new_w, new_h


def letterbox(image: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio and pad with grey to `input_hw`, centred."""
    return letterbox_frame(as_frame(image), input_hw)


def letterbox_frame(frame: Frame, input_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """`letterbox` of a frame, made from its decoded planes when it has them
    (resized, then converted: a video file's frame is never converted whole)."""
    lb, new_w, new_h = letterbox_geometry((frame.height, frame.width), input_hw)
    return _pad(frame.resized(new_w, new_h), lb), lb


def _pad(image: np.ndarray, lb: Letterbox) -> np.ndarray:
    (ih, iw), (h, w) = lb.input_hw, image.shape[:2]
    bottom, right = ih - h - lb.top, iw - w - lb.left
    return cv2.copyMakeBorder(image, lb.top, bottom, lb.left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)


def to_blob(image: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> RGB float32 (1, 3, H, W) in [0, 1].

    Split into contiguous planes first and scale each straight into the output:
    four times faster than transposing and casting the interleaved image,
    which matters because it runs on every frame beside inference."""
    blob = np.empty((1, 3) + image.shape[:2], dtype=np.float32)
    for channel, plane in enumerate(reversed(cv2.split(image))):
        np.multiply(plane, np.float32(1 / 255.0), out=blob[0, channel], casting="unsafe")
    return blob
