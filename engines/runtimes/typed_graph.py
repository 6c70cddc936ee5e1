"""Precision written into the ONNX graph: fp16 tensors, or INT8 as explicit
QuantizeLinear/DequantizeLinear pairs.

Why: TensorRT 11 builds every network strongly typed; the builder flags and
calibrators that chose precision in TensorRT 10 are gone, and the graph itself
must say which tensors are fp16 and where INT8 is. A graph that says so also
runs on ONNX Runtime, on the CPU, so the precision decisions are checked here,
on real models and frames, before any GPU sees them.

The tools are ONNX Runtime's own: its float16 converter
(`onnxruntime.transformers.float16`, a maintained fork of
onnxconverter-common's, which keeps the inputs and outputs fp32 even where the
last nodes are kept fp32; onnxconverter-common 1.16 declares such outputs fp16)
and its static quantiser (`onnxruntime.quantization.quantize_static`, QDQ
format, symmetric INT8 as TensorRT requires, per-channel weights, biases
left float). ModelOpt
does the same on top of these but brings torch and CUDA packages with it.

The decoding tail (the layers after the last convolutions:
`engines.runtimes.precision`) stays fp32 in both, as in TensorRT 10 builds;
INT8 keeps the head's last two convolutions per branch and attention's
matrix products fp32 too, and quantises only the inputs of layers with
weights. INT8 is calibrated on frames prepared exactly as the model's
adapter prepares them. Graphs are cached like engines, under a key of the
source model, the precision, and for INT8 the calibration frames and their
preparation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ...stream.errors import ModelError
from ..hub import cache_dir, sha256_of
from .engine_cache import BuildOptions, ShapeProfile
from .precision import onnx_layers, output_head

log = logging.getLogger(__name__)

QUANTISED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")  # the layers with weights


@dataclass(frozen=True)
class Int8Recipe:
    """How an INT8 graph is made. The default is what `segstream build --int8`
    writes; bench/int8_variants.py measures it against the others
    (docs/benchmarks.md):
    - INT8 at the inputs of the layers with weights (`ops`), as TensorRT's Q/DQ
      placement guide asks, and not at their outputs (`outputs`): TensorRT runs
      a convolution and its activation as one layer, so nothing rounds between
      them, and activations, concatenations and the like are not rounded to
      INT8 again each (`ops=None`: every operator ONNX Runtime can quantise);
    - the head's last `head_convolutions` convolutions on every path kept fp32
      besides the tail: per-tensor INT8 of their inputs moved YOLO11n-pose's
      boxes to a mean IoU of 0.94 to fp32, 0.97 with them fp32;
    - `calibration`: "min/max" over all frames, "moving" (its average per
      frame), "percentile" (`percentile` of the values' magnitudes) or
      "entropy" (both from histograms: `histogram_ranges`). min/max stays the
      default: the others come closer to fp32 on frames of the calibration
      video they did not see, yet lose more people on the sample video;
    - attention's matrix products (`attention_matmuls`) kept fp32 unless
      `quantise_attention`: ModelOpt's default INT8 placement leaves this
      core of attention unquantised too, and INT8 there cost YOLO11n-pose
      (its C2PSA block) 40 of 155 people on the sample video, 10 without."""

    ops: tuple[str, ...] | None = QUANTISED_OPS
    outputs: bool = False
    head_convolutions: int = 2
    calibration: str = "min/max"
    percentile: float = 99.999
    quantise_attention: bool = False


# bumped whenever what a graph is made of changes, so that no cache serves an older one
GRAPH_RULES = 4


def name_nodes(model: Any) -> None:
    """Name every unnamed node (the converters and quantiser block by name)."""
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"segstream_node_{i}"


def tail_nodes(model: Any, convolutions: int = 0) -> list[str]:
    """Names of the decoding tail's nodes, and with `convolutions` those of the
    head's last convolutions too (unnamed nodes are named first)."""
    name_nodes(model)
    return [model.graph.node[i].name for i in output_head(onnx_layers(model.graph), convolutions)]


def attention_matmuls(model: Any) -> list[str]:
    """Names of the MatMuls of two activations: attention's query-key and
    attention-value products (weights enter a MatMul as a constant). Like
    ModelOpt's MHA pattern (MatMul, Softmax, MatMul), these stay fp32 in INT8
    graphs: both operands change with every frame and the softmax between
    them is sharp, so one per-tensor scale fits them badly."""
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    name_nodes(model)
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not constants & set(n.input)]


