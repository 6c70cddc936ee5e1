"""Which layers of a network stay in fp32 when the rest runs in fp16 or int8.

A detector's last convolutions are followed by a decoding tail (anchors
added, distances times strides, keypoints scaled) whose results are pixel
coordinates up to the input size. In fp16 a value between 256 and 512 is
stored to 0.25 px, which is enough to move small boxes below IoU 0.99 of the
fp32 boxes. Measured with torch on the CPU, YOLOv8n-seg on 40 frames of the
sample video (298 objects): everything in fp16 put 122 boxes below IoU 0.99
of ONNX Runtime's fp32 boxes (worst 0.78); the same with the tail in fp32,
2 (worst 0.96), exactly what torch's autocast gives. The tail is cheap
(elementwise work on the head's outputs), so TensorRT builds keep it in fp32.

The rule needs no knowledge of the model: a layer is in the tail when no
convolution or matrix product can be reached from it, i.e. it only works on
what the network's last heavy layers produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

# ONNX operators that do a network's heavy arithmetic (TensorRT: convolution,
# deconvolution, matrix multiply layers).
HEAVY_ONNX_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MatMul", "MatMulInteger",
                            "QLinearMatMul", "Gemm"})


@dataclass(frozen=True)
class Layer:
    """A node of a network graph, as far as the tail rule needs it."""

    heavy: bool
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def heavy_depth(layers: Sequence[Layer]) -> list[int]:
    """For each layer, the most heavy layers on any one path from it to the
    network's end, itself included: 0 for the decoding tail, 1 for the head's
    last convolutions and what lies between them and the tail, and so on.
    Does not assume the layers are sorted."""
    readers: dict[str, list[int]] = {}
    for i, layer in enumerate(layers):
        for name in layer.inputs:
            readers.setdefault(name, []).append(i)
    after = [[j for name in layer.outputs for j in readers.get(name, ())] for layer in layers]
    depth: list[int | None] = [None] * len(layers)
    for start in range(len(layers)):
        stack = [start]
        while stack:  # depth-first, without recursion: a network has thousands of layers
            i = stack[-1]
            if depth[i] is not None:
                stack.pop()
                continue
            waiting = [j for j in after[i] if depth[j] is None]
            if waiting:
                stack.extend(waiting)
                continue
            depth[i] = int(layers[i].heavy) + max((depth[j] or 0 for j in after[i]), default=0)
            stack.pop()
    return [d or 0 for d in depth]


def output_tail(layers: Sequence[Layer]) -> list[int]:
    """Indices of the layers from which no heavy layer can be reached, in order."""
    return output_head(layers, 0)


def output_head(layers: Sequence[Layer], convolutions: int) -> list[int]:
    """Indices of the layers with at most `convolutions` heavy layers (their own
    included) between them and the network's end, in order: the tail and the
    head's last `convolutions` convolutions on every path."""
    return [i for i, d in enumerate(heavy_depth(layers)) if d <= convolutions]


def onnx_layers(graph: Any) -> list[Layer]:
    """The nodes of an `onnx.GraphProto` as `Layer`s."""
    return [Layer(node.op_type in HEAVY_ONNX_OPS, tuple(node.input), tuple(node.output)) for node in graph.node]
