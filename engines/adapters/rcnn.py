"""Adapter for torchvision's two-stage models exported to ONNX (Mask R-CNN,
Keypoint R-CNN, Faster R-CNN; see engines/torchvision_export.py).

These models take one RGB image (3, H, W) in [0, 1] at any size, resize and
normalise it themselves, and return objects already in that image's pixels:
`boxes` [N, 4], `labels` [N] (COCO category ids, 91-entry list with N/A
gaps), `scores` [N], and `masks` [N, 1, H, W] probabilities already pasted
into the image, or `keypoints` [N, 17, 3] with `keypoints_scores` [N, 17].
So pre-processing is a colour conversion, and post-processing a confidence
and class filter plus thresholding; no NMS (the model did it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...stream.errors import ModelError
from ...stream.types import NUM_KEYPOINTS, Detections, Frame
from ..ops.letterbox import Letterbox, to_blob
from ..runtimes.base import TensorSpec
from .yolo import PostprocessConfig, read_class_names

MASK_THRESHOLD = 0.5  # torchvision's own threshold on pasted mask probabilities


def is_rcnn(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> bool:
    names = {o.name for o in outputs}
    return len(inputs) == 1 and len(inputs[0].shape) == 3 and {"boxes", "labels", "scores"} <= names


class RcnnAdapter:
    def __init__(self, input_spec: TensorSpec, outputs: Sequence[TensorSpec], metadata: dict[str, str],
                 config: PostprocessConfig, source: str = "model") -> None:
        names = {o.name for o in outputs}
        self.task = "segment" if "masks" in names else "pose" if "keypoints" in names else "detect"
        if self.task == "pose" and "keypoints_scores" not in names:
            raise ModelError(f"{source}: a keypoint model needs a keypoints_scores output, got {sorted(names)}")
        self.input_name = input_spec.name
        self.config = config
        self.class_names = read_class_names(metadata, 91)
        self._allowed = None if config.classes is None else np.asarray(config.classes, dtype=np.int64)

    def restrict_classes(self, class_ids: Sequence[int]) -> None:
        self._allowed = np.asarray(class_ids, dtype=np.int64)

    def preprocess(self, frame: Frame) -> tuple[dict[str, np.ndarray], Letterbox]:
        hw = (frame.height, frame.width)
        return {self.input_name: to_blob(frame.image)[0]}, Letterbox(1.0, 0, 0, hw, hw)

    def postprocess(self, outputs: dict[str, np.ndarray], lb: Letterbox) -> Detections:
        scores = outputs["scores"].astype(np.float32)
        labels = outputs["labels"].astype(np.int64)
        keep = scores >= self.config.conf
        if self._allowed is not None:
            keep &= np.isin(labels, self._allowed)
        keep = np.flatnonzero(keep)[: self.config.max_det]
        h, w = lb.frame_hw
        xyxy = outputs["boxes"][keep].astype(np.float32)
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
        masks = keypoints = None
        if self.task == "segment":
            masks = outputs["masks"][keep, 0] > MASK_THRESHOLD
        elif self.task == "pose":
            keypoints = np.zeros((len(keep), NUM_KEYPOINTS, 3), np.float32)
            keypoints[:, :, :2] = outputs["keypoints"][keep, :NUM_KEYPOINTS, :2]
            # Heatmap logits -> a confidence in (0, 1), like YOLO-pose's.
            keypoints[:, :, 2] = 1 / (1 + np.exp(-outputs["keypoints_scores"][keep, :NUM_KEYPOINTS]))
        return Detections(xyxy, scores[keep], labels[keep].astype(np.int32), masks=masks, keypoints=keypoints)