def graph_key(onnx_path: str, options: BuildOptions) -> str:
    """What a typed graph depends on: the model's bytes, the precision, the tail
    rule, and for INT8 the calibration source (resolved path, size, time), how
    many frames and how they were prepared."""
    fields: dict[str, Any] = {"onnx": sha256_of(Path(onnx_path)), "precision": options.precision,
                              "fp32_tail": options.fp32_tail, "rules": GRAPH_RULES}
    if options.precision == "int8":
        calib = Path(options.calib or "").resolve()
        stat = calib.stat() if calib.exists() else None
        fields.update(calib=str(calib), calib_size=stat.st_size if stat else None,
                      calib_mtime=stat.st_mtime_ns if stat else None, frames=options.calib_frames,
                      prepared=options.calib_input)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def write_fp16(onnx_path: str, out: Path, fp32_tail: bool = True) -> Path:
    """The network in fp16, inputs and outputs as they were, the tail kept fp32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(onnx_path)
    blocked = tail_nodes(model) if fp32_tail else []
    typed = convert_float_to_float16(model, keep_io_types=True, node_block_list=blocked)
    _save(without_fp16_round_trips(typed), out)
    log.info("%s: fp16 graph, %d tail nodes kept fp32", Path(onnx_path).name, len(blocked))
    return out


def without_fp16_round_trips(model: Any) -> Any:
    """`model` with every fp32 -> fp16 -> fp32 pair of Casts replaced by an Identity.

    Why: ONNX Runtime's converter wraps each node it keeps fp32 in casts of its
    own, fp16 in and fp16 out, so a tail of fp32 nodes still rounds every
    tensor between them to fp16: boxes came out on a 0.125 px grid. A cast to
    fp16 whose readers are all casts back to fp32 is such a round trip; the
    readers then take the fp32 tensor itself. (onnxconverter-common's
    `remove_unnecessary_cast_node` means to do this but fails on a tensor with
    several readers; ONNX Runtime's optimiser keeps the pair, as it is not an
    identity.)"""
    import onnx

    graph = model.graph
    fp32 = {v.name for v in [*graph.value_info, *graph.input, *graph.output]
            if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    fp32 |= {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def cast_to(node: Any) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    dropped = []
    for node in graph.node:
        if cast_to(node) != onnx.TensorProto.FLOAT16 or node.input[0] not in fp32 or node.output[0] in outputs:
            continue
        back = readers.get(node.output[0], [])
        if back and all(cast_to(r) == onnx.TensorProto.FLOAT for r in back):
            for r in back:
                r.op_type, r.input[0] = "Identity", node.input[0]
                del r.attribute[:]
            dropped.append(node)
    for node in dropped:
        graph.node.remove(node)
    return model


def write_int8(onnx_path: str, out: Path, blobs: Iterator[np.ndarray], fp32_tail: bool = True,
               recipe: Int8Recipe = Int8Recipe()) -> Path:
    """Explicit QDQ INT8 (symmetric, per-channel weights) made by `recipe`,
    calibrated on `blobs`; by default at the inputs of the layers with
    weights, the tail, the head's last convolutions and attention's matrix
    products kept fp32."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(onnx_path)
    blocked = tail_nodes(model, recipe.head_convolutions) if fp32_tail else []
    if not recipe.quantise_attention:
        blocked += attention_matmuls(model)
    name = model.graph.input[0].name
    named = out.with_suffix(".named.onnx")  # the node names the exclusion list refers to
    _save(model, named)

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.count = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            blob = next(blobs, None)
            if blob is None:
                return None
            self.count += 1
            return {name: blob}

    reader = Frames()
    # percentile and entropy: the ranges are computed here from merged histograms (`histogram_ranges`)
    # and handed over as ONNX Runtime's calibration cache
    histogram = recipe.calibration in ("percentile", "entropy")
    method = getattr(CalibrationMethod, recipe.calibration.title()) if histogram else CalibrationMethod.MinMax
    ranges = out.with_suffix(".ranges.json") if histogram else None
    try:
        if ranges is not None:
            ranges.unlink(missing_ok=True)
            histogram_ranges(named, reader, recipe.ops, ranges, recipe.calibration, recipe.percentile)
        quantize_static(str(named), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=blocked,
                        op_types_to_quantize=list(recipe.ops) if recipe.ops else None, calibrate_method=method,
                        # TensorRT's INT8 is symmetric, and it takes biases in float, not as int32 QDQ
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                       "OpTypesToExcludeOutputQuantization": [] if recipe.outputs else
                                       list(recipe.ops or ()),
                                       "CalibMovingAverage": recipe.calibration == "moving"},
                        calibration_cache_path=ranges)
    finally:
        for path in (named, ranges):
            if path is not None:
                path.unlink(missing_ok=True)
    if reader.count == 0:
        out.unlink(missing_ok=True)
        raise ModelError("calib: no frame to calibrate with; give a video file or image folder from the camera")
    log.info("%s: INT8 QDQ graph calibrated on %d frames, %d tail, head and attention nodes kept fp32",
             Path(onnx_path).name, reader.count, len(blocked))
    return out


