"""Semantic segmentation adapter: any model whose output is per-pixel class
logits [N, C, h, w] (FCN, U-Net, DeepLab, LRASPP, SegFormer exports).

Pre-processing is a letterbox (aspect kept, so a person is not squashed) and
mean/std normalisation; both, and the input size, come from config or the
ONNX metadata (`mean`, `std`, `imgsz` as JSON lists), with torchvision's
ImageNet statistics as the default. Post-processing cuts the padding off the
logits, resizes them bilinearly to the frame and takes the argmax there, so
class borders follow the frame's pixels rather than the network's grid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ...stream.errors import ConfigError, ModelError
from ...stream.types import Frame, LabelMap
from ..ops.label_resize import label_dtype, resize_argmax
from ..ops.letterbox import Letterbox, letterbox_frame, to_blob
from ..runtimes.base import TensorSpec, imgsz_of, metadata_list, names_count

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's segmentation models (FCN, DeepLabV3, LRASPP) are trained on the 20 Pascal VOC classes + background.
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
MAX_CLASSES = 65536  # label maps are uint16 at most


@dataclass(frozen=True)
class SemanticConfig:
    """Overrides for what the ONNX file does not say."""

    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    input_hw: tuple[int, int] | None = None
    labels: str | None = None  # a text file, one class name per line
    threshold: float | None = None  # one-channel models: foreground above it (default: 0.5 after a sigmoid, else 0)


def label_names(path: str) -> list[str]:
    """The class names in a labels file, one per line."""
    try:
        return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as err:
        raise ConfigError(f"labels: cannot read {path} ({err.strerror})") from None


def read_labels(path: str, num_classes: int, binary: bool = False) -> list[str]:
    """A model's `num_classes` names from a labels file; for a `binary` model's
    two classes, its foreground's name alone will do (background is then class 0)."""
    names = label_names(path)
    if binary and len(names) == 1:
        return ["background", *names]
    if len(names) != num_classes:
        also = " (or 1: its foreground)" if binary else ""
        raise ConfigError(f"labels: {path} has {len(names)} names but the model has {num_classes} classes{also}")
    return names


class SemanticAdapter:
    """Logits [1, C, h, w] -> `LabelMap` at frame resolution.

    A one-channel output (a binary U-Net: person or not) is two classes,
    background and foreground where the output exceeds `threshold`. It is
    read as background logits that are the threshold everywhere beside the
    model's plane (`with_background`): a constant plane resizes to itself, so
    the same resize-and-argmax gives the thresholded map on CPU and GPU.
    `probabilities`: the model ends in a sigmoid (default threshold 0.5, else 0).

    An integer output is class ids already (`is_class_ids`): it is resized
    to the frame by nearest pixel, and has as many classes as names.
    """

    task = "semantic"

    def __init__(
        self, input_spec: TensorSpec, output: TensorSpec, metadata: dict[str, str], config: SemanticConfig,
        source: str = "model", probabilities: bool = False,
    ) -> None:
        self.input_name = input_spec.name
        self.output_name = output.name
        self.class_ids = is_class_ids(output)
        self.threshold: float | None = None
        if self.class_ids:
            num_classes = _class_count(config, metadata)
        else:
            channels = output.shape[1]
            if not isinstance(channels, int):
                raise ModelError(f"{source}: the class axis of {output.name} must be static, got {list(output.shape)}")
            if channels == 1:
                self.threshold = (0.5 if probabilities else 0.0) if config.threshold is None else config.threshold
                log.info("%s: one output channel: foreground where it exceeds %g (%s)", source, self.threshold,
                         "semantic.threshold" if config.threshold is not None
                         else "the model ends in a sigmoid" if probabilities else "logits; else set semantic.threshold")
            num_classes = 2 if channels == 1 else channels
        if num_classes > MAX_CLASSES:
            raise ModelError(f"{source}: {num_classes} classes; the semantic adapter handles up to {MAX_CLASSES}")
        self.num_classes = num_classes
        h, w = input_spec.shape[2], input_spec.shape[3]
        size = config.input_hw or ((h, w) if isinstance(h, int) and isinstance(w, int) else None)
        if size is None:
            size = imgsz_of(metadata, (520, 520))  # torchvision's segmentation size
        self.input_hw = (int(size[0]), int(size[1]))
        mean = config.mean or metadata_list(metadata, "mean") or IMAGENET_MEAN
        std = config.std or metadata_list(metadata, "std") or IMAGENET_STD
        # (x / 255 - mean) / std as one multiply-add on `to_blob`'s x / 255 (the GPU data path does the same).
        self.norm_scale = (1.0 / np.asarray(std, np.float32)).reshape(1, 3, 1, 1)
        self.norm_shift = (-np.asarray(mean, np.float32) / np.asarray(std, np.float32)).reshape(1, 3, 1, 1)
        binary = self.threshold is not None
        if config.labels:
            self.class_names = read_labels(config.labels, num_classes, binary)
        elif "names" in metadata:
            from .yolo import read_class_names

            names = read_class_names(metadata, 1 if binary else num_classes)
            self.class_names = ["background", *names] if binary else names
        elif binary:
            self.class_names = ["background", "foreground"]
        elif num_classes == len(VOC_CLASSES):
            self.class_names = list(VOC_CLASSES)
        else:
            self.class_names = [f"class{i}" for i in range(num_classes)]
        log.info("%s: semantic adapter, %d classes%s, input %dx%d", source, num_classes,
                 " (class ids out of the model)" if self.class_ids else "", self.input_hw[1], self.input_hw[0])

    def restrict_classes(self, class_ids: Sequence[int]) -> None:
        """Semantic maps keep every class (`--classes` filters objects, not pixels)."""

    def preprocess(self, frame: Frame) -> tuple[dict[str, np.ndarray], Letterbox]:
        padded, lb = letterbox_frame(frame, self.input_hw)
        blob = to_blob(padded)
        blob *= self.norm_scale
        blob += self.norm_shift
        return {self.input_name: blob}, lb

    def postprocess(self, outputs: dict[str, np.ndarray], lb: Letterbox) -> LabelMap:
        logits = outputs[self.output_name][0]  # (C, h, w)
        if self.class_ids:
            return LabelMap(self.resize_ids(logits, lb), self.class_names)
        y0, y1, x0, x1 = logit_region(logits.shape[1:], lb)
        crop = logits[:, y0:y1, x0:x1]
        if self.threshold is not None:
            crop = with_background(crop, self.threshold)
        return LabelMap(resize_argmax(crop, lb.frame_hw), self.class_names)

    def resize_ids(self, ids: np.ndarray, lb: Letterbox) -> np.ndarray:
        """A model's class-id map (h, w) or (1, h, w), padding cut off, to the frame
        by nearest pixel centre (ids cannot be interpolated); ids beyond the class
        names are clipped to the last one."""
        ids = ids.reshape(ids.shape[-2:])
        y0, y1, x0, x1 = logit_region(ids.shape, lb)
        crop = np.clip(ids[y0:y1, x0:x1], 0, self.num_classes - 1).astype(label_dtype(self.num_classes))
        return cv2.resize(crop, lb.frame_hw[::-1], interpolation=cv2.INTER_NEAREST_EXACT)


