"""The two data types that flow through every stage: `Frame` and `Detections`.

`Detections` is a struct of parallel numpy arrays (one row per object), in the
spirit of supervision's `Detections`: validated once at construction, sliced
cheaply with boolean masks or index arrays, and never mutated by the stages
that consume it (they return new objects).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

import cv2
import numpy as np

from .masks import BoxMasks
from .picture import Yuv420

NUM_KEYPOINTS = 17


def person_class_id(class_names: Sequence[str]) -> int:
    """The class id of "person" in a model's names (COCO models: 0, torchvision's: 1); 0 if it has none."""
    return list(class_names).index("person") if "person" in class_names else 0


class Frame:
    """One decoded image and where/when it came from.

    `t_capture` is wall-clock time (seconds since the epoch) so that other
    machines can compare it; `t_mono` is `time.monotonic()` at capture and is
    what in-process latency is measured against. `pts` is the media timestamp
    in seconds when the source has one (video files), else None.

    `image` is the (H, W, 3) uint8 BGR picture. A video file's frames arrive
    as their decoded planes (`yuv`) instead, and `image` is made from them on
    first use: the stages that only need the frame smaller (`resized`) or in
    pieces (`crop`) take those from the planes and skip the full conversion.
    """

    def __init__(self, image: np.ndarray | None, source_id: str, seq: int, t_capture: float, t_mono: float,
                 pts: float | None = None, yuv: Yuv420 | None = None) -> None:
        if image is None and yuv is None:
            raise ValueError("a Frame needs an image or its decoded planes (yuv)")
        if image is not None:
            _check_image(image)
        self._image = image
        self.yuv = yuv
        self.source_id = source_id
        self.seq = seq
        self.t_capture = t_capture
        self.t_mono = t_mono
        self.pts = pts

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            assert self.yuv is not None
            self._image = _check_image(self.yuv.to_bgr())  # two threads may both convert: same pixels
        return self._image

    @property
    def height(self) -> int:
        return int(self._image.shape[0]) if self._image is not None else self.yuv.shape[0]  # type: ignore[union-attr]

    @property
    def width(self) -> int:
        return int(self._image.shape[1]) if self._image is not None else self.yuv.shape[1]  # type: ignore[union-attr]

    def resized(self, width: int, height: int) -> np.ndarray:
        """The frame as (height, width, 3) BGR, resized bilinearly; from the
        decoded planes when the frame has them, whether or not `image` was made,
        so the result never depends on which stage looked first."""
        if self.yuv is not None:
            return self.yuv.resized_bgr(width, height)
        if (width, height) == (self.width, self.height):
            return self.image
        return cv2.resize(self.image, (width, height), interpolation=cv2.INTER_LINEAR)

    def crop(self, x1: int, y1: int, x2: int, y2: int, step: int = 1) -> np.ndarray:
        """BGR pixels [y1:y2:step, x1:x2:step] (bounds inside the frame; step 1
        or 2); from the decoded planes when it has them, step 2 then reading
        only the quarter of them it returns."""
        if step not in (1, 2):
            raise ValueError(f"crop step must be 1 or 2, got {step}")
        if self.yuv is not None:
            return self.yuv.crop_bgr(x1, y1, x2, y2) if step == 1 else self.yuv.crop_bgr_half(x1, y1, x2, y2)
        return self.image[y1:y2:step, x1:x2:step]

    def __repr__(self) -> str:
        return (f"Frame(source_id={self.source_id!r}, seq={self.seq}, {self.width}x{self.height}, "
                f"t_capture={self.t_capture:.3f}, pts={self.pts})")


def as_frame(picture: Frame | np.ndarray) -> Frame:
    """`picture` as a Frame: functions that take a frame's pixels (colour features,
    re-id crops) accept a bare BGR image too, as they did before frames had planes."""
    return picture if isinstance(picture, Frame) else Frame(picture, "", 0, 0.0, 0.0)


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"Frame.image must be an (H, W, 3) uint8 BGR array, got {image.shape} {image.dtype}")
    return image


def _check(name: str, value: np.ndarray, shape: tuple[int | None, ...]) -> None:
    if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"Detections.{name} must have shape {want}, got {value.shape}")


def _take(value: np.ndarray | BoxMasks | None, index: np.ndarray) -> np.ndarray | BoxMasks | None:
    if isinstance(value, np.ndarray):
        return np.take(value, index, axis=0)
    return None if value is None else value[index]  # BoxMasks: a list index


def _view(value: np.ndarray | BoxMasks | None, index: slice) -> np.ndarray | BoxMasks | None:
    return None if value is None else value[index]


@dataclass(eq=False)
class Detections:
    """Objects found in one frame, as parallel arrays of length N.

    - `xyxy` (N, 4) float32 boxes in frame pixels
    - `scores` (N,) float32, `class_ids` (N,) int32
    - `masks` N boolean masks at frame resolution, or None: a `BoxMasks`
      (each mask kept as its crop inside the box; `np.asarray(masks)` is the
      (N, H, W) array). A dense (N, H, W) array given here is converted.
    - `keypoints` (N, 17, 3) float32 (x, y, confidence); confidence 0 means
      "not detected", or None when no pose model ran
    - `embeddings` (N, D) float32 appearance features, or None
    - `track_ids` (N,) int64, or None before tracking
    - `detected_xyxy` (N, 4) float32: the detector's own boxes when a tracker
      replaced `xyxy` with its filtered estimate (the default), else None. The
      masks and keypoints were found in these boxes: drawings and the wire's
      `box` use them, and `xyxy` is the wire's `box_filtered`.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: BoxMasks | None = None
    keypoints: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    detected_xyxy: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int32)
        _check("scores", self.scores, (n,))
        _check("class_ids", self.class_ids, (n,))
        if self.masks is not None and not isinstance(self.masks, BoxMasks):
            dense = np.asarray(self.masks, dtype=bool)
            _check("masks", dense, (n, None, None))
            self.masks = BoxMasks.from_dense(dense)
        if self.masks is not None and len(self.masks) != n:
            raise ValueError(f"Detections.masks must hold {n} masks, got {len(self.masks)}")
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
            _check("keypoints", self.keypoints, (n, NUM_KEYPOINTS, 3))
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
            _check("embeddings", self.embeddings, (n, None))
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, dtype=np.int64)
            _check("track_ids", self.track_ids, (n,))
        if self.detected_xyxy is not None:
            self.detected_xyxy = np.asarray(self.detected_xyxy, dtype=np.float32)
            _check("detected_xyxy", self.detected_xyxy, (n, 4))

    @property
    def boxes_found(self) -> np.ndarray:
        """The boxes the detector found (`detected_xyxy`, else `xyxy`): the ones
        the masks and keypoints belong to, for drawing and publishing."""
        return self.xyxy if self.detected_xyxy is None else self.detected_xyxy

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select rows with an int, slice, index array or boolean mask."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if index != -1 else None)
        if not isinstance(index, slice):
            index = np.asarray(index)
            index = np.flatnonzero(index) if index.dtype == bool else index.astype(np.intp, copy=False)
            if (len(index) and 0 <= index[0] and index[-1] < len(self) and index[-1] - index[0] + 1 == len(index)
                    and (np.diff(index) == 1).all()):
                # A run of consecutive rows (trackers usually keep a prefix of the
                # score-ordered detections): views instead of copies.
                index = slice(int(index[0]), int(index[-1]) + 1)
            else:
                # np.take is faster than fancy indexing on (N, 17, 3) and (N, D) arrays.
                return self._rows({name: _take(getattr(self, name), index) for name in _COLUMNS})
        return self._rows({name: _view(getattr(self, name), index) for name in _COLUMNS})

    @classmethod
    def _rows(cls, columns: dict[str, Any]) -> Detections:
        """A Detections of rows selected from a valid one: the same selection
        of every column is valid by construction, so it is not checked again
        (trackers and stages slice every frame)."""
        out = object.__new__(cls)
        out.__dict__.update(columns)
        return out

    def is_empty(self) -> bool:
        return len(self) == 0

    def with_(self, **changes: Any) -> Detections:
        """A copy with some columns replaced (the arrays themselves are shared)."""
        return replace(self, **changes)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """Stack detections of the same frame. An optional column present in only
        some parts is filled with neutral values (empty masks, zero-confidence
        keypoints, zero embeddings, track id -1) for the others."""
        parts = [p for p in parts if p is not None]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        out: dict[str, Any] = {}
        for f in fields(cls):
            cols = [getattr(p, f.name) for p in parts]
            if all(c is None for c in cols):
                out[f.name] = None
                continue
            template = next(c for c in cols if c is not None)
            if f.name == "masks":
                out["masks"] = BoxMasks.concat(
                    [BoxMasks.empty(len(p), template.frame_hw) if c is None else c for p, c in zip(parts, cols)])
                continue
            filled = []
            for p, c in zip(parts, cols):
                if c is None and f.name == "detected_xyxy":
                    c = p.xyxy  # no filtered estimate there: its boxes are the detector's
                if c is None:
                    fill = -1 if f.name == "track_ids" else 0
                    c = np.full((len(p),) + template.shape[1:], fill, dtype=template.dtype)
                elif c.shape[1:] != template.shape[1:]:
                    raise ValueError(f"Detections.concat: {f.name} shapes differ: {c.shape} vs {template.shape}")
                filled.append(c)
            out[f.name] = np.concatenate(filled)
        return cls(**out)


_COLUMNS = tuple(f.name for f in fields(Detections))


@dataclass(eq=False)
class LabelMap:
    """A semantic segmentation of one frame: a class id per pixel, at frame
    resolution, and the names of the classes."""

    labels: np.ndarray  # (H, W) uint8 or uint16
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.labels.ndim != 2 or self.labels.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"LabelMap.labels must be an (H, W) uint8/uint16 array, got {self.labels.shape} {self.labels.dtype}")


@dataclass(frozen=True)
class Segment:
    """One entry of a panoptic segment table. `track_id` is set for tracked things."""

    id: int
    category: str
    isthing: bool
    area: int
    track_id: int | None = None


@dataclass(eq=False)
class PanopticMap:
    """Every pixel's segment id (0: unlabelled) and the table describing each segment."""

    segment_ids: np.ndarray  # (H, W) uint16
    segments: list[Segment]


__all__ = ["Frame", "Detections", "LabelMap", "PanopticMap", "Segment", "NUM_KEYPOINTS"]
