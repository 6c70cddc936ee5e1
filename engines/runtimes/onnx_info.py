"""Inputs and metadata of an ONNX file without creating a runtime session.

Backends that compile the graph themselves (TensorRT, torch) still need what
the adapters read from the file: input shapes and Ultralytics' metadata
(class names, imgsz, kpt_shape).
"""

from __future__ import annotations

from pathlib import Path

from ...stream.errors import ModelError
from .base import TensorSpec


def _specs(values: list) -> list[TensorSpec]:
    from onnx.helper import tensor_dtype_to_np_dtype

    out = []
    for v in values:
        t = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        out.append(TensorSpec(v.name, shape, tensor_dtype_to_np_dtype(t.elem_type).name))
    return out


def load_onnx(path: str, weights: bool = False):  # -> onnx.ModelProto
    """The graph of `path`; with `weights`, also weights kept in external data files
    (large exports keep them beside the .onnx file), which reading shapes does not need."""
    try:
        import onnx
    except ImportError:
        raise ModelError("reading ONNX files for this backend needs the onnx package: pip install onnx") from None
    if not Path(path).is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        return onnx.load(path, load_external_data=weights)
    except Exception as err:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise ModelError(f"cannot load model {path}: not a valid ONNX model ({type(err).__name__})") from None


def graph_io(model) -> tuple[list[TensorSpec], list[TensorSpec], dict[str, str]]:  # model: onnx.ModelProto
    """(inputs, outputs, metadata) of a loaded model; initialisers listed as inputs are not inputs."""
    initialisers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initialisers]
    return _specs(inputs), _specs(list(model.graph.output)), {p.key: p.value for p in model.metadata_props}


def onnx_inputs_and_metadata(path: str) -> tuple[list[TensorSpec], dict[str, str]]:
    inputs, _, metadata = graph_io(load_onnx(path))
    return inputs, metadata


def producer_op(path: str, output: str) -> str | None:
    """The op type of the node that computes `output` ("Sigmoid", ...), or None
    when the file cannot be read (a model given as something other than a
    path) or does not say."""
    try:
        model = load_onnx(path)
    except ModelError:
        return None
    return next((node.op_type for node in model.graph.node if output in node.output), None)
