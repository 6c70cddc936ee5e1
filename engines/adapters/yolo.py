"""Adapters for the standard Ultralytics ONNX exports.

An adapter owns pre- and post-processing for one output layout and knows
nothing about the runtime that produced the outputs:

| layout          | outputs                                   | task     |
|-----------------|-------------------------------------------|----------|
| YOLOv8/11 det   | [1, 4+nc, A]                              | detect   |
| YOLOv8/11 seg   | [1, 4+nc+32, A] + protos [1, 32, h, w]    | segment  |
| YOLOv8/11 pose  | [1, 4+1+K*3, A] (K=17)                    | pose     |
| YOLOv5 seg      | [1, A, 5+nc+32] + protos [1, 32, h, w]    | segment  |
| YOLOv5 det      | [1, A, 5+nc]                              | detect   |

Input size and class count come from the model (shapes and Ultralytics
metadata), never from constants here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ...stream.boxes import cxcywh_to_xyxy
from ...stream.errors import ModelError
from ...stream.types import NUM_KEYPOINTS, Detections, Frame
from ..ops.letterbox import Letterbox, letterbox_frame, to_blob
from ..ops.masks import assemble_masks
from ..ops.nms import batched_nms
from ..runtimes.base import TensorSpec, imgsz_of, metadata_list, metadata_literal, names_count

log = logging.getLogger(__name__)

NUM_MASK_COEFFICIENTS = 32
MAX_CANDIDATES = 30000


@dataclass(frozen=True)
class PostprocessConfig:
    """Ultralytics' defaults: confidence 0.25, NMS IoU 0.7, at most 300 objects."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    classes: tuple[int, ...] | None = None


def read_class_names(metadata: dict[str, str], num_classes: int) -> list[str]:
    """Class names from Ultralytics' `names` metadata, else COCO for 80 classes, else 'classN'."""
    names = metadata_literal(metadata, "names")
    if isinstance(names, dict):
        return [str(names.get(i, f"class{i}")) for i in range(num_classes)]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names][:num_classes] + [f"class{i}" for i in range(len(names), num_classes)]
    if metadata.get("names"):
        log.warning("ignoring unreadable 'names' metadata")
    if num_classes == len(COCO_CLASSES):
        return list(COCO_CLASSES)
    return [f"class{i}" for i in range(num_classes)]