def _class_count(config: SemanticConfig, metadata: dict[str, str]) -> int:
    """How many classes a class-id output has: its names' count (labels file,
    then `names` metadata), else all that a uint8 map holds."""
    if config.labels:
        return len(label_names(config.labels))
    return names_count(metadata) or 256


def with_background(plane: np.ndarray, threshold: float) -> np.ndarray:
    """A one-channel output (1, h, w) as two classes' logits (2, h, w): a
    background that is `threshold` everywhere, then the output. The argmax
    is 1 exactly where the output exceeds the threshold (a tie stays 0)."""
    return np.concatenate([np.full_like(plane, threshold), plane])


def logit_region(logits_hw: tuple[int, int], lb: Letterbox) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the frame's part of the network input (the letterbox
    padding cut off), in logit pixels, at least one pixel each way."""
    h, w = logits_hw
    sy, sx = h / lb.input_hw[0], w / lb.input_hw[1]
    fh, fw = lb.frame_hw
    y0, x0 = lb.top * sy, lb.left * sx
    y1, x1 = y0 + fh * lb.gain * sy, x0 + fw * lb.gain * sx
    return int(y0), max(int(np.ceil(y1)), int(y0) + 1), int(x0), max(int(np.ceil(x1)), int(x0) + 1)


def semantic_output(outputs: Sequence[TensorSpec]) -> TensorSpec | None:
    """The logits output of a semantic model: the only 4-D output, or the one
    named `out` (torchvision exports also have `aux`); or a model's only
    output when it holds class ids, [N, h, w] or [N, 1, h, w] integers (the
    argmax inside the model, as mmdeploy exports segmentors); None for other models."""
    if len(outputs) == 1 and is_class_ids(outputs[0]):
        return outputs[0]
    four_d = [o for o in outputs if len(o.shape) == 4]
    if len(four_d) != len(outputs) or not four_d:
        return None
    named = [o for o in four_d if o.name == "out"]
    if named:
        return named[0]
    return four_d[0] if len(four_d) == 1 else None


def is_class_ids(output: TensorSpec) -> bool:
    """An integer [N, h, w] or [N, 1, h, w] output: a class id per pixel."""
    shape = output.shape
    return np.dtype(output.dtype).kind in "iu" and (len(shape) == 3 or (len(shape) == 4 and shape[1] == 1))
