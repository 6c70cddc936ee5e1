"""Live latency: how many of a camera's frames may be inside the pipeline at once.

    python bench/live_latency.py [--seconds 18] [--fps 30]

A pipeline slower than its camera has to drop frames; where it holds the
ones it keeps decides the latency. Serves the sample video as a 30 fps RTSP
camera (tests/rtsp_server.py, GStreamer from Debian packages, run by the
system Python) and runs segstream on it for `--seconds` with
`live_in_flight` 1, 2 (the default) and 64 (as before the limit: every stage
queue fills), for two cases slower than the camera: YOLO11n-pose on the
384-pixel stream, and YOLOv8n-seg on a 1920x1080 stream with `--save`.
Prints capture-to-publish latency p50/p90 and FPS; the first 20 frames
(start-up) are left out. Compare the columns within one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import ASSETS, Camera, percentile  # noqa: E402

from pipelines.cli import GIL_SWITCH_INTERVAL_S, _quiet_native_logs  # noqa: E402
from pipelines.config import RunConfig  # noqa: E402
from pipelines.session import build_pipeline  # noqa: E402

IN_FLIGHT = (64, 2, 1)


def measure(camera: Camera, model: Path, seconds: float, in_flight: int, save: bool, out: Path) -> tuple[float, float, float]:
    """(p50 ms, p90 ms, FPS) of one run."""
    export = out / "frames.jsonl"
    config = RunConfig(source=[camera.url], model=[str(model)], export=str(export), timeout=3.0, progress=False,
                       live_in_flight=in_flight, save=str(out / "saved.mp4") if save else None)
    pipeline, _ = build_pipeline(config)
    runner = threading.Thread(target=lambda: setattr(pipeline, "result", pipeline.run()), daemon=True)
    runner.start()
    runner.join(seconds)
    pipeline.stop()
    runner.join(30)
    pipeline.models.close()
    stats = pipeline.result
    latency = [json.loads(line)["latency_ms"]["total"] for line in export.read_text().splitlines()][20:]
    return percentile(latency, 50), percentile(latency, 90), stats.frames / stats.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=18.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    args = parser.parse_args()
    _quiet_native_logs()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    cases = [
        ("YOLO11n-pose, 384 px", ASSETS / "models" / "yolo11n-pose.onnx", 384, False),
        ("YOLOv8n-seg, 1920 px, --save", ASSETS / "models" / "yolov8n-seg_320_fp32.onnx", 1920, True),
    ]
    print(f"live latency: {args.fps} fps RTSP camera, {args.seconds:g} s per run; p50 / p90 ms (FPS)")
    print(f"{'case':<32}" + "".join(f"{f'in flight {k}':>26}" for k in IN_FLIGHT))
    for name, model, width, save in cases:
        camera = Camera(args.video, args.fps, width)
        camera.start()
        row = []
        try:
            for k in IN_FLIGHT:
                with tempfile.TemporaryDirectory() as tmp:
                    p50, p90, fps = measure(camera, model, args.seconds, k, save, Path(tmp))
                row.append(f"{p50:.0f} / {p90:.0f} ({fps:.1f})")
        finally:
            camera.stop()
        print(f"{name:<32}" + "".join(f"{cell:>26}" for cell in row))
    print(f"in flight {IN_FLIGHT[0]}: as before the limit, every stage queue full")


if __name__ == "__main__":
    main()
