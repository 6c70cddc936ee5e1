"""Person re-identification embeddings from an ONNX model run on detection crops.

Any model with one image input [N, 3, H, W] and one [N, D] output works
(OSNet, the DeepSORT/FastReID family): crops are cut from the frame, resized
to the model's H x W, normalised with ImageNet mean/std (what torchreid and
FastReID train with) and the features are L2-normalised so that a dot product
is a cosine similarity. The crops of a frame go in one call (up to
`MAX_CROPS`, the batch a GPU engine is compiled for): a model exported with a
fixed batch of 1 is made batch-dynamic once (verified, cached,
`engines.runtimes.batching`), and one that cannot be is fed in chunks of its batch.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from ...stream.errors import ModelError
from ...stream.types import Detections, Frame, as_frame
from ..runtimes.base import Backend, TensorSpec
from ..runtimes.batching import batchable_model
from ..runtimes.engine_cache import BuildOptions, ShapeProfile
from ..runtimes.registry import load_backend

log = logging.getLogger(__name__)

MAX_CROPS = 32  # crops per call: TensorRT compiles a batch profile up to this, and more are fed in chunks

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


class ReidEmbedder:
    """`embedder(frame, dets) -> (N, D)` float32 unit vectors, one per detection.

    Usable on its own: `ReidEmbedder.load("osnet_x0_25_msmt17.onnx")(frame, dets)`.
    """

    def __init__(self, backend: Backend, max_batch: int | None = None) -> None:
        image_input = len(backend.inputs) == 1 and len(backend.inputs[0].shape) == 4
        if not image_input or not backend.outputs or not _is_features(backend.outputs[0].shape):
            raise ModelError(f"not a re-identification model: expected one [N, 3, H, W] input and an [N, D] output "
                             f"(one feature vector per crop, as OSNet's), got inputs {_shapes(backend.inputs)} "
                             f"and outputs {_shapes(backend.outputs)}")
        spec = backend.inputs[0]
        batch, _, height, width = spec.shape
        if height is None or width is None:
            height, width = 256, 128  # the usual person re-id input when the model leaves it open
        self.backend = backend
        self.input_name = spec.name
        self.size = (int(width), int(height))
        self.batch = batch or max_batch  # crops per call; None: all crops of a frame at once
        self.output_name = backend.outputs[0].name
        self.dim = backend.outputs[0].shape[-1]
        if batch is not None:
            log.info("re-id model has a fixed batch of %d: crops are fed %d at a time", batch, batch)

    @classmethod
    def load(cls, path: str, device: str = "cpu", threads: int | None = None, precision: str = "fp16") -> ReidEmbedder:
        """Loads `path`; a model exported with a fixed batch of 1 (OSNet's
        usual export) is replaced by its verified batch-dynamic copy, so the
        crops of a frame go in one call (up to `MAX_CROPS`: a TensorRT engine
        is compiled for batches of 1 to that; `precision` is its fp32/fp16)."""
        try:
            file, build, max_batch = batchable_model(path), crop_batches(precision), MAX_CROPS
        except ModelError as err:
            log.info("%s; re-id crops go one call per batch instead", err)
            file, build, max_batch = path, BuildOptions(precision), None
        try:
            return cls(load_backend(file, "auto", device, threads, build), max_batch)
        except ModelError as err:  # name the file the user gave, not the batch-dynamic copy
            raise ModelError(str(err) if path in str(err) else f"{path}: {err}") from None

    def crops(self, frame: Frame | np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 network input for the boxes of one frame (or BGR image)."""
        frame = as_frame(frame)
        h, w = frame.height, frame.width
        boxes = np.round(xyxy).astype(np.int64)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        out = np.zeros((len(boxes), self.size[1], self.size[0], 3), np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes):  # one resize per crop: OpenCV has no batched resize
            if x2 > x1 and y2 > y1:
                out[i] = cv2.resize(frame.crop(x1, y1, x2, y2), self.size, interpolation=cv2.INTER_LINEAR)
        rgb = out[..., ::-1].astype(np.float32)
        return np.ascontiguousarray(((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2))

    def __call__(self, frame: Frame | np.ndarray, dets: Detections) -> np.ndarray:
        if len(dets) == 0:
            return np.zeros((0, self.dim or 0), np.float32)
        blob = self.crops(frame, dets.xyxy)
        step = self.batch or len(blob)
        parts = [self.backend.infer({self.input_name: blob[i : i + step]})[self.output_name] for i in range(0, len(blob), step)]
        feats = np.concatenate(parts).reshape(len(blob), -1).astype(np.float32)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def describe(self, path: str) -> str:
        """One line on how segstream reads this model (`segstream info`)."""
        batch = (f"exported with a fixed batch of {self.batch} (run makes a batch-dynamic copy when it can)"
                 if self.batch else "any batch")
        outputs = ", ".join(f"{o.name}{list(o.shape)}" for o in self.backend.outputs)
        return (f"{path}: re-id (appearance features for --appearance reid --reid-model), {self.dim}-d features "
                f"of {self.size[0]}x{self.size[1]} crops, ImageNet mean/std, {batch}; outputs {outputs}")

    def close(self) -> None:
        self.backend.close()


def _is_features(shape: tuple[int | None, ...]) -> bool:
    """[N, D], or [N, D, 1, 1] (a re-id net exported before its flatten): one vector per crop.
    A detector's [1, 116, 2100] head or a segmentation map is not."""
    return len(shape) == 2 or (len(shape) == 4 and tuple(shape[2:]) == (1, 1))


def _shapes(specs: list[TensorSpec]) -> str:
    """'[?, 3, 320, 320], [?, 116, 2100]': shapes as a user reads them, '?' for a dynamic axis."""
    return ", ".join("[" + ", ".join(str(d or "?") for d in spec.shape) + "]" for spec in specs)


def crop_batches(precision: str = "fp16") -> BuildOptions:
    """How GPU backends compile a batch-dynamic re-id model: batches of 1 to `MAX_CROPS` crops."""
    return BuildOptions(precision, ShapeProfile(1, MAX_CROPS, MAX_CROPS))
