"""`segstream export torchvision:NAME`: torchvision's two-stage and semantic
models as ONNX files the adapters understand.

Weights come from the user's torch cache (`~/.cache/torch/hub/checkpoints`,
or `$TORCH_HOME`); torchvision downloads them there on first use when the
machine is online. Offline and not cached, the error says which file to put
where. `random_weights=True` exports the architecture with random weights,
for checking shapes and plumbing only (what the tests do: no weights can be
downloaded on their machine).

The metadata written into the file (task, class names, image size, mean/std)
is what the adapters read, so the exported file runs with `segstream run`
without further flags.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

from ..stream.errors import ConfigError, ModelError, OutputError

log = logging.getLogger(__name__)

# name -> task. Detection models take one (3, H, W) image in [0, 1] and resize it themselves.
MODELS = {
    "maskrcnn_resnet50_fpn_v2": "segment",
    "maskrcnn_resnet50_fpn": "segment",
    "keypointrcnn_resnet50_fpn": "pose",
    "fcn_resnet50": "semantic",
    "lraspp_mobilenet_v3_large": "semantic",
    "deeplabv3_mobilenet_v3_large": "semantic",
}
SEMANTIC_SIZE = (520, 520)  # torchvision's semantic presets resize to 520
DETECTION_TRACE_SIZE = (480, 640)  # the export's example image; height and width stay dynamic
OPSET = 17


def _import_torchvision() -> Any:
    try:
        import torchvision
    except Exception as err:  # noqa: BLE001 - a torchvision built for another torch raises RuntimeError
        raise ModelError(f"export needs torchvision matching the installed torch ({str(err).splitlines()[0][:120]})") from None
    return torchvision


def weights_file(weights: Any) -> Path:
    """Where torchvision caches these weights."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _build(name: str, random_weights: bool) -> tuple[Any, Any]:
    torchvision = _import_torchvision()
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(name).DEFAULT
    if random_weights:
        kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None}
        if MODELS[name] != "pose":
            kwargs["num_classes"] = len(weights.meta["categories"])
        if MODELS[name] == "semantic":
            kwargs["aux_loss"] = None if name.startswith("lraspp") else False
        return get_model(name, **kwargs).eval(), weights
    cached = weights_file(weights)
    try:
        model = get_model(name, weights=weights)
    except Exception as err:  # noqa: BLE001 - urllib/ssl/OSError variants when offline
        raise ModelError(
            f"cannot get the weights of {name} ({type(err).__name__}): download {weights.url} once and save it as "
            f"{cached}, or export with --random-weights to check shapes only"
        ) from None
    log.info("%s: weights from %s (torchvision %s)", name, cached, torchvision.__version__)
    return model.eval(), weights


def _semantic_out(model: Any) -> Any:
    """torchvision's semantic models return {'out': ..., 'aux': ...}; export only 'out'."""
    import torch

    class Out(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)["out"]

    return Out().eval()


@contextlib.contextmanager
def _export_errors(name: str, target: Path) -> Iterator[None]:
    """The exporter's many failure types as one line naming the model and the file."""
    try:
        yield
    except OSError as err:
        raise OutputError(f"export: cannot write {target} ({err.strerror})") from None
    except Exception as err:  # noqa: BLE001 - tracer and exporter errors of every kind
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ModelError(f"export of torchvision:{name} failed: {first}") from None


def _inline_shared_initializers(graph: Any) -> None:
    """The exporter lets equal weights share one initializer through Identity
    nodes (random weights have many equal biases). onnx2torch (the torch
    backend) wants a Conv's weights as initializers, so each such Identity
    becomes its own copy of the initializer."""
    import onnx

    initializers = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def export_torchvision(spec: str, out: str | None = None, random_weights: bool = False,
                       imgsz: tuple[int, int] | None = None) -> Path:
    """Export `torchvision:NAME` to ONNX; returns the file written."""
    import onnx
    import torch

    name = spec.split(":", 1)[1] if spec.startswith("torchvision:") else spec
    if name not in MODELS:
        raise ConfigError(f"unknown model {spec!r}: export supports torchvision:{', torchvision:'.join(MODELS)}")
    task = MODELS[name]
    target = Path(out or f"{name}{'-random' if random_weights else ''}.onnx")
    if not target.parent.is_dir():
        raise OutputError(f"export: the folder {target.parent} does not exist; create it or choose another -o")
    model, weights = _build(name, random_weights)
    meta = {"task": task, "source": f"torchvision:{name}", "weights": "random" if random_weights else weights.url}
    with warnings.catch_warnings(), _export_errors(name, target):
        warnings.simplefilter("ignore")  # tracer and legacy-exporter notices
        if task == "semantic":
            h, w = imgsz or SEMANTIC_SIZE
            names = weights.meta["categories"]
            meta.update(imgsz=json.dumps([h, w]), mean=json.dumps([0.485, 0.456, 0.406]),
                        std=json.dumps([0.229, 0.224, 0.225]))
            torch.onnx.export(_semantic_out(model), torch.rand(1, 3, h, w), str(target), opset_version=OPSET,
                              input_names=["images"], output_names=["out"], dynamo=False)
        else:
            h, w = imgsz or DETECTION_TRACE_SIZE
            extra = ["masks"] if task == "segment" else ["keypoints", "keypoints_scores"]
            outputs = ["boxes", "labels", "scores", *extra]
            axes = {"image": [1, 2], **{o: [0] for o in outputs}}
            if task == "segment":
                axes["masks"] = [0, 2, 3]
            names = weights.meta["categories"]
            torch.onnx.export(model, ([torch.rand(3, h, w)],), str(target), opset_version=OPSET, input_names=["image"],
                              output_names=outputs, dynamic_axes=axes, dynamo=False)
    meta["names"] = repr(dict(enumerate(names)))  # the Ultralytics spelling the adapters read
    proto = onnx.load(str(target))
    _inline_shared_initializers(proto.graph)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=str(value))
    onnx.save(proto, str(target))
    return target
