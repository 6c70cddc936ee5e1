"""Running frames of several cameras in one model call.

Stacking frames along the batch axis needs a model that accepts a batch.
Ultralytics' static exports fix it at 1: the input, the outputs and every
Reshape's target shape say 1. `batchable_model` makes a copy whose batch
axis is dynamic (Reshape targets copy the batch from their input instead),
and keeps it only if, run on a batch of 2, it gives exactly what the original
gives frame by frame; otherwise the error says to re-export with a dynamic
batch. The copy is cached next to the engines, keyed by the file's hash.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...stream.errors import ModelError
from ..hub import cache_dir, sha256_of

log = logging.getLogger(__name__)


def _batch_dim_is_fixed(model) -> bool:  # model: onnx.ModelProto
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return bool(dims) and dims[0].HasField("dim_value") and dims[0].dim_value == 1


def _make_batch_dynamic(model) -> int:
    """Edit `model` in place; returns how many Reshape targets were changed."""
    from onnx import numpy_helper

    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]  # stale intermediate shapes would contradict the new batch axis
    tensors = {i.name: i for i in model.graph.initializer}
    tensors.update({n.output[0]: n.attribute[0].t for n in model.graph.node
                    if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in tensors:
            continue
        tensor = tensors[node.input[1]]
        shape = numpy_helper.to_array(tensor).copy()
        allowzero = [a for a in node.attribute if a.name == "allowzero"]
        if allowzero and allowzero[0].i and (shape == 0).any():
            continue  # a literal empty dimension: not ours to reinterpret
        if shape.size and shape[0] == 1:
            shape[0] = 0  # Reshape: 0 = keep this dimension of the input, i.e. the batch
            tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
            for a in allowzero:
                a.i = 0  # torch exports set allowzero=1, under which 0 would mean "empty", not "copy"
            changed += 1
    return changed


def _same_outputs(original: str, batched: str, input_shape: Sequence[int]) -> bool:
    import onnxruntime as ort

    quiet = ort.SessionOptions()
    quiet.log_severity_level = 4  # a trial that fails is an answer here, not an error to print
    one = ort.InferenceSession(original, quiet, providers=["CPUExecutionProvider"])
    name = one.get_inputs()[0].name
    x = np.random.default_rng(0).random((2, *input_shape[1:]), dtype=np.float32)
    try:
        two = ort.InferenceSession(batched, quiet, providers=["CPUExecutionProvider"])
        together = two.run(None, {name: x})
    except Exception:  # noqa: BLE001 - a Reshape that was not about the batch fails to load or to run
        return False
    for i in range(2):
        alone = one.run(None, {name: x[i:i + 1]})
        for a, b in zip(alone, together):
            if a.shape[1:] != b.shape[1:] or not np.allclose(a[0], b[i], rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(a).max()))):
                return False
    return True


def batchable_model(path: str, cache: Path | None = None) -> str:
    """`path` itself if its batch axis is already dynamic, else a verified
    batch-dynamic copy (made once, cached)."""
    import onnx

    from .onnx_info import load_onnx

    if not _batch_dim_is_fixed(load_onnx(path)):  # graph only: cheap
        return path
    target = (cache or cache_dir() / "engines") / f"{Path(path).stem}.{sha256_of(Path(path))[:16]}.batch.onnx"
    if target.is_file():
        return str(target)
    model = onnx.load(path)  # with any external weights: the copy must hold them
    dims = [d.dim_value or 640 for d in model.graph.input[0].type.tensor_type.shape.dim]
    changed = _make_batch_dynamic(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    onnx.save(model, str(partial))
    if not _same_outputs(path, str(partial), dims):
        partial.unlink()
        raise ModelError(f"{path} has a fixed batch of 1 and could not be made batchable: "
                         "re-export it with a dynamic batch (Ultralytics: dynamic=True) or use --batch 1")
    partial.replace(target)
    log.info("%s: made the batch axis dynamic (%d reshapes), verified, saved as %s", path, changed, target)
    return str(target)


def stack_feeds(feeds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-frame feeds of batch 1 -> one feed of batch len(feeds) (numpy
    arrays, or torch tensors on the GPU data path)."""
    def concat(values: list[Any]) -> Any:
        if isinstance(values[0], np.ndarray):
            return np.concatenate(values)
        import torch

        return torch.cat(values)

    return {name: concat([f[name] for f in feeds]) for name in feeds[0]}


def split_outputs(outputs: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """One batched result -> n per-frame results of batch 1 (views, no copies)."""
    return [{name: value[i:i + 1] for name, value in outputs.items()} for i in range(n)]
