"""Which layers a reduced-precision build keeps in fp32: the decoding after
the last convolutions, found on the real sample models' graphs."""

from __future__ import annotations

import onnx
from segstream.engines.runtimes.precision import Layer, onnx_layers, output_head, output_tail


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


def test_the_head_is_the_tail_and_the_last_convolutions_on_every_path():
    """INT8 keeps the head's last two convolutions per branch in fp32: counted
    on every path, a branch with more convolutions is cut where its own last
    two start."""
    layers = [
        Layer(True, ("x",), ("a",)),  # 0: conv, 3 from the end on the long branch
        Layer(True, ("a",), ("b",)),  # 1: conv, 2 from the end
        Layer(False, ("b",), ("c",)),  # 2: activation between the last two
        Layer(True, ("c",), ("d",)),  # 3: the last conv of the long branch
        Layer(True, ("a",), ("e",)),  # 4: the short branch's only conv
        Layer(False, ("d", "e"), ("out",)),  # 5: the tail
    ]
    assert output_head(layers, 0) == output_tail(layers) == [5]
    assert output_head(layers, 1) == [2, 3, 4, 5]
    assert output_head(layers, 2) == [1, 2, 3, 4, 5]
    assert output_head(list(reversed(layers)), 2) == [0, 1, 2, 3, 4]  # order does not matter


def test_yolo_heads_keep_their_last_two_convolutions_per_branch(seg_model, pose_model):
    for path in (seg_model, pose_model):
        graph = onnx.load(str(path), load_external_data=False).graph
        head = [graph.node[i] for i in output_head(onnx_layers(graph), 2)]
        convs = [n.name for n in head if n.op_type == "Conv"]
        assert any("dfl" in name for name in convs)  # the box distribution's expectation
        assert any("cv3" in name for name in convs) and any("cv2" in name for name in convs)  # class and box branches
        assert len(head) < len(graph.node) // 2
