"""The examples run as their docstrings say: the drawing script on the sample
video, and the Python and C++ subscribers against a real `segstream run`,
decoding the same objects, masks and keypoints from the wire."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import REPO, free_port

EXAMPLES = REPO / "examples"


def test_draw_video_writes_annotated_frames(video, seg_model, tmp_path):
    done = subprocess.run([sys.executable, EXAMPLES / "draw_video.py", video, seg_model, "--max-frames", "5",
                           "--out", tmp_path / "out.mp4", "--snapshot", tmp_path / "last.jpg"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    picture = cv2.imread(str(tmp_path / "last.jpg"))
    cap = cv2.VideoCapture(str(video))
    for _ in range(5):
        ok, raw = cap.read()
    assert picture.shape == raw.shape and np.abs(picture.astype(int) - raw).mean() > 1  # something was drawn
    written = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


@pytest.fixture(scope="module")
def cpp_subscriber(tmp_path_factory):
    """examples/cpp_subscriber built with CMake (Debian: cmake g++ libzmq3-dev cppzmq-dev nlohmann-json3-dev)."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake not found: apt-get install cmake g++ libzmq3-dev cppzmq-dev nlohmann-json3-dev")
    build = tmp_path_factory.mktemp("cpp")
    for step in (["cmake", "-S", EXAMPLES / "cpp_subscriber", "-B", build, "-DCMAKE_BUILD_TYPE=Release"],
                 ["cmake", "--build", build, "-j2"]):
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return build / "segstream_subscriber"


def _by_frame(stdout: str) -> dict[tuple[str, int], list[dict]]:
    frames: dict[tuple[str, int], list[dict]] = {}
    for line in stdout.splitlines():
        obj = json.loads(line)
        frames.setdefault((obj["source"], obj["seq"]), []).append(obj)
    return frames


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.slow
def test_cpp_and_python_subscribers_decode_the_same_objects(cpp_subscriber, video, seg_model, pose_model):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    readers = {
        "python": subprocess.Popen([sys.executable, EXAMPLES / "subscriber.py", endpoint, "--timeout", "300"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "cpp": subprocess.Popen([cpp_subscriber, endpoint, "--timeout", "300"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    time.sleep(1.0)  # both connected before the first frame (frames before that would only be missing, not wrong)
    run = subprocess.run([sys.executable, "-m", "segstream", "run", "--source", video, "--model", seg_model,
                          "--model", pose_model, "--publish", endpoint, "--max-frames", "30", "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out = {}
    for name, proc in readers.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name}: {stderr}"  # both stopped at the end-of-stream message
        out[name] = _by_frame(stdout)
    common = out["python"].keys() & out["cpp"].keys()
    assert ("vtest", 29) in common
    for key in common:
        assert _same(out["python"][key], out["cpp"][key]), key
    objects = [o for key in common for o in out["cpp"][key]]
    assert sum(o["mask_area"] or 0 for o in objects) > 10_000
    assert any(o["keypoints"] and max(k[2] for k in o["keypoints"]) > 0.5 for o in objects)
    assert all(o["mask_bounds"] is None or o["mask_bounds"][2] > o["mask_bounds"][0] for o in objects)
