"""The engine side of the command line on a machine without TensorRT or GPU:
`segstream build` explains itself in one line, `run --backend tensorrt`
falls back to ONNX Runtime and says so, and a semantic model beside an
instance model publishes semantic and panoptic maps."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import asset
from segstream.engines.runtimes.registry import Capabilities
from segstream.stream.wire import png_to_label_map
from semantic_models import STREET_LABELS, export_tiny_fcn
from test_cli import segstream

NO_GPU = not Capabilities().cuda


@pytest.mark.skipif(not NO_GPU, reason="describes a machine without a GPU")
def test_build_without_tensorrt_or_gpu_is_one_line_and_says_what_run_will_use(seg_model):
    result = segstream("build", seg_model, "--fp32")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("segstream: error: cannot build a TensorRT engine here: no NVIDIA GPU found")
    assert result.stderr.strip().endswith("`segstream run` will use onnxruntime on cpu")


@pytest.mark.skipif(not NO_GPU, reason="describes a machine without a GPU")
def test_build_writes_the_typed_graph_that_run_then_runs_on_onnxruntime(video, seg_model, tmp_path):
    """`build --int8 --calib` writes the INT8 QDQ graph (TensorRT 11's input) even
    where no engine can be built, and `run --backend onnxruntime --precision
    int8` with the same calibration runs that very graph from the cache."""
    env = {**os.environ, "SEGSTREAM_CACHE": str(tmp_path)}
    built = segstream("build", seg_model, "--int8", "--calib", video, env=env)
    assert built.returncode == 0, built.stderr
    graphs = list((tmp_path / "graphs").glob("*.int8.*.onnx"))
    assert len(graphs) == 1 and f"int8 graph ready: {graphs[0]}" in built.stdout
    assert (f"the graph runs with `segstream run --model {seg_model} --backend onnxruntime --precision int8 "
            f"--calib {video} --source ...`") in built.stdout
    run = segstream("run", "--source", video, "--model", seg_model, "--backend", "onnxruntime", "--precision", "int8",
                    "--calib", video, "--max-frames", 5, "--no-progress", "--log-level", "INFO", env=env)
    assert run.returncode == 0, run.stderr
    assert "its int8 graph (calibrated on vtest.avi)" in run.stdout and "frames 5" in run.stdout
    assert f"reusing the int8 graph {graphs[0]}" in run.stderr


def test_int8_without_calibration_frames_is_a_config_error(seg_model):
    result = segstream("build", seg_model, "--int8")
    assert result.returncode == 2 and "int8 needs calibration frames: give --calib" in result.stderr


def test_build_reads_the_semantic_section_of_a_run_config_and_names_a_bad_key(seg_model, tmp_path):
    """`build --int8 --config run.yaml` calibrates with the run's mean/std; a bad value is named before anything else."""
    bad = tmp_path / "run.yaml"
    bad.write_text("source: [cam.mp4]\nsemantic:\n  mean: [0.5, 0.5]\n")
    result = segstream("build", seg_model, "--int8", "--calib", "frames/", "--config", bad)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "'semantic.mean': List should have at least 3 items" in result.stderr
    bad.write_text("source: [cam.mp4]\nsemantic:\n  mean: [0.5, 0.5, 0.5]\n  std: [0.5, 0.5, 0.5]\n")
    result = segstream("build", seg_model, "--int8", "--calib", "frames/", "--config", bad)
    assert result.returncode == 2 and "no such file: frames/" in result.stderr  # the config was fine


def test_run_with_tensorrt_falls_back_to_onnxruntime_and_says_why(video, seg_model):
    result = segstream("run", "--source", video, "--model", seg_model, "--backend", "tensorrt", "--max-frames", 3,
                       "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "frames 3" in result.stdout
    warning = [line for line in result.stderr.splitlines() if "instead of tensorrt" in line]
    assert len(warning) == 1 and "using onnxruntime on cpu" in warning[0]


def test_semantic_and_panoptic_maps_are_published(video, seg_model, tmp_path):
    fcn = tmp_path / "fcn.onnx"
    export_tiny_fcn(fcn)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(STREET_LABELS))
    out, saved = tmp_path / "frames.jsonl", tmp_path / "panoptic.mp4"
    result = segstream("run", "--source", video, "--model", seg_model, "--model", fcn, "--labels", labels,
                       "--panoptic", "--max-frames", 5, "--export", out, "--save", saved, "--no-progress")
    assert result.returncode == 0, result.stderr
    import cv2

    capture = cv2.VideoCapture(str(saved))  # the annotated video shows the panoptic map under the objects
    assert capture.read()[0] and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    messages = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(messages) == 5
    for m in messages:
        semantic = png_to_label_map(m["semantic"])
        assert semantic.shape == (m["height"], m["width"]) and m["semantic"]["classes"] == STREET_LABELS
        ids = png_to_label_map(m["panoptic"])
        segments = m["panoptic"]["segments"]
        counts = np.bincount(ids.ravel(), minlength=len(segments) + 1)
        assert [s["id"] for s in segments] == list(range(1, len(segments) + 1))
        assert all(counts[s["id"]] == s["area"] > 0 for s in segments)
        things = sorted(s["track_id"] for s in segments if s["isthing"])
        assert set(things) <= {o["track_id"] for o in m["objects"]}
        assert all(s["category"] in STREET_LABELS for s in segments if not s["isthing"])
    assert any(s["isthing"] for m in messages[3:] for s in m["panoptic"]["segments"])


def test_panoptic_without_a_semantic_model_is_a_config_error(video, seg_model):
    result = segstream("run", "--source", video, "--model", seg_model, "--panoptic", "--max-frames", 1)
    assert result.returncode == 2
    assert "panoptic: needs a semantic model and an instance segmentation model" in result.stderr


def test_batching_two_cameras_changes_nothing_but_the_calls(video, seg_model, tmp_path):
    """--batch 2 runs both sources' frames in one call; every message is what it is without batching."""
    def messages(out):
        by_frame = {}
        for line in out.read_text().splitlines():
            m = json.loads(line)
            by_frame[(m["source"], m["seq"])] = [(o["track_id"], o["box"], o["mask"]) for o in m["objects"]]
        return by_frame

    runs = {}
    for batch in (1, 2):
        out = tmp_path / f"batch{batch}.jsonl"
        env = {**os.environ, "SEGSTREAM_CACHE": str(tmp_path / "cache")}
        result = segstream("run", "--source", video, "--source", video, "--model", seg_model, "--batch", batch,
                           "--batch-wait-ms", 50, "--max-frames", 30, "--export", out, "--no-progress", env=env)
        assert result.returncode == 0, result.stderr
        runs[batch] = messages(out), result.stdout
    assert runs[1][0] == runs[2][0] and len(runs[1][0]) == 60
    assert "frames per call" in runs[2][1] and "frames per call" not in runs[1][1]


def test_info_says_how_each_model_is_read_and_what_run_would_use(seg_model, pose_model, tmp_path):
    """`segstream info`: one line per model (task, adapter, classes, input, outputs), then the backend choice."""
    from end_to_end_models import export_end_to_end

    e2e = tmp_path / "seg_e2e.onnx"
    export_end_to_end(seg_model, e2e, 80)
    binary = tmp_path / "binary.onnx"
    export_tiny_fcn(binary, classes=1, sigmoid=True)
    result = segstream("info", seg_model, pose_model, e2e, binary)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert "segment (YoloV8Seg), 80 classes (person, bicycle" in lines[0] and "input 320x320" in lines[0]
    assert "pose (YoloV8Pose), 1 class (person)" in lines[1]
    assert "segment (EndToEndSeg)" in lines[2] and "no NMS" in lines[2] and "output0[1, 300, 38]" in lines[2]
    assert "semantic (SemanticAdapter), 2 classes (background, foreground)" in lines[3] and "above 0.5" in lines[3]
    assert lines[4].startswith("run would use onnxruntime on cpu: ")
    reid = segstream("info", asset("models/osnet_x0_25_msmt17.onnx"))  # the file `run --reid-model` takes
    assert reid.returncode == 0, reid.stderr
    assert "re-id (appearance features" in reid.stdout and "512-d features of 128x256 crops" in reid.stdout
    missing = segstream("info", tmp_path / "gone.onnx")
    assert missing.returncode == 2 and missing.stderr.strip() == f"segstream: error: model file not found: {tmp_path / 'gone.onnx'}"
