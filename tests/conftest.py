"""Shared fixtures. Test assets (models, video, MOT data) are never copied into
the repo: they come from $SEGSTREAM_ASSETS (default ../shared/assets), and a
test that needs a missing asset fails rather than skips."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# The same examples on every run: a property test that found something on one run and not
# the next would make the suite flaky. A bug it finds is kept as an explicit @example.
# `HYPOTHESIS_PROFILE=explore python -m pytest` searches afresh.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")


def asset(relative: str) -> Path:
    path = ASSETS / relative
    if not path.exists():
        pytest.fail(f"test asset missing: {path} (set SEGSTREAM_ASSETS to the shared assets folder)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory) -> None:
    """Engines and batch-dynamic model copies go to a temporary cache, never the user's."""
    if not os.environ.get("SEGSTREAM_CACHE"):
        os.environ["SEGSTREAM_CACHE"] = str(tmp_path_factory.mktemp("segstream-cache"))


@pytest.fixture(scope="session")
def video() -> Path:
    return asset("video/vtest.avi")


@pytest.fixture(scope="session")
def seg_model() -> Path:
    return asset("models/yolov8n-seg_320_fp32.onnx")


@pytest.fixture(scope="session")
def pose_model() -> Path:
    return asset("models/yolo11n-pose.onnx")


@pytest.fixture(scope="session")
def mot_root() -> Path:
    return asset("mot/MOT15")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """tests/rtsp_server.py (GStreamer's RTSP server, Debian packages) serving
    the sample video on loopback. `kill()` is a dead camera, `pause()`/`resume()`
    a stalled one (connection open, no frames), `start()` again a reboot."""

    SYSTEM_PYTHON = "/usr/bin/python3"

    def __init__(self, video: Path, fps: int = 10) -> None:
        self.video, self.fps = video, fps
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/stream"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [self.SYSTEM_PYTHON, str(REPO / "tests" / "rtsp_server.py"), "--video", str(self.video),
               "--port", str(self.port), "--fps", str(self.fps)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            err = self.process.stderr.read()
            pytest.fail(f"RTSP test server did not start ({err.strip()[-300:]}); it needs Debian's python3-gi, "
                        "gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-good/-ugly/-libav (see .ci/run)")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def rtsp_server(video):
    server = RtspServer(video)
    server.start()
    yield server
    if server.process is not None:
        server.resume()
        server.kill()
