"""Pipeline throughput against the model's own limit, in one run.

For each model: model-only FPS (the runtime's `run` on preprocessed frames held
in memory, same threads), then pipeline FPS over the whole video (decode,
preprocess, inference, post-processing with masks/keypoints, SORT tracking,
ZeroMQ publishing), and their ratio. With Ultralytics installed, its
`model.track` loop on the same ONNX file is measured the same way.

    python bench/pipeline.py [--video V] [--model M ...] [--repeat 3] [--frames-model-only 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engines.model import Model  # noqa: E402
from pipelines.cli import GIL_SWITCH_INTERVAL_S, _quiet_native_logs  # noqa: E402
from pipelines.config import RunConfig  # noqa: E402
from pipelines.session import build_pipeline  # noqa: E402
from stream.sources import open_source  # noqa: E402

ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
DEFAULT_MODELS = ["models/yolov8n-seg_320_fp32.onnx", "models/yolo11n-pose.onnx"]


def model_only_fps(model_path: str, video: str, frames: int, threads: int | None) -> float:
    model = Model.load(model_path, threads=threads)
    prepared = []
    with open_source(video) as src:
        for frame in src:
            prepared.append(model.preprocess(frame))
            if len(prepared) == frames:
                break
    session, feeds = model.backend.session, [p.feed for p in prepared]
    names = [o.name for o in session.get_outputs()]
    for feed in feeds[:5]:
        session.run(names, feed)  # warm-up
    t = time.perf_counter()
    for feed in feeds:
        session.run(names, feed)
    return len(feeds) / (time.perf_counter() - t)


def pipeline_fps(model_path: str, video: str, threads: int | None, port: int) -> tuple[float, int]:
    config = RunConfig(source=[video], model=[model_path], publish=f"tcp://127.0.0.1:{port}", threads=threads)
    pipeline, _ = build_pipeline(config)
    stats = pipeline.run()
    return stats.fps, stats.frames


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
    parser.add_argument("--threads", type=int, action="append",
                        help="inference threads to compare (default: 1 and all cores)")
    parser.add_argument("--port", type=int, default=5591)
    args = parser.parse_args()
    _quiet_native_logs()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as `segstream run` does
    models = args.model or [str(ASSETS / m) for m in DEFAULT_MODELS]
    cpus = os.cpu_count() or 1
    thread_counts = args.threads or sorted({1, cpus})

    rows = []
    for path in models:
        ultra = ultralytics_fps(path, args.video)
        for threads in thread_counts:
            only = statistics.median(
                model_only_fps(path, args.video, args.frames_model_only, threads) for _ in range(args.repeat)
            )
            runs = [pipeline_fps(path, args.video, threads, args.port) for _ in range(args.repeat)]
            pipe = statistics.median(fps for fps, _ in runs)
            rows.append((Path(path).name, threads, only, pipe, runs[0][1], ultra))

    print(f"\nvideo {Path(args.video).name}, {cpus} CPUs, median of {args.repeat} run(s)")
    print(f"{'model':<28}{'threads':>8}{'model-only FPS':>16}{'pipeline FPS':>14}{'frames':>8}{'ratio':>8}  ultralytics")
    for name, threads, only, pipe, frames, ultra in rows:
        u = f"{ultra:.1f} ({ultra / only:.2f}x)" if ultra else "not installed"
        print(f"{name:<28}{threads:>8}{only:>16.1f}{pipe:>14.1f}{frames:>8}{pipe / only:>7.2f}x  {u}")


if __name__ == "__main__":
    main()
