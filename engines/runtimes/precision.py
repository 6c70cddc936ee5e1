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


def output_tail(layers: Sequence[Layer]) -> list[int]:
    """Indices of the layers from which no heavy layer can be reached, in order.
    Does not assume the layers are sorted: walks back from every heavy layer
    through the producers of its inputs and returns what it never visits."""
    producer = {name: i for i, layer in enumerate(layers) for name in layer.outputs}
    feeds_heavy: set[int] = set()
    stack = [i for i, layer in enumerate(layers) if layer.heavy]
    while stack:
        i = stack.pop()
        if i in feeds_heavy:
            continue
        feeds_heavy.add(i)
        stack.extend(producer[name] for name in layers[i].inputs if name in producer)
    return [i for i in range(len(layers)) if i not in feeds_heavy]


def onnx_layers(graph: Any) -> list[Layer]:
    """The nodes of an `onnx.GraphProto` as `Layer`s."""
    return [Layer(node.op_type in HEAVY_ONNX_OPS, tuple(node.input), tuple(node.output)) for node in graph.node]
