"""Which layers a reduced-precision build keeps in fp32: the decoding after
the last convolutions, found on the real sample models' graphs."""

from __future__ import annotations

import onnx
from segstream.engines.runtimes.precision import Layer, onnx_layers, output_tail


def _tail_ops(path):
    graph = onnx.load(str(path), load_external_data=False).graph
    tail = output_tail(onnx_layers(graph))
    return graph, [graph.node[i] for i in tail]


def test_yolo_decoding_is_the_tail_and_no_convolution_is(seg_model, pose_model):
    """Box (and keypoint) decoding: anchors, strides, the final concat that
    makes the output are kept in fp32; every convolution may run in fp16."""
    for path in (seg_model, pose_model):
        graph, tail = _tail_ops(path)
        ops = {n.op_type for n in tail}
        assert not ops & {"Conv", "MatMul", "Gemm"}
        assert {"Mul", "Add", "Sub", "Concat"} <= ops
        producers = {o: n for n in graph.node for o in n.output}
        assert producers[graph.output[0].name] in tail  # the detection output itself
        assert len(tail) < len(graph.node) // 5  # the tail is small: the network stays fp16


def test_a_layer_that_feeds_a_convolution_is_not_in_the_tail():
    """Branches merge and fork: only layers with no convolution anywhere
    downstream count, whatever order the layers come in."""
    layers = [
        Layer(False, ("out_conv",), ("out",)),  # 0: after the last conv
        Layer(True, ("mid",), ("out_conv",)),  # 1: conv
        Layer(False, ("x",), ("mid",)),  # 2: feeds the conv
        Layer(False, ("x",), ("side",)),  # 3: only feeds 4
        Layer(False, ("side", "out"), ("out2",)),  # 4: after the conv
        Layer(True, ("x",), ("x2",)),  # 5: a conv whose output nobody reads
    ]
    assert output_tail(layers) == [0, 3, 4]
