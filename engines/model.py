"""A model = a backend (runs the file) + an adapter (understands its outputs).

`Model` is usable on its own (`Model.load("yolov8n-seg.onnx")(frame)`); the
pipeline calls its three steps on separate threads so they overlap.
`ModelSet` runs several models on the same frame and fuses their persons.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..stream.errors import ConfigError
from ..stream.types import Detections, Frame, LabelMap, person_class_id
from .adapters.rcnn import RcnnAdapter, is_rcnn
from .adapters.semantic import SemanticAdapter, SemanticConfig, is_class_ids, semantic_output
from .adapters.yolo import PostprocessConfig, make_adapter
from .device_path import device_path_for
from .fusion.keypoints import fuse_keypoints
from .ops.letterbox import Letterbox
from .runtimes.base import Backend, TensorSpec
from .runtimes.batching import split_outputs, stack_feeds
from .runtimes.engine_cache import BuildOptions
from .runtimes.onnx_info import graph_io, load_onnx, producer_op
from .runtimes.registry import load_backend

log = logging.getLogger(__name__)


def model_adapter(
    inputs: list[TensorSpec], outputs: list[TensorSpec], metadata: dict[str, str], config: PostprocessConfig,
    semantic: SemanticConfig | None = None, path: str = "model",
) -> Any:
    """The adapter that understands a model with these inputs, outputs and metadata."""
    logits = semantic_output(outputs)
    if logits is not None and len(inputs) == 1:
        one_channel = not is_class_ids(logits) and logits.shape[1] == 1
        probabilities = one_channel and producer_op(path, logits.name) in ("Sigmoid", "HardSigmoid")
        return SemanticAdapter(inputs[0], logits, metadata, semantic or SemanticConfig(), path, probabilities)
    if is_rcnn(inputs, outputs):
        return RcnnAdapter(inputs[0], outputs, metadata, config, path)
    return make_adapter(inputs, outputs, metadata, config, path)


def onnx_preprocess(path: str, semantic: SemanticConfig | None = None) -> Callable[[Frame], np.ndarray]:
    """Frame -> the network input blob, as the model's adapter will prepare it
    (letterbox, mean/std), read from the ONNX file alone: TensorRT's shape
    profile and INT8 calibration need it before the engine that will run the
    model exists. The file is read on the first call, so a run that never
    builds an engine never reads it."""
    adapters: list[Any] = []

    def preprocess(frame: Frame) -> np.ndarray:
        if not adapters:
            inputs, outputs, metadata = graph_io(load_onnx(path))
            adapters.append(model_adapter(inputs, outputs, metadata, PostprocessConfig(), semantic, path))
        feed, _ = adapters[0].preprocess(frame)
        return next(iter(feed.values()))

    return preprocess


@dataclass
class Prepared:
    """What preprocessing hands to inference for one frame and one model."""

    feed: dict[str, np.ndarray]
    letterbox: Letterbox


class Model:
    """`on_device`: pre/post-process on the backend's device (the GPU data path);
    None = whenever a YOLO or semantic model runs on a CUDA device."""

    def __init__(self, backend: Backend, adapter: Any, path: str = "", on_device: bool | None = None) -> None:
        self.backend = backend
        self.adapter = adapter
        self.path = path
        if on_device is None:
            device = getattr(backend, "device", None)
            on_device = getattr(device, "type", None) == "cuda" and hasattr(backend, "infer_device")
        elif on_device and not hasattr(backend, "infer_device"):
            # Asked for, but the backend (onnxruntime after a fallback, say) only takes host arrays.
            log.warning("%s: no GPU data path with %s; pre/post-processing on the CPU", path or "model", type(backend).__name__)
            on_device = False
        self.device_path = device_path_for(adapter, backend) if on_device else None

    @classmethod
    def load(
        cls,
        path: str,
        conf: float = 0.25,
        iou: float = 0.7,
        classes: Sequence[str] | None = None,
        backend: str = "auto",
        device: str = "auto",
        threads: int | None = None,
        build: BuildOptions | None = None,
        semantic: SemanticConfig | None = None,
    ) -> Model:
        runtime = load_backend(path, backend, device, threads, build, onnx_preprocess(path, semantic))
        adapter = model_adapter(runtime.inputs, runtime.outputs, runtime.metadata, PostprocessConfig(conf, iou),
                                semantic, path)
        if classes:
            adapter.restrict_classes(class_ids_for(classes, adapter.class_names, path))
        return cls(runtime, adapter, path)

    @property
    def task(self) -> str:
        return self.adapter.task

    @property
    def class_names(self) -> list[str]:
        return self.adapter.class_names

    def preprocess(self, frame: Frame) -> Prepared:
        feed, lb = (self.device_path or self.adapter).preprocess(frame)
        return Prepared(feed, lb)

    def infer(self, prepared: Prepared) -> dict[str, np.ndarray]:
        return self.run_feed(prepared.feed)

    def run_feed(self, feed: dict[str, Any]) -> dict[str, Any]:
        """One backend call: numpy arrays, or device tensors on the GPU data path."""
        return self.device_path.infer(feed) if self.device_path else self.backend.infer(feed)

    @property
    def batchable(self) -> bool:
        """Whether several frames can go through in one call (a dynamic batch axis)."""
        return self.backend.inputs[0].shape[0] is None

    def postprocess(self, outputs: dict[str, np.ndarray], prepared: Prepared) -> Any:
        """`Detections`, or a `LabelMap` for a semantic model."""
        return (self.device_path or self.adapter).postprocess(outputs, prepared.letterbox)

    def __call__(self, frame: Frame) -> Any:
        prepared = self.preprocess(frame)
        return self.postprocess(self.infer(prepared), prepared)

    def describe(self) -> str:
        """One line on how segstream reads this model (`segstream info`): what
        it finds, the classes, the input it feeds and the outputs it reads."""
        adapter, names = self.adapter, self.class_names
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        notes = [f"{self.task} ({type(adapter).__name__})", f"{len(names)} class{'es' * (len(names) != 1)} ({shown})"]
        hw = getattr(adapter, "input_hw", None)
        notes.append(f"input {hw[1]}x{hw[0]}" if hw else "input at the frame's own size")
        if getattr(adapter, "nms", True) is False:
            notes.append("end-to-end: its rows are taken as they are, no NMS")
        if getattr(adapter, "threshold", None) is not None:
            notes.append(f"one channel: foreground above {adapter.threshold:g}")
        if getattr(adapter, "class_ids", False):
            notes.append("class ids out of the model, resized by nearest pixel")
        outputs = ", ".join(f"{o.name}{list(o.shape)}" for o in self.backend.outputs)
        return f"{self.path}: {', '.join(notes)}; outputs {outputs}"

    def close(self) -> None:
        self.backend.close()


def class_ids_for(names: Sequence[str], class_names: Sequence[str], source: str) -> tuple[int, ...]:
    """Class names (or numeric ids) -> ids, with an error naming the unknown one."""
    ids = []
    for name in names:
        if name.isdigit() and int(name) < len(class_names):
            ids.append(int(name))
        elif name in class_names:
            ids.append(class_names.index(name))
        else:
            sample = ", ".join(class_names[:8]) + (", ..." if len(class_names) > 8 else "")
            raise ConfigError(f"classes: {name!r} is not a class of {source} (it has: {sample})")
    return tuple(ids)


class ModelSet:
    """Several models on the same frame; pose persons are fused onto the first
    model's persons, and at most one semantic model adds a label map.
    Usable on its own like a `Model`."""

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ConfigError("model: at least one --model is needed")
        self.models = list(models)
        semantic = [m for m in self.models if m.task == "semantic"]
        if len(semantic) > 1:
            raise ConfigError(f"model: at most one semantic model, got {', '.join(m.path for m in semantic)}")
        self.semantic_model = semantic[0] if semantic else None
        objects = [m for m in self.models if m.task != "semantic"]
        primary = [m for m in objects if m.task != "pose"]
        # Output class ids are the primary model's; a pose-only run uses the pose model's.
        self.primary = primary[0] if primary else (objects[0] if objects else None)
        self.class_names = self.primary.class_names if self.primary else []

    @property
    def serial(self) -> bool:
        """Whether a model's backend takes one call at a time (a GPU context):
        then more than one frame in inference only waits in line."""
        return any(m.backend.serial for m in self.models)

    def preprocess(self, frame: Frame) -> list[Prepared]:
        return [m.preprocess(frame) for m in self.models]

    def infer(self, prepared: list[Prepared]) -> list[dict[str, np.ndarray]]:
        return [m.infer(p) for m, p in zip(self.models, prepared)]

    def infer_batch(self, prepared: Sequence[list[Prepared]]) -> list[list[dict[str, np.ndarray]]]:
        """Frames (possibly of different sources) in one call per model:
        `prepared[f]` is frame f's list for `infer`; returns each frame's list of
        outputs. A model without a batch axis runs the frames one by one."""
        per_model = []
        for i, model in enumerate(self.models):
            feeds = [p[i].feed for p in prepared]
            if model.batchable and len(feeds) > 1:
                per_model.append(split_outputs(model.run_feed(stack_feeds(feeds)), len(feeds)))
            else:
                per_model.append([model.run_feed(f) for f in feeds])
        return [[outputs[f] for outputs in per_model] for f in range(len(prepared))]

    def postprocess(self, outputs: list[dict[str, np.ndarray]], prepared: list[Prepared]) -> Detections:
        """The objects of the frame (semantic models are left to `semantic`)."""
        results = [m.postprocess(o, p) if m.task != "semantic" else None for m, o, p in zip(self.models, outputs, prepared)]
        main = [r for m, r in zip(self.models, results)
                if m.task != "semantic" and (m is self.primary or m.task != "pose")]
        fused = Detections.concat(main)
        person = person_class_id(self.class_names)
        for model, result in zip(self.models, results):
            if model.task == "pose" and model is not self.primary:
                fused = fuse_keypoints(fused, result, person, person_class_id(model.class_names))
        return fused

    def semantic(self, outputs: list[dict[str, np.ndarray]], prepared: list[Prepared]) -> LabelMap | None:
        """The semantic model's label map of the frame, if one runs."""
        for m, o, p in zip(self.models, outputs, prepared):
            if m is self.semantic_model:
                return m.postprocess(o, p)
        return None

    def __call__(self, frame: Frame) -> Detections:
        prepared = self.preprocess(frame)
        return self.postprocess(self.infer(prepared), prepared)

    def close(self) -> None:
        for m in self.models:
            m.close()


def load_models(
    paths: Sequence[str],
    conf: float = 0.25,
    iou: float = 0.7,
    classes: Sequence[str] | None = None,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    build: BuildOptions | None = None,
    semantic: SemanticConfig | None = None,
) -> ModelSet:
    """Load every model; `classes` filters each model to the names it has, and a
    name no model has is an error. `build` is for GPU backends (precision, batch)."""
    models = [Model.load(p, conf, iou, None, backend, device, threads, build, semantic) for p in paths]
    if classes:
        known = {n for m in models for n in m.class_names}
        for name in classes:
            if not name.isdigit() and name not in known:
                class_ids_for([name], models[0].class_names, ", ".join(paths))
        for m in models:
            mine = [n for n in classes if n in m.class_names or n.isdigit()]
            m.adapter.restrict_classes(class_ids_for(mine, m.class_names, m.path) if mine else ())
    return ModelSet(models)