class YoloAdapter:
    """Shared pre-processing, candidate filtering and NMS; subclasses decode their layout."""

    task = "detect"
    nms = True  # False where the model's output is already one row per object

    def __init__(
        self,
        input_spec: TensorSpec,
        output_names: Sequence[str],
        num_classes: int,
        class_names: list[str],
        config: PostprocessConfig,
        input_hw: tuple[int, int],
    ) -> None:
        self.input_name = input_spec.name
        self.input_hw = input_hw
        self.output_names = list(output_names)
        self.num_classes = num_classes
        self.class_names = class_names
        self.config = config
        self._allowed = None if config.classes is None else np.asarray(config.classes, dtype=np.int64)

    def restrict_classes(self, class_ids: Sequence[int]) -> None:
        """Keep only these class ids (applied before NMS, as Ultralytics does)."""
        self.config = PostprocessConfig(self.config.conf, self.config.iou, self.config.max_det, tuple(class_ids))
        self._allowed = np.asarray(class_ids, dtype=np.int64)

    def preprocess(self, frame: Frame) -> tuple[dict[str, np.ndarray], Letterbox]:
        padded, lb = letterbox_frame(frame, self.input_hw)
        return {self.input_name: to_blob(padded)}, lb

    def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """-> (boxes xyxy in input pixels, scores, class ids, extra columns) of candidates above `conf`."""
        raise NotImplementedError

    def select(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Candidates after the confidence filter, the class filter and NMS, best first."""
        boxes, scores, class_ids, extra = self.decode(outputs)
        if self._allowed is not None:
            keep = np.isin(class_ids, self._allowed)
            boxes, scores, class_ids, extra = boxes[keep], scores[keep], class_ids[keep], extra[keep]
        if len(scores) > MAX_CANDIDATES:
            top = np.argsort(-scores)[:MAX_CANDIDATES]
            boxes, scores, class_ids, extra = boxes[top], scores[top], class_ids[top], extra[top]
        if self.nms:
            keep = batched_nms(boxes, scores, class_ids, self.config.iou)[: self.config.max_det]
        else:  # the model chose its detections already (end-to-end exports): best first, as NMS leaves them
            keep = np.argsort(-scores, kind="stable")[: self.config.max_det]
        return boxes[keep], scores[keep], class_ids[keep], extra[keep]

    def postprocess(self, outputs: dict[str, np.ndarray], lb: Letterbox) -> Detections:
        boxes, scores, class_ids, _ = self.select(outputs)
        return Detections(lb.boxes_to_frame(boxes), scores, class_ids)


def _v8_candidates(pred: np.ndarray, num_classes: int, conf: float) -> tuple[np.ndarray, ...]:
    """[C, A] YOLOv8 head -> candidates; only columns above `conf` are transposed."""
    class_scores = pred[4 : 4 + num_classes]
    best = class_scores.max(axis=0)
    keep = np.flatnonzero(best > conf)
    rows = pred[:, keep].T  # (K, C)
    class_ids = rows[:, 4 : 4 + num_classes].argmax(axis=1)
    return cxcywh_to_xyxy(rows[:, :4]), best[keep], class_ids, rows[:, 4 + num_classes :]


def _v5_candidates(pred: np.ndarray, num_classes: int, conf: float) -> tuple[np.ndarray, ...]:
    """[A, C] YOLOv5 head (objectness x class probability) -> candidates."""
    rows = pred[pred[:, 4] > conf]
    class_scores = rows[:, 5 : 5 + num_classes] * rows[:, 4:5]
    class_ids = class_scores.argmax(axis=1)
    best = class_scores[np.arange(len(rows)), class_ids]
    keep = best > conf
    rows = rows[keep]
    return cxcywh_to_xyxy(rows[:, :4]), best[keep], class_ids[keep], rows[:, 5 + num_classes :]


class YoloV8Detect(YoloAdapter):
    task = "detect"

    def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        return _v8_candidates(outputs[self.output_names[0]][0], self.num_classes, self.config.conf)


class YoloV5Detect(YoloAdapter):
    task = "detect"

    def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        return _v5_candidates(outputs[self.output_names[0]][0], self.num_classes, self.config.conf)


class _SegMixin(YoloAdapter):
    """Masks from prototypes; output_names = [detections, prototypes]."""

    task = "segment"

    def postprocess(self, outputs: dict[str, np.ndarray], lb: Letterbox) -> Detections:
        boxes, scores, class_ids, coefficients = self.select(outputs)
        xyxy = lb.boxes_to_frame(boxes)
        protos = outputs[self.output_names[1]][0]
        masks = assemble_masks(protos, coefficients, xyxy, lb.frame_hw)
        return Detections(xyxy, scores, class_ids, masks=masks)


class YoloV8Seg(_SegMixin, YoloV8Detect):
    pass


class YoloV5Seg(_SegMixin, YoloV5Detect):
    pass


class YoloV8Pose(YoloV8Detect):
    """Person boxes with K keypoints (x, y, visibility) in input pixels."""

    task = "pose"

    def __init__(self, *args: object, kpt_shape: tuple[int, int] = (NUM_KEYPOINTS, 3), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.kpt_shape = kpt_shape

    def postprocess(self, outputs: dict[str, np.ndarray], lb: Letterbox) -> Detections:
        boxes, scores, class_ids, raw = self.select(outputs)
        k, dims = self.kpt_shape
        kpts = raw.reshape(len(raw), k, dims).astype(np.float32)
        out = np.zeros((len(raw), NUM_KEYPOINTS, 3), dtype=np.float32)
        out[:, :, :2] = lb.points_to_frame(kpts[:, :NUM_KEYPOINTS, :2])
        out[:, :, 2] = kpts[:, :NUM_KEYPOINTS, 2] if dims == 3 else 1.0
        return Detections(lb.boxes_to_frame(boxes), scores, class_ids, keypoints=out)


class _EndToEnd(YoloAdapter):
    """End-to-end exports: NMS inside the model (Ultralytics `nms=True`) or no
    NMS needed (YOLOv10, YOLO26). The head is [1, max_det, 6 + extra]: rows of
    x1, y1, x2, y2 (input pixels), score, class id, then the mask coefficients
    or keypoints. Rows at or below the confidence threshold are dropped: the
    zero padding of `nms=True` exports, and YOLOv10's weakest top-k rows."""

    nms = False

    def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        rows = outputs[self.output_names[0]][0]
        rows = rows[rows[:, 4] > self.config.conf]
        return rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64), rows[:, 6:]


