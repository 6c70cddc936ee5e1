"""Live latency: how many live frames may be inside the pipeline at once.

    python bench/live_latency.py [--seconds 18] [--fps 30]

A pipeline slower than its cameras has to drop frames; where it holds the
ones it keeps decides the latency. Serves the sample video as 30 fps RTSP
cameras (tests/rtsp_server.py, GStreamer from Debian packages, run by the
system Python) and runs segstream on them for `--seconds` with
`live_in_flight` 64 (as before the limit: every stage queue fills), 2 (the
default) and 1, in three cases slower than the cameras: YOLO11n-pose on one
384-pixel camera, YOLOv8n-seg on one 1920x1080 camera with `--save`, and
YOLO11n-pose on three cameras at once. Prints capture-to-publish latency
p50/p90 over every frame, FPS, and with several cameras the fewest and most
frames one camera got (a fair share is equal counts). The first 20 frames
(start-up) are left out. Compare the columns within one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segstream.pipelines.cli import _quiet_native_logs
from segstream.pipelines.config import RunConfig
from segstream.pipelines.run import GIL_SWITCH_INTERVAL_S
from segstream.pipelines.session import build_pipeline
from soak import ASSETS, Camera, percentile  # noqa: E402

IN_FLIGHT = (64, 2, 1)


def measure(cameras: list[Camera], model: Path, seconds: float, in_flight: int, save: bool, out: Path) -> str:
    """One run: 'p50 / p90 (FPS)', and the fewest-most frames per camera when there are several."""
    export = out / "frames.jsonl"
    config = RunConfig(source=[c.url for c in cameras], model=[str(model)], export=str(export), timeout=3.0,
                       progress=False, live_in_flight=in_flight, save=str(out / "saved.mp4") if save else None)
    pipeline, _ = build_pipeline(config)
    runner = threading.Thread(target=lambda: setattr(pipeline, "result", pipeline.run()), daemon=True)
    runner.start()
    runner.join(seconds)
    pipeline.stop()
    runner.join(30)
    pipeline.models.close()
    stats = pipeline.result
    frames = [m for m in map(json.loads, export.read_text().splitlines()) if m["type"] == "frame"][20:]
    latency = [m["latency_ms"]["total"] for m in frames]
    cell = f"{percentile(latency, 50):.0f} / {percentile(latency, 90):.0f} ({stats.frames / stats.seconds:.1f})"
    if len(cameras) > 1:
        counts = Counter(m["source"] for m in frames)
        cell += f" {min(counts.values(), default=0)}-{max(counts.values(), default=0)}"
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=18.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    args = parser.parse_args()
    _quiet_native_logs()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    pose, seg = ASSETS / "models" / "yolo11n-pose.onnx", ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"
    cases = [
        ("YOLO11n-pose, 384 px", pose, 384, 1, False),
        ("YOLOv8n-seg, 1920 px, --save", seg, 1920, 1, True),
        ("YOLO11n-pose, 3 cameras", pose, 384, 3, False),
    ]
    print(f"live latency: {args.fps} fps RTSP cameras, {args.seconds:g} s per run; "
          "p50 / p90 ms (FPS) [fewest-most frames of one camera]")
    print(f"{'case':<32}" + "".join(f"{f'in flight {k}':>30}" for k in IN_FLIGHT))
    for name, model, width, count, save in cases:
        cameras = [Camera(args.video, args.fps, width) for _ in range(count)]
        for camera in cameras:
            camera.start()
        row = []
        try:
            for k in IN_FLIGHT:
                with tempfile.TemporaryDirectory() as tmp:
                    row.append(measure(cameras, model, args.seconds, k, save, Path(tmp)))
        finally:
            for camera in cameras:
                camera.stop()
        print(f"{name:<32}" + "".join(f"{cell:>30}" for cell in row))
    print(f"in flight {IN_FLIGHT[0]}: as before the limit, every stage queue full")


if __name__ == "__main__":
    main()
