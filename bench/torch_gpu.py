"""The torch backend's two GPU choices, measured: CUDA graphs (on by default) and
TF32 (off: fp32 means fp32), and what a model that cannot be captured does.

    python bench/torch_gpu.py [--model M] [--batch 1 8] [--device cuda]

Prints model-only FPS (the backend's call on preprocessed frames in memory) for
eager and graph replay, TF32 off and on, each against the eager run of its
precision and batch with TF32 off (segstream's default before graphs). Then runs a YOLOv8 export with NMS inside the
graph (data-dependent shapes, which no CUDA graph can hold) with graphs asked
for: it must warn once and give the eager detections.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from model_timing import model_only_fps  # noqa: E402  (bench/ is on the path: it holds this script)
from segstream.engines.model import Model
from segstream.engines.runtimes.batching import batchable_model
from segstream.engines.runtimes.engine_cache import BuildOptions, ShapeProfile
from segstream.engines.runtimes.torch import allow_tf32
from segstream.stream.sources import open_source

ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    parser.add_argument("--detector", default=str(ASSETS / "models" / "yolov8n_320_fp32.onnx"),
                        help="a YOLOv8 detect export, to append NMS to")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    print(f"{Path(args.model).name}, torch on {args.device}, model-only FPS")
    print(f"{'precision':<11}{'batch':>6}{'graph':>7}{'tf32':>6}{'FPS':>10}{'vs eager':>10}")
    for precision in ("fp32", "fp16"):
        for batch in args.batch:
            path = batchable_model(args.model) if batch > 1 else args.model
            base = None
            for graph, tf32 in ((False, False), (True, False), (False, True), (True, True)):
                if precision == "fp16" and tf32:
                    continue  # autocast's fp16 layers do not use TF32
                build = BuildOptions(precision, ShapeProfile(1, batch, batch), cuda_graph=graph)
                model = Model.load(path, backend="torch", device=args.device, build=build)
                allow_tf32(tf32)  # after the load, which turns it off
                fps = model_only_fps(model, args.video, batch, max(8 * batch, 64))
                model.close()
                base = base or fps
                print(f"{precision:<11}{batch:>6}{'yes' if graph else 'no':>7}{'on' if tf32 else 'off':>6}"
                      f"{fps:>10.1f}{fps / base:>9.2f}x")

    from end_to_end_models import export_end_to_end

    with tempfile.TemporaryDirectory() as tmp:
        e2e = Path(tmp) / "e2e.onnx"
        export_end_to_end(Path(args.detector), e2e, num_classes=80)
        print(f"\n{Path(args.detector).name} + NMS in the graph, CUDA graph asked for (it cannot be captured):")
        graphed = Model.load(str(e2e), backend="torch", device=args.device, build=BuildOptions("fp32"))
        eager = Model.load(str(e2e), backend="torch", device=args.device,
                           build=BuildOptions("fp32", cuda_graph=False))
        same = frames = 0
        with open_source(args.video) as source:
            for _, frame in zip(range(20), source):
                a, b = graphed(frame), eager(frame)
                frames += 1
                same += len(a) == len(b) and bool((abs(a.xyxy - b.xyxy) < 1e-3).all())
        print(f"graph still on: {graphed.backend.cuda_graph}; frames with the eager detections: {same}/{frames}")


if __name__ == "__main__":
    main()
