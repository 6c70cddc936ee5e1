"""Shared fixtures. Test assets (models, video, MOT data) are never copied into
the repo: they come from $SEGSTREAM_ASSETS (default ../shared/assets), and a
test that needs a missing asset fails rather than skips."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")


def asset(relative: str) -> Path:
    path = ASSETS / relative
    if not path.exists():
        pytest.fail(f"test asset missing: {path} (set SEGSTREAM_ASSETS to the shared assets folder)")
    return path


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
