"""PyTorch backend: the ONNX graph converted to a torch module (onnx2torch).

For NVIDIA GPUs without TensorRT: the same .onnx file the other backends
run, executed by PyTorch on CUDA, optionally in FP16, and replayed as a CUDA
graph (one launch per frame instead of one per layer, which is most of the
time a small model spends on a big GPU: 2.3x model-only and 2.1x end to end
for YOLOv8n-seg on an H200). Works on the CPU too, which is how it is tested
on machines without a GPU.

FP16 is torch's mixed precision (autocast: convolutions and matrix products
in fp16, reductions, softmax and the like in fp32), not a model cast to
fp16 throughout: on the sample video a whole-fp16 YOLOv8n-seg moved 122 of
298 boxes below IoU 0.99 of the fp32 boxes (worst 0.78), autocast 2 (worst
0.96). Measured with fp16 on the CPU: a GPU stores fp16 values with the
same rounding, though its kernels may accumulate differently.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from typing import Any, Callable

import numpy as np

from ...stream.errors import ModelError
from .base import Backend
from .onnx_info import graph_io, load_onnx

log = logging.getLogger(__name__)

CONVERTIBLE_OPSET = 17  # the newest opset whose operators onnx2torch 1.5 converts
MAX_GRAPHS = 8  # CUDA graphs kept per model, one per input shape (batch size); each holds its own memory


def _convert(convert: Callable[[Any], Any], model: Any, path: str) -> Any:
    """The torch module of `path`. onnx2torch knows operators up to opset
    `CONVERTIBLE_OPSET` and no Reshape with allowzero=1; a file it cannot take
    (OSNet: opset-18 ReduceMean, allowzero on a constant shape) is converted
    down with ONNX's version converter, the allowzero flags that cannot
    matter are cleared, and it is tried again."""
    try:
        return convert(model)
    except Exception as err:  # noqa: BLE001 - an unsupported operator, typically
        problem = str(err).splitlines()[0][:200] if str(err).strip() else type(err).__name__
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    try:
        if opset > CONVERTIBLE_OPSET:
            from onnx import version_converter

            model = version_converter.convert_version(model, CONVERTIBLE_OPSET)
        _clear_idle_allowzero(model.graph)
        module = convert(model)
    except Exception:  # noqa: BLE001 - still not convertible: report the first error, about the user's file
        raise ModelError(f"cannot convert {path} to torch: {problem}") from None
    log.info("%s: converted to opset %d for onnx2torch", path, min(opset, CONVERTIBLE_OPSET))
    return module


def _clear_idle_allowzero(graph: Any) -> None:
    """Reshape's allowzero only changes what a 0 in the target shape means; with a
    constant target that has no 0 it does nothing, so it is cleared."""
    from onnx import numpy_helper

    constants = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] not in constants:
            continue
        if (numpy_helper.to_array(constants[node.input[1]]) != 0).all():
            for attribute in node.attribute:
                if attribute.name == "allowzero":
                    attribute.i = 0


# onnx2torch modules that read their inputs after the first (target shape, split
# sizes, slice bounds, axes, scales) as Python numbers: .tolist(), iteration, torch.Size.
READS_ON_HOST = frozenset({
    "OnnxReshape", "OnnxSplit13", "OnnxSlice", "OnnxResize", "OnnxExpand", "OnnxTile",
    "OnnxUnsqueezeDynamicAxes", "OnnxSqueezeDynamicAxes", "OnnxReduceSumDynamicAxes", "OnnxPadDynamic",
})


def to_device(module: Any, device: Any) -> list[str]:
    """Move `module` to `device`, except the graph's constants that only feed such
    inputs, which stay on the CPU; returns their names. On a GPU each one would
    otherwise be read back on every call: a stream synchronisation per Reshape,
    Split or Slice (over twenty per frame for a YOLO head), and a read a CUDA
    graph cannot capture."""
    import torch

    def kind(node: Any) -> str:
        return type(module.get_submodule(node.target)).__name__ if node.op == "call_module" else ""

    host = {}
    for node in module.graph.nodes:
        if node.op == "get_attr":  # an initializer
            owner, _, name = node.target.rpartition(".")
        elif kind(node) == "OnnxConstant":  # a Constant node, its value a buffer
            owner, name = node.target, "value"
        else:
            continue
        value = getattr(module.get_submodule(owner), name, None)
        if isinstance(value, torch.Tensor) and node.users and all(
                kind(user) in READS_ON_HOST and node not in user.args[:1] for user in node.users):
            host[(owner, name)] = value
    module.to(device)
    for (owner, name), value in host.items():
        parent = module.get_submodule(owner)
        if name in parent._buffers:
            parent._buffers[name] = value
        else:
            parent._parameters[name] = value
    return [f"{owner}.{name}" for owner, name in host]


def allow_tf32(allowed: bool) -> None:
    """Whether cuDNN convolutions and matrix products may run fp32 in TF32
    (10-bit mantissas). torch allows it by default; segstream does not (see
    TorchBackend), the benchmarks turn it back on to show what it costs."""
    import torch

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, path: str, device: str = "cpu", half: bool = False, cuda_graph: bool = False) -> None:
        import torch

        try:
            from onnx2torch import convert
        except Exception as err:  # noqa: BLE001 - a torchvision that does not match torch raises RuntimeError
            raise ModelError(f"the torch backend needs onnx2torch and a torchvision matching torch ({err})") from None
        # onnx2torch's Slice indexes with a list, which torch deprecates with a warning on every
        # call: the user can do nothing about it, so it is not shown.
        warnings.filterwarnings("ignore", "Using a non-tuple sequence", UserWarning, r"onnx2torch\.")
        self._torch = torch
        model = load_onnx(path, weights=True)  # read once: specs, metadata and the graph to convert
        self.inputs, self.outputs, self.metadata = graph_io(model)
        module = _convert(convert, model, path)
        self.device = torch.device(device)
        if half and self.device.type == "cpu":
            log.warning("%s: fp16 on the CPU is slower than fp32 (`segstream run` uses fp32 there)", path)
        self.half = half
        if self.device.type == "cuda":
            # torch lets cuDNN run fp32 convolutions in TF32 by default: on an H200 that moved
            # 6 of 1919 YOLOv8n-seg boxes below IoU 0.99 of the CPU's, none with it off. fp32
            # means fp32 here, as in segstream's TensorRT builds; fp16 is the fast choice.
            allow_tf32(False)
        self.module = module.eval()
        kept = to_device(self.module, self.device)
        log.debug("%s: %d shape constants kept on the CPU", path, len(kept))
        self.cuda_graph = cuda_graph and self.device.type == "cuda"
        # On a GPU, overlapping calls gain nothing (the device runs them in turn) and a
        # CUDA graph's static buffers forbid them; on the CPU, calls may overlap.
        self.serial = self.device.type == "cuda"
        self._lock = threading.Lock() if self.serial else contextlib.nullcontext()
        self._graphs: dict[tuple[tuple[int, ...], ...], tuple[Any, list[Any], list[Any]]] = {}
        self._names = [o.name for o in self.outputs]
        self.path = path

    def _forward(self, tensors: list[Any]) -> list[Any]:
        torch = self._torch
        precision: Any = contextlib.nullcontext()
        if self.half:  # no weight cache: it cannot be used while a CUDA graph is captured; weights are re-cast each call
            precision = torch.autocast(self.device.type, torch.float16, cache_enabled=False)
        with precision:
            out = self.module(*tensors)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    def infer_device(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Torch tensors (on this device) in, torch tensors out (float32, owned by the caller)."""
        torch = self._torch
        tensors = [feed[s.name].to(self.device, torch.float32, non_blocking=True) for s in self.inputs]
        with self._lock, torch.inference_mode():
            if self.cuda_graph:
                outs = self._replay(tensors)
            else:
                outs = self._forward(tensors)
            graphed = self.cuda_graph  # False again if the capture failed
            return {n: t.float().clone() if graphed else t.float() for n, t in zip(self._names, outs)}

    def _replay(self, tensors: list[Any]) -> list[Any]:
        """Capture once per input shapes, then copy the inputs in and replay.
        Cross-stream batching sends batches of 1..N frames, so each size keeps
        its own graph instead of recapturing whenever the size changes."""
        key = tuple(tuple(t.shape) for t in tensors)
        if key not in self._graphs:
            if len(self._graphs) >= MAX_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))  # the oldest
            try:
                self._graphs[key] = self._capture(tensors)
            except Exception as err:  # noqa: BLE001 - an operator that reads back or allocates on the host
                log.warning("%s: cannot capture a CUDA graph (%s); running without one",
                            self.path, str(err).splitlines()[0][:200])
                self.cuda_graph = False
                self._graphs.clear()
                return self._forward(tensors)
        graph, static_in, static_out = self._graphs[key]
        for static, t in zip(static_in, tensors):
            static.copy_(t)
        graph.replay()
        return static_out

    def _capture(self, tensors: list[Any]) -> tuple[Any, list[Any], list[Any]]:
        """(graph, its input tensors, its output tensors) for inputs shaped like `tensors`."""
        torch = self._torch
        static_in = [t.clone() for t in tensors]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up outside the graph (cuDNN picks its kernels here)
                self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        log.info("%s: captured a CUDA graph for inputs %s", self.path, [list(t.shape) for t in tensors])
        return graph, static_in, static_out

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        host = {n: torch.from_numpy(a) for n, a in feed.items()}
        if self.device.type == "cuda":
            host = {n: t.pin_memory() for n, t in host.items()}
        out = self.infer_device(host)
        return {n: t.cpu().numpy() for n, t in out.items()}

    def close(self) -> None:
        for attr in ("module", "_graphs"):
            self.__dict__.pop(attr, None)