class EndToEndDetect(_EndToEnd):
    task = "detect"


class EndToEndSeg(_SegMixin, _EndToEnd):
    pass


class EndToEndPose(_EndToEnd, YoloV8Pose):
    pass


def is_end_to_end(metadata: dict[str, str], head_dims: tuple[int, int]) -> bool:
    """Whether an export's head is one row per object (see `_EndToEnd`): its
    metadata says `end2end` or `nms=True`; or, in an Ultralytics export from
    before the `end2end` key (YOLOv10's), the head is rows of 6 + 0, 32 or 51."""
    args = metadata_literal(metadata, "args")
    if metadata.get("end2end") == "True" or (isinstance(args, dict) and args.get("nms") is True):
        return True
    if "end2end" in metadata or "task" not in metadata:
        return False
    rows, columns = head_dims
    return rows > columns and columns - 6 in (0, NUM_MASK_COEFFICIENTS, NUM_KEYPOINTS * 3)


def make_adapter(
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    metadata: dict[str, str],
    config: PostprocessConfig,
    source: str = "model",
) -> YoloAdapter:
    """Pick the adapter from the model's output shapes (and Ultralytics metadata)."""
    described = ", ".join(f"{o.name}{list(o.shape)}" for o in outputs)
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise ModelError(f"{source}: expected one image input [N,3,H,W], got {[(i.name, list(i.shape)) for i in inputs]}")
    inp = inputs[0]
    h, w = inp.shape[2], inp.shape[3]
    if not (isinstance(h, int) and isinstance(w, int)):
        h, w = imgsz_of(metadata)
    input_hw = (int(h), int(w))

    if metadata.get("task") in ("obb", "classify"):
        raise ModelError(f"{source}: a YOLO {metadata['task']} model; segstream runs detect, segment and pose models")
    heads = [o for o in outputs if len(o.shape) == 3]
    protos = [o for o in outputs if len(o.shape) == 4]
    if len(heads) != 1 or len(protos) > 1 or len(outputs) != len(heads) + len(protos):
        raise ModelError(f"{source}: outputs not understood ({described}); expected a YOLO detect/segment/pose export")
    head = heads[0]
    _, d1, d2 = head.shape
    # A pose model's keypoints per object and values per keypoint (Ultralytics' default: 17 x (x, y, visibility)).
    kpt_shape = [int(v) for v in metadata_list(metadata, "kpt_shape") or []] or (
        [NUM_KEYPOINTS, 3] if metadata.get("task") == "pose" else None)
    if isinstance(d1, int) and isinstance(d2, int):
        end_to_end = is_end_to_end(metadata, (d1, d2))
        channels_first = not end_to_end and _channels_first(metadata, (d1, d2), len(protos) > 0, kpt_shape, source,
                                                            described)
    elif isinstance(d1, int) or isinstance(d2, int):  # a dynamic export: its anchor axis follows the input size
        end_to_end, channels_first = False, isinstance(d1, int)
    else:
        raise ModelError(f"{source}: head output {head.name} needs a static channel axis, got {list(head.shape)}")
    channels = d1 if channels_first else d2
    names = [head.name] + [p.name for p in protos]

    def build(cls: type[YoloAdapter], nc: int, **extra: object) -> YoloAdapter:
        if nc <= 0:
            raise ModelError(f"{source}: outputs not understood ({described}): no room for class scores")
        adapter = cls(inp, names, nc, read_class_names(metadata, nc), config, input_hw, **extra)  # type: ignore[arg-type]
        log.info("%s: %s adapter, %d classes, input %dx%d", source, cls.__name__, nc, input_hw[1], input_hw[0])
        return adapter

    if end_to_end:
        return _end_to_end_adapter(build, d2, len(protos) > 0, kpt_shape, metadata, source, described)
    if protos:
        if protos[0].shape[1] != NUM_MASK_COEFFICIENTS:
            raise ModelError(f"{source}: prototype output {protos[0].name} must have 32 channels ({described})")
        if channels_first:
            return build(YoloV8Seg, channels - 4 - NUM_MASK_COEFFICIENTS)
        return build(YoloV5Seg, channels - 5 - NUM_MASK_COEFFICIENTS)
    if channels_first and kpt_shape:
        k, dims = kpt_shape
        if k != NUM_KEYPOINTS:
            raise ModelError(f"{source}: pose model has {k} keypoints; segstream expects the 17 COCO keypoints")
        return build(YoloV8Pose, channels - 4 - k * dims, kpt_shape=(k, dims))
    if channels_first:
        return build(YoloV8Detect, channels - 4)
    return build(YoloV5Detect, channels - 5)


