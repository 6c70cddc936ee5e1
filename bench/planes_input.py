"""Does making the network input from the decoded planes change what the model finds?

    python bench/planes_input.py [--model M] [--video V]

A video file's frames reach the model resized from their Y, U and V planes,
then converted to BGR (`stream.picture`); before, the whole frame was
converted first and resized after. The pixels differ by about half a level
on average. This runs the detector both ways on every frame of PETS09-S2L1
(vtest.avi), scores both against the MOT15 ground truth (IoU >= 0.5, one
detection per person), counts the detections one way that have a twin
(IoU >= 0.9) the other way, and times both preparations on a 1080p frame.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from segstream.engines.model import load_models
from segstream.engines.ops.letterbox import letterbox, letterbox_frame
from segstream.stream.boxes import box_iou, xywh_to_xyxy
from segstream.stream.sources import open_source
from segstream.stream.types import Frame

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")


def ground_truth(path: Path) -> dict[int, np.ndarray]:
    """Video frame index -> (N, 4) xyxy boxes of the people in MOT15's gt.txt."""
    rows = collections.defaultdict(list)
    for line in path.read_text().splitlines():
        frame, _, x, y, w, h = (float(v) for v in line.split(",")[:6])
        rows[int(frame) - 1].append([x, y, w, h])
    return {k: xywh_to_xyxy(np.array(v, np.float32)) for k, v in rows.items()}


def matched(a: np.ndarray, b: np.ndarray, threshold: float) -> int:
    """How many boxes of `a` pair one-to-one with a box of `b` at IoU >= threshold."""
    if len(a) == 0 or len(b) == 0:
        return 0
    iou = box_iou(a, b)
    rows, cols = linear_sum_assignment(-iou)
    return int((iou[rows, cols] >= threshold).sum())


def cpu_ms(fn, repeat: int = 200) -> float:
    fn()
    t = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - t) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    parser.add_argument("--gt", default=str(ASSETS / "mot" / "MOT15" / "PETS09-S2L1" / "gt" / "gt.txt"))
    args = parser.parse_args()
    for path in (args.model, args.video, args.gt):
        if not Path(path).is_file():
            sys.exit(f"{path} not found: pass it, or set SEGSTREAM_ASSETS to the assets folder")
    gt = ground_truth(Path(args.gt))
    models = load_models([args.model], classes=["person"])
    counts = {k: [0, 0, 0] for k in ("converted first", "planes")}  # TP, FP, FN
    total, twins, frames = {"converted first": 0, "planes": 0}, 0, 0
    with open_source(args.video) as src:
        for frame in src:
            truth = gt.get(frame.seq, np.zeros((0, 4), np.float32))
            found = {
                "converted first": models(Frame(frame.image, frame.source_id, frame.seq, 0.0, 0.0)),
                "planes": models(frame),
            }
            for name, dets in found.items():
                tp = matched(dets.xyxy, truth, 0.5)
                counts[name][0] += tp
                counts[name][1] += len(dets) - tp
                counts[name][2] += len(truth) - tp
                total[name] += len(dets)
            twins += matched(found["converted first"].xyxy, found["planes"].xyxy, 0.9)
            frames += 1
    models.close()

    print(f"\n{Path(args.video).name}, {frames} frames, {Path(args.model).name}, persons; MOT15 ground truth, IoU >= 0.5")
    print(f"{'network input':<18}{'detections':>11}{'TP':>7}{'FP':>7}{'FN':>7}{'precision':>11}{'recall':>8}{'MODA':>8}")
    for name, (tp, fp, fn) in counts.items():
        print(f"{name:<18}{total[name]:>11}{tp:>7}{fp:>7}{fn:>7}{tp / (tp + fp):>11.4f}{tp / (tp + fn):>8.4f}"
              f"{1 - (fp + fn) / (tp + fn):>8.4f}")
    print(f"detections with a twin the other way (IoU >= 0.9): {twins} of {total['converted first']} "
          f"({twins / max(total['converted first'], 1):.1%})")

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "1080p.mp4"
        with av.open(str(big), "w") as out:
            stream = out.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
            image = cv2.resize(next(iter(open_source(args.video))).image, (1920, 1080))
            for packet in [*stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")), *stream.encode()]:
                out.mux(packet)
        with open_source(str(big)) as src:
            frame = next(iter(src))
            before = cpu_ms(lambda: letterbox(frame.yuv.to_bgr(), (320, 320)))
            now = cpu_ms(lambda: letterbox_frame(frame, (320, 320)))
    print(f"\n1920x1080 frame to a 320x320 network input, CPU ms: converted first {before:.2f}, "
          f"from the planes {now:.2f} ({now / before:.2f}x)")


if __name__ == "__main__":
    main()
