"""Which INT8 choices hold accuracy: the variants tried before choosing
`segstream build --int8`'s (engines.runtimes.typed_graph), side by side.

    python bench/int8_variants.py [--model M.onnx] [--frames 150] [--calib-frames 256]

Each variant is a QDQ graph written by ONNX Runtime's static quantiser
(symmetric INT8, per-channel weights, biases float, as TensorRT takes them),
calibrated on the indoor sample video, never on the scored one. They differ in
- where INT8 goes: every operator ONNX Runtime can quantise ("all"), only
  the layers with weights ("conv", TensorRT's Q/DQ placement guide; ONNX
  Runtime rounds their outputs too), or only those layers' inputs ("inputs");
- what stays fp32: the decoding tail alone ("tail"), also the head's last two
  convolutions on every path ("head", engines.runtimes.precision.output_head),
  and also attention's matrix products ("head+attention",
  typed_graph.attention_matmuls; YOLO11 has them, YOLOv8 has none);
- the calibration: min/max over all frames, its moving average per frame,
  the 99.999th (or 99.99th) percentile of the values' magnitudes, or entropy
  (TensorRT's default); both of these from 2048-bin histograms merged over the
  frames (typed_graph.histogram_ranges).
Each is first compared with fp32 on frames of the calibration video that
calibration did not take ("held out": the detection scores' mean error in
logits where either side scores above 0.05, its mean sign, and the boxes'
mean error in pixels where fp32 scores above 0.25): a criterion that needs
nothing of the scored video, though it did not predict it (session 20:
percentile ranges were closer to fp32 there and lost more people on the
sample video; docs/benchmarks.md). Then each is compared
with fp32 on the first frames of the sample video (objects found by one side
only, matched boxes' IoU) and scored end to end on PETS09-S2L1 with the
default tracker. A score on one sequence moves by a few
HOTA with any change of detection scores near the threshold, so the choice
rests on the object-level columns and on the published placement, not on the
HOTA column alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from segstream.engines.model import Model, onnx_preprocess
from segstream.engines.runtimes.calibration import calibration_batches, sample_frame
from segstream.engines.runtimes.engine_cache import ShapeProfile
from segstream.engines.runtimes.typed_graph import QUANTISED_OPS, Int8Recipe, write_int8
from segstream.pipelines.cli import _quiet_native_logs
from segstream.stream.sources import open_source

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pets_e2e import run_on_pets  # noqa: E402
from precision import ASSETS, compare, detect, summary  # noqa: E402

# (placement, kept fp32, calibration)
VARIANTS = [("all", "tail", "min/max"), ("all", "head", "min/max"), ("all", "head", "moving"),
            ("conv", "head", "min/max"), ("conv", "head", "moving"), ("inputs", "head", "min/max"),
            ("inputs", "head", "percentile"), ("inputs", "head+attention", "min/max"),
            ("inputs", "head+attention", "entropy"), ("inputs", "head+attention", "percentile 99.99"),
            ("inputs", "head+attention", "percentile")]


def recipe(placement: str, kept: str, calibration: str) -> Int8Recipe:
    """The variant as the recipe `segstream build --int8` takes (its default is the chosen row)."""
    method, _, percentile = calibration.partition(" ")
    return Int8Recipe(ops=None if placement == "all" else QUANTISED_OPS, outputs=placement != "inputs",
                      head_convolutions=0 if kept == "tail" else 2, calibration=method,
                      percentile=float(percentile or 99.999), quantise_attention=kept != "head+attention")


def held_out_frames(spec: str, prepare, calibrated: int, count: int = 32) -> list[np.ndarray]:
    """`count` prepared frames of `spec` that `calibration_batches(spec, ..., calibrated)` does
    not take: it takes every `step`-th frame, these lie half a step after, spread over the file
    (a file with fewer than twice `calibrated` frames has none to spare: these would overlap)."""
    with open_source(spec) as source:
        step = max((source.frame_count or calibrated) // calibrated, 2)
        between = [frame for i, frame in enumerate(source) if i % step == step // 2]
    return [prepare(frame) for frame in between[:: max(len(between) // count, 1)][:count]]


def raw_outputs(path: str, blobs: list[np.ndarray]) -> list[np.ndarray]:
    """The model's first output (YOLO's boxes and scores per anchor) for each blob, ONNX Runtime CPU."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [session.run(None, {name: blob})[0] for blob in blobs]


