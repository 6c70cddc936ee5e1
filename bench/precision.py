"""What fp16 and INT8 graphs cost in accuracy, against fp32, on ONNX Runtime's CPU.

    python bench/precision.py [--frames 795] [--calib VIDEO]

The precision-typed graphs are those `segstream build --fp16 | --int8` writes
(engines.runtimes.typed_graph): fp16 with the decoding tail kept fp32, and
explicit QDQ INT8 calibrated on frames prepared as the model's adapter
prepares them. INT8 is calibrated on another video than the one scored
(default: the indoor sample video), so no score here is measured on the
calibration frames.

Per model, over the sample video's frames, each precision's objects are
matched one to one with fp32's (same class, Hungarian on box IoU, pairs above
0.5): the matched boxes' IoU and masks' IoU (min, mean, how many below 0.99
and 0.97), objects only one side found, keypoint distances (visible in both,
pixels), and FPS of inference alone (one thread each, same frames, same
process: ratios hold on this shared machine). Then end to end on PETS09-S2L1:
`segstream run` with the default tracker at each precision, scored with
TrackEval against the MOT15 ground truth. Targets (issue 20): fp16 boxes
IoU >= 0.99 for at least 99% of matched objects and HOTA within 0.5 of fp32;
INT8 HOTA within 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from segstream.engines.model import Model
from segstream.engines.runtimes.engine_cache import BuildOptions
from segstream.pipelines.cli import _quiet_native_logs
from segstream.stream.boxes import box_iou
from segstream.stream.masks import paired_mask_iou
from segstream.stream.sources import open_source

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from pets_e2e import run_on_pets  # noqa: E402

ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
PRECISIONS = ("fp32", "fp16", "int8")


def load(model: str, precision: str, calib: str) -> Model:
    build = BuildOptions(precision if precision != "fp32" else "fp16", calib=calib if precision == "int8" else None,
                         typed_graph=precision != "fp32")
    return Model.load(model, backend="onnxruntime", device="cpu", threads=1, build=build)


def detect(model: Model, frames: list) -> tuple[list, float]:
    """Each frame's detections, and inference alone in frames per second."""
    out, spent = [], 0.0
    for frame in frames:
        prepared = model.preprocess(frame)
        t = time.perf_counter()
        raw = model.infer(prepared)
        spent += time.perf_counter() - t
        out.append(model.postprocess(raw, prepared))
    return out, len(frames) / spent


def compare(ref: list, other: list) -> dict:
    boxes, masks, kp, only_ref, only_other = [], [], [], 0, 0
    for a, b in zip(ref, other):
        iou = box_iou(a.xyxy, b.xyxy) if len(a) and len(b) else np.zeros((len(a), len(b)))
        iou = iou * (a.class_ids[:, None] == b.class_ids[None, :])
        rows, cols = linear_sum_assignment(-iou) if iou.size else (np.zeros(0, int), np.zeros(0, int))
        keep = iou[rows, cols] > 0.5
        rows, cols = rows[keep], cols[keep]
        only_ref += len(a) - len(rows)
        only_other += len(b) - len(cols)
        boxes += iou[rows, cols].tolist()
        if a.masks is not None and b.masks is not None and len(rows):
            masks += paired_mask_iou(a.masks[rows], b.masks[cols]).tolist()
        if a.keypoints is not None and b.keypoints is not None:
            for i, j in zip(rows, cols):
                seen = (a.keypoints[i, :, 2] >= 0.5) & (b.keypoints[j, :, 2] >= 0.5)
                kp += np.linalg.norm(a.keypoints[i, seen, :2] - b.keypoints[j, seen, :2], axis=1).tolist()
    return {"boxes": np.array(boxes), "masks": np.array(masks), "kp": np.array(kp), "only_ref": only_ref,
            "only_other": only_other}


def summary(values: np.ndarray) -> str:
    if len(values) == 0:
        return "-"
    return (f"min {values.min():.3f} mean {values.mean():.4f}, <0.99: {int((values < 0.99).sum())}, "
            f"<0.97: {int((values < 0.97).sum())} of {len(values)}")


def end_to_end(model: str, precision: str, calib: str) -> tuple[float, float, float]:
    extra = {} if precision == "fp32" else {"backend": "onnxruntime", "precision": precision}
    with tempfile.TemporaryDirectory() as out:
        s, stats = run_on_pets(model, out, calib=calib if precision == "int8" else None, **extra)
    return s.hota, s.idf1, stats.fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"),
                                                        str(ASSETS / "models" / "yolo11n-pose.onnx")])
    parser.add_argument("--frames", type=int, default=795, help="frames of the sample video compared")
    parser.add_argument("--calib", default=str(ASSETS / "video" / "one-by-one-person-detection.mp4"),
                        help="INT8 calibration frames (default: another video than the one scored)")
    parser.add_argument("--no-e2e", dest="e2e", action="store_false", help="skip the end-to-end tracking scores")
    args = parser.parse_args()
    _quiet_native_logs()
    with open_source(str(ASSETS / "video" / "vtest.avi")) as src:
        frames = [f for _, f in zip(range(args.frames), src)]
    print(f"{len(frames)} frames of vtest.avi; ONNX Runtime on the CPU, 1 thread; INT8 calibrated on "
          f"{Path(args.calib).name}")
    for path in args.models:
        print(f"\n{Path(path).name}")
        results = {}
        for precision in PRECISIONS:
            model = load(path, precision, args.calib)
            try:
                results[precision] = detect(model, frames)
            finally:
                model.close()
        base_fps = results["fp32"][1]
        print(f"{'precision':<10}{'FPS':>7}{'vs fp32':>9}  objects only fp32 / only this  "
              "box IoU to fp32 | mask IoU | keypoint px (mean, max)")
        for precision in PRECISIONS:
            dets, fps = results[precision]
            if precision == "fp32":
                print(f"{precision:<10}{fps:>7.1f}{1.0:>8.2f}x  {sum(len(d) for d in dets)} objects")
                continue
            c = compare(results["fp32"][0], dets)
            kp = f"{c['kp'].mean():.2f}, {c['kp'].max():.1f}" if len(c["kp"]) else "-"
            share = (c["boxes"] >= 0.99).mean() * 100 if len(c["boxes"]) else 0.0
            print(f"{precision:<10}{fps:>7.1f}{fps / base_fps:>8.2f}x  {c['only_ref']} / {c['only_other']}  "
                  f"boxes {summary(c['boxes'])} ({share:.1f}% >= 0.99) | masks {summary(c['masks'])} | {kp}")
        if args.e2e:
            scores = {p: end_to_end(path, p, args.calib) for p in PRECISIONS}
            line = ", ".join(f"{p} HOTA {h:.1f} IDF1 {i:.1f} ({fps:.1f} FPS)" for p, (h, i, fps) in scores.items())
            print(f"end to end on PETS09-S2L1, default tracker: {line}")
            print(f"  HOTA vs fp32: fp16 {scores['fp16'][0] - scores['fp32'][0]:+.1f} (target within 0.5), "
                  f"int8 {scores['int8'][0] - scores['fp32'][0]:+.1f} (target within 2)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
