"""Soak: the RTSP pipeline left running, with camera reboots, watched for drift.

    python bench/soak.py [--minutes 10] [--fps 30] [--reboot-every 120] [--model M]

Serves the sample video as a looping RTSP camera (tests/rtsp_server.py,
GStreamer from Debian packages, run by the system Python), runs segstream on
it in this process with a ZeroMQ subscriber reading every message, kills and
restarts the camera every `--reboot-every` seconds, and prints for the first
and the last minute: end-to-end latency (capture to publish, from the
messages) p50/p99 and the process's RSS; then frames published, frames
dropped (source and queues) and reconnects. Flat latency and RSS between the
two rows is the pass condition: no latency build-up, no leak.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from segstream.pipelines.cli import _quiet_native_logs
from segstream.pipelines.config import RunConfig
from segstream.pipelines.run import GIL_SWITCH_INTERVAL_S
from segstream.pipelines.session import build_pipeline
from segstream.stream.subscriber import Subscriber

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Camera:
    """The looping RTSP camera, restartable on the same port."""

    def __init__(self, video: str, fps: int, width: int = 384) -> None:
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/stream"
        self.cmd = ["/usr/bin/python3", str(REPO / "tests" / "rtsp_server.py"), "--video", video,
                    "--port", str(self.port), "--fps", str(fps), "--width", str(width)]
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.process.stdout.readline().strip() != "ready":
            sys.exit("soak: the RTSP camera did not start (needs python3-gi and GStreamer, see .ci/run)")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--reboot-every", type=float, default=120.0, help="seconds between camera reboots (0: never)")
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    args = parser.parse_args()
    _quiet_native_logs()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

    camera = Camera(args.video, args.fps)
    camera.start()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = RunConfig(source=[camera.url], model=[args.model], publish=endpoint, timeout=3.0, progress=False)
    pipeline, _ = build_pipeline(config)
    samples: list[tuple[float, float]] = []  # (time, latency ms)
    memory: list[tuple[float, float]] = []  # (time, RSS MB)
    statuses: list[str] = []
    done = threading.Event()

    def listen() -> None:
        with Subscriber(endpoint, hwm=100000) as sub:
            while not done.is_set():
                msg = sub.recv(timeout=0.2)
                if msg is None:
                    continue
                if msg["type"] == "frame":
                    samples.append((time.monotonic(), msg["latency_ms"]["total"]))
                elif msg["type"] == "status":
                    statuses.append(msg["status"])

    def watch() -> None:
        next_reboot = time.monotonic() + args.reboot_every if args.reboot_every else float("inf")
        while not done.wait(1.0):
            memory.append((time.monotonic(), rss_mb()))
            if time.monotonic() >= next_reboot:
                camera.stop()
                time.sleep(2.0)
                camera.start()
                next_reboot = time.monotonic() + args.reboot_every

    threads = [threading.Thread(target=listen, daemon=True), threading.Thread(target=watch, daemon=True)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    runner = threading.Thread(target=lambda: setattr(main, "stats", pipeline.run()), daemon=True)
    runner.start()
    try:
        runner.join(args.minutes * 60)
    finally:
        pipeline.stop()
        runner.join(10)
        done.set()
        for t in threads:
            t.join(5)
        pipeline.models.close()
        camera.stop()
    stats = getattr(main, "stats", None)
    end = time.monotonic()
    print(f"soak: {args.minutes:g} min, camera {args.fps} fps RTSP, reboot every {args.reboot_every:g} s, "
          f"model {Path(args.model).name}")
    print(f"{'window':<14}{'latency p50 ms':>16}{'p99 ms':>10}{'RSS MB':>10}{'frames':>8}")
    for name, lo, hi in (("first minute", t0, t0 + 60), ("last minute", end - 60, end)):
        lat = [v for t, v in samples if lo <= t < hi]
        rss = [v for t, v in memory if lo <= t < hi]
        print(f"{name:<14}{percentile(lat, 50):>16.1f}{percentile(lat, 99):>10.1f}"
              f"{(rss[-1] if rss else float('nan')):>10.1f}{len(lat):>8}")
    if stats is not None:
        dropped = sum(stats.dropped.values())
        print(f"published {stats.frames} frames, dropped {dropped} ({', '.join(f'{k} {v}' for k, v in stats.dropped.items() if v) or 'none'}), "
              f"reconnects {sum(stats.reconnects.values())}; status messages: "
              + ", ".join(f"{s} {statuses.count(s)}" for s in ("connected", "stalled", "reconnecting", "ended")))


if __name__ == "__main__":
    main()