def output_error(reference: list[np.ndarray], other: list[np.ndarray], classes: int) -> tuple[float, float, float]:
    """(mean |logit error| of the best class score where either side scores above 0.05,
    its mean sign, mean box error in pixels where the reference scores above 0.25)."""
    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    errors, boxes = [], []
    for r, o in zip(reference, other):
        sr, so = r[0, 4:4 + classes].max(0), o[0, 4:4 + classes].max(0)
        scored = (sr > 0.05) | (so > 0.05)
        errors.append(logit(so[scored]) - logit(sr[scored]))
        boxes.append(np.abs(r[0, :4, sr > 0.25] - o[0, :4, sr > 0.25]).ravel())
    e = np.concatenate(errors)
    return float(np.abs(e).mean()), float(e.mean()), float(np.concatenate(boxes).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"),
                                                        str(ASSETS / "models" / "yolo11n-pose.onnx")])
    parser.add_argument("--frames", type=int, default=150, help="frames of the sample video compared")
    parser.add_argument("--calib", default=str(ASSETS / "video" / "one-by-one-person-detection.mp4"))
    parser.add_argument("--calib-frames", type=int, default=256)
    parser.add_argument("--only", nargs="+", help="variants as placement/kept/calibration, e.g. conv/head/min/max")
    args = parser.parse_args()
    _quiet_native_logs()
    with open_source(str(ASSETS / "video" / "vtest.avi")) as src:
        frames = [f for _, f in zip(range(args.frames), src)]
    for model in args.models:
        prepare = onnx_preprocess(model)
        hw = tuple(prepare(sample_frame()).shape[2:])
        profile = ShapeProfile(min_hw=hw, opt_hw=hw, max_hw=hw)  # type: ignore[arg-type]
        blobs = list(calibration_batches(args.calib, profile, args.calib_frames, prepare))
        held = held_out_frames(args.calib, prepare, args.calib_frames)
        held_reference = raw_outputs(model, held)
        reference = Model.load(model, backend="onnxruntime", device="cpu", threads=1)
        classes = reference.adapter.num_classes
        try:
            expected, _ = detect(reference, frames)
        finally:
            reference.close()
        with tempfile.TemporaryDirectory() as out:
            base = run_on_pets(model, out)[0]
        print(f"\n{Path(model).name}: {sum(len(d) for d in expected)} objects in {len(frames)} frames; fp32 "
              f"end to end HOTA {base.hota:.1f} IDF1 {base.idf1:.1f}; INT8 calibrated on {len(blobs)} frames of "
              f"{Path(args.calib).name}, {len(held)} held out")
        print(f"{'INT8 at':<8}{'fp32':<16}{'calibration':<13}{'held out: logit, sign, box px':>31}"
              f"{'only fp32 / only int8':>23}  {'matched boxes IoU':<52}{'HOTA':>6}{'IDF1':>6}")
        with tempfile.TemporaryDirectory() as tmp:
            for placement, kept, calibration in VARIANTS:
                if args.only and f"{placement}/{kept}/{calibration}" not in args.only:
                    continue
                path = Path(tmp) / f"{placement}-{kept}-{calibration.replace('/', '').replace(' ', '')}.onnx"
                write_int8(model, path, iter(blobs), recipe=recipe(placement, kept, calibration))
                logit, sign, box = output_error(held_reference, raw_outputs(str(path), held), classes)
                typed = Model.load(str(path), backend="onnxruntime", device="cpu", threads=1)
                try:
                    c = compare(expected, detect(typed, frames)[0])
                finally:
                    typed.close()
                with tempfile.TemporaryDirectory() as out:
                    s = run_on_pets(str(path), out, backend="onnxruntime")[0]
                print(f"{placement:<8}{kept:<16}{calibration:<13}{logit:>13.3f}{sign:>+8.3f}{box:>10.3f}"
                      f"{c['only_ref']:>12} / {c['only_other']:<8}  "
                      f"{summary(c['boxes']):<52}{s.hota - base.hota:>+6.1f}{s.idf1 - base.idf1:>+6.1f}", flush=True)


if __name__ == "__main__":
    main()
