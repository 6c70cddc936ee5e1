"""Precision written into the ONNX graph (what TensorRT 11 builds, and what
`--backend onnxruntime --precision fp16|int8` runs): inputs and outputs stay
fp32, the decoding tail stays fp32, INT8 is explicit symmetric QDQ calibrated
on prepared frames, and the graphs run on ONNX Runtime with the fp32 model's
results within the bounds measured in bench/precision.py."""

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from segstream.engines.model import onnx_preprocess
from segstream.engines.runtimes.engine_cache import BuildOptions
from segstream.engines.runtimes.typed_graph import (
    Int8Recipe,
    attention_matmuls,
    ensure_typed_graph,
    tail_nodes,
    write_fp16,
    write_int8,
)
from segstream.stream.sources import open_source

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


@pytest.fixture(scope="module")
def blobs(video, seg_model):
    prepare = onnx_preprocess(str(seg_model))
    with open_source(str(video)) as src:
        return [prepare(f) for f in itertools.islice(src, 0, 400, 25)]


def run(path, blob):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: blob})


def value_types(model):
    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input,
                                                            *inferred.graph.output]}


def test_fp16_graph_keeps_inputs_outputs_and_the_decoding_tail_fp32(seg_model, blobs, tmp_path):
    out = write_fp16(str(seg_model), tmp_path / "m.fp16.onnx")
    model = onnx.load(out)
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [FLOAT]
    assert {o.type.tensor_type.elem_type for o in model.graph.output} == {FLOAT}
    weights = [t for t in model.graph.initializer if len(t.dims) == 4]  # convolution kernels
    assert weights and all(t.data_type == FLOAT16 for t in weights)
    types = value_types(model)
    tail = set(tail_nodes(onnx.load(seg_model)))
    tail_outputs = [o for n in model.graph.node if n.name in tail for o in n.output]
    assert tail_outputs and all(types.get(o, FLOAT) == FLOAT for o in tail_outputs)  # pixels stay fp32
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    assert not {o for n in casts for o in n.output} & {n.input[0] for n in casts}  # no fp32 -> fp16 -> fp32
    reference, typed = run(seg_model, blobs[0]), run(out, blobs[0])
    candidates = reference[0][0, 4:84].max(axis=0) > 0.5
    assert candidates.any()
    boxes_ref, boxes = reference[0][0, :4, candidates], typed[0][0, :4, candidates]
    # pixels of a 320 input: fp16 in the body, fp32 after it. Rounded to fp16
    # between the tail's nodes (a 0.125 px grid above 128) the mean was 0.04 px.
    assert np.abs(boxes - boxes_ref).mean() < 0.02 and np.abs(boxes - boxes_ref).max() < 0.5


def test_fp16_round_trips_between_fp32_nodes_are_removed():
    """A value kept fp32 between two fp32 nodes keeps its fp32 digits (1000.3
    is 1000.5 in fp16), while the fp16 body around them is untouched."""
    helper = onnx.helper
    nodes = [helper.make_node("Relu", ["x"], ["body"], name="body"),
             helper.make_node("Add", ["body", "c"], ["t1"], name="tail1"),
             helper.make_node("Mul", ["t1", "one"], ["t2"], name="tail2"),
             helper.make_node("Add", ["t1", "t2"], ["y"], name="tail3")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, [1])],
                              [helper.make_tensor_value_info("y", FLOAT, [1])],
                              [onnx.numpy_helper.from_array(np.array([1000.3], np.float32), "c"),
                               onnx.numpy_helper.from_array(np.array([1.0], np.float32), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from segstream.engines.runtimes.typed_graph import without_fp16_round_trips
    typed = convert_float_to_float16(model, keep_io_types=True, node_block_list=["tail1", "tail2", "tail3"])
    session = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])  # noqa: E731
    x = {"x": np.array([0.0], np.float32)}
    assert session(typed).run(None, x)[0][0] == 2001.0  # the converter alone: 1000.5 twice
    fixed = without_fp16_round_trips(typed)
    assert session(fixed).run(None, x)[0][0] == np.float32(1000.3) * 2
    assert any(n.op_type == "Relu" and n.output[0] == "body" for n in fixed.graph.node)
    assert value_types(fixed)["body"] == FLOAT16


def test_int8_graph_is_symmetric_qdq_at_convolutions_calibrated_on_prepared_frames(seg_model, blobs, tmp_path):
    out = write_int8(str(seg_model), tmp_path / "m.int8.onnx", iter(blobs[:8]))
    model = onnx.load(out)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 40 and ops.count("DequantizeLinear") >= 40  # convolution inputs
    zero_points = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer if "zero_point" in t.name}
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points.values())  # TensorRT's INT8
    tail = set(tail_nodes(onnx.load(seg_model)))
    tail_outputs = {o for n in model.graph.node if n.name in tail for o in n.output}
    quantised = {i for n in model.graph.node if n.op_type == "QuantizeLinear" for i in n.input}
    assert tail_outputs and not tail_outputs & quantised  # the tail computes in fp32 on dequantised inputs
    readers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    producers = {o: n for n in model.graph.node for o in n.output}
    weighted = {"Conv", "ConvTranspose"}
    dequantised = [n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"
                   and producers.get(n.input[0]) is not None]  # activations (weights are stored INT8)
    # INT8 where the weights are: each quantised activation is a convolution's
    # input, never its output (TensorRT runs the activation fused with it) nor a
    # tensor between activations or concatenations alone
    assert all({r.op_type for r in readers[d]} & weighted for d in dequantised)
    sources = [producers.get(producers[producers[d].input[0]].input[0]) for d in dequantised]
    assert not any(source is not None and source.op_type in weighted for source in sources)
    head = set(tail_nodes(onnx.load(seg_model), 2)) - tail
    head_convs = {n.name for n in model.graph.node if n.name in head and n.op_type in weighted}
    weights = [n.input[1] for n in model.graph.node if n.name in head_convs]
    assert head_convs and not any(w in producers for w in weights)  # the head's weights stay fp32
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [FLOAT, FLOAT]
    reference, typed = run(seg_model, blobs[3]), run(out, blobs[3])
    candidates = reference[0][0, 4:84].max(axis=0) > 0.5
    assert np.median(np.abs(typed[0][0, :4, candidates] - reference[0][0, :4, candidates])) < 3.0


