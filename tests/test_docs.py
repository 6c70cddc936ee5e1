"""The documentation a newcomer reads is true: the docs site builds without a
warning, and the README's and the docs' Python examples run as written, on
the sample model and a clip of the sample video under the names they use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from conftest import REPO

SKIP = "<!-- not run by the tests:"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)


def python_blocks() -> list[tuple[str, str]]:
    """(page:n, code) of every ```python block not marked as not runnable here."""
    blocks = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for n, m in enumerate(BLOCK.finditer(page.read_text()), 1):
            if not m["before"].startswith(SKIP):
                blocks.append((f"{page.relative_to(REPO)}:{n}", m["code"]))
    return blocks


def test_the_docs_site_builds_without_warnings(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "wire" / "index.html").read_text().count("schema version 1")  # SCHEMA.md included


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, video, seg_model, pose_model) -> Path:
    """A folder with the files the examples name: video.mp4 (30 frames of the
    sample video), yolov8n-seg.onnx and yolo11n-pose.onnx, and a user's own
    tracking.py and stream.py beside them."""
    work = tmp_path_factory.mktemp("docs")
    cap = cv2.VideoCapture(str(video))
    writer = None
    for _ in range(30):
        ok, image = cap.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(work / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10,
                                     (image.shape[1], image.shape[0]))
        writer.write(image)
    writer.release()
    (work / "yolov8n-seg.onnx").symlink_to(seg_model)
    (work / "yolo11n-pose.onnx").symlink_to(pose_model)
    for name in ("tracking", "stream", "engines", "pipelines"):  # scripts users write: they must shadow nothing
        (work / f"{name}.py").write_text(f"raise ImportError('the user script {name}.py was imported')\n")
    return work


@pytest.mark.parametrize("where,code", python_blocks(), ids=[w for w, _ in python_blocks()])
def test_python_examples_run_as_written(where, code, workdir):
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{where}:\n{done.stderr}"