def _channels_first(
    metadata: dict[str, str], head_dims: tuple[int, int], segment: bool, kpt_shape: list[int] | None,
    source: str, described: str,
) -> bool:
    """Whether a (not end-to-end) head is v8's [1, C, anchors] rather than v5's
    [1, anchors, C]. An Ultralytics export (it has a `task`) is v8 and its C
    follows from its names and task, which also holds when a tiny input has
    fewer anchors than channels; other exports go by which axis is smaller."""
    nc = names_count(metadata)
    if "task" not in metadata or nc is None:
        return head_dims[0] < head_dims[1]
    k, dims = kpt_shape or (0, 0)
    expected = 4 + nc + (NUM_MASK_COEFFICIENTS if segment else k * dims)
    if head_dims[0] != expected:
        raise ModelError(f"{source}: outputs not understood ({described}); an Ultralytics {metadata['task']} export "
                         f"with {nc} classes has a head [1, {expected}, anchors]")
    return True


def _end_to_end_adapter(
    build: Callable[..., YoloAdapter], columns: int, segment: bool, kpt_shape: list[int] | None,
    metadata: dict[str, str], source: str, described: str,
) -> YoloAdapter:
    """The adapter of an end-to-end head with `columns` per row; its class count
    comes from the `names` metadata (the rows hold a class id, not scores)."""
    nc = names_count(metadata) or len(COCO_CLASSES)
    extra = columns - 6
    if segment and extra == NUM_MASK_COEFFICIENTS:
        return build(EndToEndSeg, nc)
    if kpt_shape:
        k, dims = kpt_shape
        if k != NUM_KEYPOINTS or extra != k * dims:
            raise ModelError(f"{source}: end-to-end pose head ({described}) does not hold the 17 COCO keypoints")
        return build(EndToEndPose, nc, kpt_shape=(k, dims))
    if extra == 0 and not segment:
        return build(EndToEndDetect, nc)
    raise ModelError(f"{source}: end-to-end outputs not understood ({described}); expected rows of "
                     "x1, y1, x2, y2, score, class (+ 32 mask coefficients or 51 keypoint values)")


COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)