HISTOGRAM_BINS, ENTROPY_QUANTISED_BINS = 2048, 128  # TensorRT's entropy calibrator's histogram
HISTOGRAM_CHUNK = 16  # frames whose activations are held at once


def histogram_ranges(model_path: Path, reader: Any, ops: tuple[str, ...] | None, out: Path, method: str,
                     percentile: float = 99.999) -> None:
    """Write to `out` (ONNX Runtime's calibration cache) the INT8 range of each
    activation from a histogram of its values (2048 bins, as TensorRT's
    calibrators): with `method` "percentile", where `percentile` of the values'
    magnitudes lie inside; with "entropy", where the KL divergence between the histogram
    and its form quantised to 128 levels is least, as TensorRT's entropy
    calibrator does. Why not `quantize_static`'s own: it holds every frame's
    activations at once (YOLO11n-pose at 640 over 256 frames: more than 24
    GB), and its entropy builds 128 bins for 128 levels, so no threshold is
    tried but the largest value and its result equals min/max. Here
    histograms are merged `HISTOGRAM_CHUNK` frames at a time."""
    import contextlib
    import io
    import itertools
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    class Chunk(CalibrationDataReader):
        def __init__(self, items: list[dict[str, np.ndarray]]) -> None:
            self.items = iter(items)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    options: dict[str, Any] = {"symmetric": True, "num_bins": HISTOGRAM_BINS}
    if method == "entropy":
        options["num_quantized_bins"] = ENTROPY_QUANTISED_BINS
    else:
        options["percentile"] = percentile
    frames = iter(reader.get_next, None)
    with tempfile.TemporaryDirectory(prefix="segstream-calib-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        calibrator = create_calibrator(model_path, list(ops) if ops else None, str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=getattr(CalibrationMethod, method.title()), extra_options=options)
        collected = False
        while chunk := list(itertools.islice(frames, HISTOGRAM_CHUNK)):
            calibrator.collect_data(Chunk(chunk))  # histograms merge into those of the chunks before
            collected = True
        if collected:  # else no file: the caller reports the missing frames
            save_tensors_data(calibrator.compute_data(), out)


def _save(model: Any, out: Path) -> None:
    import onnx

    tmp = out.with_suffix(f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)  # a build killed half way never leaves a graph that looks whole


def ensure_typed_graph(onnx_path: str, options: BuildOptions, preprocess: Callable[[Any], np.ndarray] | None = None,
                       root: Path | None = None, say: Callable[[str], None] = log.info) -> Path:
    """The cached fp16 or INT8 graph of `onnx_path` for `options`, written first if
    missing. INT8 frames are prepared by `preprocess` (YOLO's letterbox without
    it), and the graph is keyed by that preparation: a changed one calibrates again."""
    if options.precision not in ("fp16", "int8"):
        return Path(onnx_path)
    prepare = None
    if options.precision == "int8":
        from .calibration import fingerprint, yolo_preprocess

        prepare = preprocess or yolo_preprocess(ShapeProfile(opt_hw=(640, 640)))
        options = replace(options, calib_input=fingerprint(prepare))
    folder = Path(root) if root else cache_dir() / "graphs"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{Path(onnx_path).stem}.{options.precision}.{graph_key(onnx_path, options)}.onnx"
    if out.is_file():
        say(f"reusing the {options.precision} graph {out}")
        return out
    say(f"writing the {options.precision} graph of {Path(onnx_path).name} to {out}")
    if prepare is None:
        return write_fp16(onnx_path, out, options.fp32_tail)
    from .calibration import calibration_batches, sample_frame

    hw = tuple(prepare(sample_frame()).shape[2:])  # the input size the frames are prepared at
    profile = ShapeProfile(min_hw=hw, opt_hw=hw, max_hw=hw)  # type: ignore[arg-type]
    frames = calibration_batches(options.calib or "", profile, options.calib_frames, prepare)
    return write_int8(onnx_path, out, frames, options.fp32_tail)