def activation_scales(seg_model, blobs, path, recipe):
    """The scale of each quantised activation (weights are stored INT8 and left out)."""
    model = onnx.load(write_int8(str(seg_model), path, iter(blobs[:6]), recipe=recipe))
    weights = {t.name for t in model.graph.initializer if t.name.endswith("_quantized")}
    dequantised = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in weights]
    values = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return {n.input[0]: float(values[n.input[1]]) for n in dequantised}


def test_entropy_calibration_clips_ranges_as_tensorrts_calibrator_does(seg_model, blobs, tmp_path):
    """`calibration="entropy"` chooses each activation's range by KL divergence over
    2048 bins: most ranges end inside the largest value seen (ONNX Runtime's own
    entropy, with 128 bins for 128 levels, only ever chose the largest: min/max)."""
    minmax = activation_scales(seg_model, blobs, tmp_path / "minmax.onnx", Int8Recipe())
    entropy = activation_scales(seg_model, blobs, tmp_path / "entropy.onnx", Int8Recipe(calibration="entropy"))
    assert minmax.keys() == entropy.keys() and len(minmax) >= 40
    assert all(entropy[k] <= minmax[k] * 1.001 for k in minmax)
    assert sum(entropy[k] < minmax[k] * 0.9 for k in minmax) > len(minmax) // 2


def test_percentile_calibration_clips_less_as_the_percentile_rises(seg_model, blobs, tmp_path):
    """`calibration="percentile"` ends each range where that share of the values'
    magnitudes lies inside, from histograms merged over the frames (so that a
    640-input model does not hold every frame's activations): never outside
    min/max's, and a higher percentile never clips more than a lower one."""
    minmax = activation_scales(seg_model, blobs, tmp_path / "minmax.onnx", Int8Recipe())
    high, low = (activation_scales(seg_model, blobs, tmp_path / f"p{p}.onnx",
                                   Int8Recipe(calibration="percentile", percentile=p)) for p in (99.999, 99.9))
    assert minmax.keys() == high.keys() == low.keys() and len(minmax) >= 40
    assert all(low[k] <= high[k] * 1.001 and high[k] <= minmax[k] * 1.001 for k in minmax)
    assert sum(low[k] < minmax[k] * 0.9 for k in minmax) > len(minmax) // 2


def test_int8_keeps_attention_products_fp32(pose_model, video, tmp_path):
    """YOLO11's attention block (C2PSA): INT8 at its two activation-by-activation
    products lost a quarter of the sample video's people, so they stay fp32,
    while the convolutions around them are quantised."""
    source = onnx.load(pose_model)
    products = attention_matmuls(source)
    assert sorted(products) == ["/model.10/m/m.0/attn/MatMul", "/model.10/m/m.0/attn/MatMul_1"]
    prepare = onnx_preprocess(str(pose_model))
    with open_source(str(video)) as src:
        frames = [prepare(f) for f in itertools.islice(src, 2)]
    model = onnx.load(write_int8(str(pose_model), tmp_path / "pose.int8.onnx", iter(frames)))
    producers = {o: n for n in model.graph.node for o in n.output}
    by_name = {n.name: n for n in model.graph.node}
    assert all(producers[i].op_type != "DequantizeLinear" for p in products for i in by_name[p].input)
    qkv = by_name["/model.10/m/m.0/attn/qkv/conv/Conv"]
    assert producers[qkv.input[0]].op_type == "DequantizeLinear"  # the block's convolutions are INT8


def test_typed_graphs_are_cached_under_the_model_precision_and_calibration(seg_model, video, tmp_path):
    prepare = onnx_preprocess(str(seg_model))
    first = ensure_typed_graph(str(seg_model), BuildOptions("fp16"), prepare, root=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert ensure_typed_graph(str(seg_model), BuildOptions("fp16"), prepare, root=tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # reused, not written again
    int8 = BuildOptions("int8", calib=str(video), calib_frames=8)
    quantised = ensure_typed_graph(str(seg_model), int8, prepare, root=tmp_path)
    fewer = ensure_typed_graph(str(seg_model), BuildOptions("int8", calib=str(video), calib_frames=6), prepare,
                               root=tmp_path)
    assert len({first, quantised, fewer}) == 3  # another precision or calibration: another graph
    assert ensure_typed_graph(str(seg_model), BuildOptions("fp32"), prepare, root=tmp_path) == seg_model
