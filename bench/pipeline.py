"""Pipeline throughput against the model's own limit, in one run.

For each model: pipeline FPS over the whole video with `segstream run`'s
default layout and tracker for files (decode, preprocess, inference,
masks/keypoints, DeepSORT with colour appearance, ZeroMQ publishing), and two model-only limits measured on
preprocessed frames held in memory: A with the same layout (same runtime
threads, same number of frames in flight), B one frame at a time with
onnxruntime's defaults. With Ultralytics installed, its `model.track` loop on
the same ONNX file is measured too. Then, for the first run of each model,
the CPU time of each stage's threads per frame (Linux: read from
/proc/self/task every 0.2 s, so a thread's last 0.2 s before it ends is not
counted).

    python bench/pipeline.py [--video V] [--model M ...] [--repeat 3] [--frames-model-only 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort
from segstream.engines.model import Model
from segstream.pipelines.cli import _quiet_native_logs
from segstream.pipelines.config import RunConfig
from segstream.pipelines.run import GIL_SWITCH_INTERVAL_S
from segstream.pipelines.session import build_pipeline, inference_layout
from segstream.stream.sources import open_source
from thread_cpu import ThreadCpu

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
DEFAULT_MODELS = ["models/yolov8n-seg_320_fp32.onnx", "models/yolo11n-pose.onnx"]


def held_feeds(model: Model, video: str, frames: int) -> list[dict]:
    feeds = []
    with open_source(video) as src:
        for frame in src:
            feeds.append(model.preprocess(frame).feed)
            if len(feeds) == frames:
                break
    return feeds


def model_only_fps(session: Any, feeds: list[dict], workers: int = 1) -> float:
    """`session.run` alone on preprocessed frames held in memory, from `workers` threads at once."""
    names = [o.name for o in session.get_outputs()]
    for feed in feeds[:5]:
        session.run(names, feed)  # warm-up
    chunks = [feeds[i::workers] for i in range(workers)]
    threads = [threading.Thread(target=lambda c=c: [session.run(names, f) for f in c]) for c in chunks]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return len(feeds) / (time.perf_counter() - t)


def pipeline_fps(model_path: str, video: str, port: int) -> tuple[float, int, dict[str, float]]:
    """FPS, frames and CPU seconds per stage of one pipeline run."""
    config = RunConfig(source=[video], model=[model_path], publish=f"tcp://127.0.0.1:{port}")
    pipeline, _ = build_pipeline(config)
    try:
        with ThreadCpu() as cpu:
            stats = pipeline.run()
    finally:
        pipeline.models.close()
    return stats.fps, stats.frames, cpu.per_stage()


def ultralytics_fps(model_path: str, video: str) -> float | None:
    try:
        from ultralytics import YOLO
    except ImportError:
        return None
    model = YOLO(model_path, task="pose" if "pose" in model_path else "segment")
    frames, t = 0, time.perf_counter()
    for _ in model.track(video, stream=True, verbose=False, persist=True):
        frames += 1
    return frames / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    parser.add_argument("--model", action="append")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the median is reported")
    parser.add_argument("--frames-model-only", type=int, default=200)
    parser.add_argument("--port", type=int, default=5591)
    args = parser.parse_args()
    _quiet_native_logs()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as `segstream run` does
    models = args.model or [str(ASSETS / m) for m in DEFAULT_MODELS]
    for path in [args.video, *models]:
        if not Path(path).is_file():
            parser.error(f"{path} not found: pass --video/--model, or set SEGSTREAM_ASSETS to the assets folder")
    cpus = os.cpu_count() or 1

    rows = []
    for path in models:
        # Model-only limits first, in a clean process state; then the pipeline.
        layout = inference_layout(RunConfig(source=[args.video], model=[path]), live=False)
        model = Model.load(path, threads=layout.threads)
        feeds = held_feeds(model, args.video, args.frames_model_only)
        same = statistics.median(model_only_fps(model.backend.session, feeds, layout.workers) for _ in range(args.repeat))
        model.close()
        default_session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        best = statistics.median(model_only_fps(default_session, feeds) for _ in range(args.repeat))
        del default_session, feeds
        runs = [pipeline_fps(path, args.video, args.port) for _ in range(args.repeat)]
        pipe, frames = statistics.median(r[0] for r in runs), runs[0][1]
        rows.append((Path(path).name, layout, same, best, pipe, frames, ultralytics_fps(path, args.video),
                     {k: v / frames * 1000 for k, v in runs[0][2].items()}))

    print(f"\nvideo {Path(args.video).name}, {cpus} CPUs, median of {args.repeat} run(s)")
    print("model-only A: session.run on held frames with the pipeline's layout (frames in flight x threads)")
    print("model-only B: session.run on held frames, one at a time, onnxruntime defaults (all cores)")
    print(f"{'model':<28}{'layout':>8}{'A FPS':>8}{'B FPS':>8}{'pipeline':>10}{'frames':>8}"
          f"{'vs A':>7}{'vs B':>7}  ultralytics model.track")
    for name, layout, same, best, pipe, frames, ultra, _ in rows:
        u = f"{ultra:.1f} ({ultra / best:.2f}x B)" if ultra else "not installed"
        lay = f"{layout.workers}x{layout.threads or cpus}"
        print(f"{name:<28}{lay:>8}{same:>8.1f}{best:>8.1f}{pipe:>10.1f}{frames:>8}{pipe / same:>6.2f}x{pipe / best:>6.2f}x  {u}")
    print("\nCPU ms per frame by thread (capture: decoding and preparing; output: postprocess, track, publish),"
          " over the first pipeline run")
    shown = [s for s in ThreadCpu.STAGES if any(cpu[s] > 0 for *_, cpu in rows)]
    print(f"{'model':<28}" + "".join(f"{s:>12}" for s in shown) + f"{'not infer':>11}")
    for name, *_, cpu in rows:
        rest = sum(v for k, v in cpu.items() if k != "infer")
        print(f"{name:<28}" + "".join(f"{cpu[s]:>12.2f}" for s in shown) + f"{rest:>11.2f}")

if __name__ == "__main__":
    main()
