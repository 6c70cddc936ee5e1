"""The torch backend runs the same ONNX file as ONNX Runtime and gives the
same outputs and the same detections (on the CPU here; CUDA on a GPU).

onnx2torch needs a torchvision built for the installed torch. This CI
installs the CPU torch 2.13 wheel, for which no torchvision exists on this
machine's package index, so here the test is skipped with that reason; it
was run in a venv with torch 2.14.1 + torchvision 0.29.1 (see the README)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from segstream.engines.model import Model
from segstream.engines.runtimes.registry import Capabilities
from segstream.stream.boxes import box_iou
from segstream.stream.masks import paired_mask_iou
from segstream.stream.sources import open_source

if not Capabilities().torch_onnx:
    if os.environ.get("SEGSTREAM_REQUIRE_TORCH"):  # .ci/run's torchvision venv: installed on purpose, so never skipped
        pytest.fail("SEGSTREAM_REQUIRE_TORCH is set but onnx2torch with a matching torchvision does not import",
                    pytrace=False)
    pytest.skip("onnx2torch with a torchvision matching this torch is not importable", allow_module_level=True)

from segstream.engines.runtimes.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from segstream.engines.runtimes.torch import TorchBackend  # noqa: E402


@pytest.mark.parametrize("name", ["models/yolov8n-seg_320_fp32.onnx", "models/yolo11n-pose.onnx", "models/yolov5s-seg.onnx",
                                  "models/osnet_x0_25_msmt17.onnx"])  # opset 18, weights in an external file
def test_outputs_match_onnxruntime(name):
    from conftest import asset

    path = str(asset(name))
    torch_backend, ort_backend = TorchBackend(path), OnnxRuntimeBackend(path)
    spec = ort_backend.inputs[0]
    x = np.random.default_rng(0).random([d or 640 for d in spec.shape], dtype=np.float32)
    got, want = torch_backend.infer({spec.name: x}), ort_backend.infer({spec.name: x})
    assert list(got) == list(want)
    for key in want:
        assert got[key].shape == want[key].shape and got[key].dtype == np.float32
        np.testing.assert_allclose(got[key], want[key], rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(want[key]).max())))


def assert_same_detections(model, reference, video, frames, box_bar=0.99, mask_bar=0.97):
    """The issue's bar for another runtime: boxes IoU >= 0.99, masks IoU >= 0.97."""
    with open_source(str(video)) as source:
        for _, frame in zip(range(frames), source):
            a, b = model(frame), reference(frame)
            assert len(a) == len(b) > 0
            iou = box_iou(a.xyxy, b.xyxy)
            rows, cols = linear_sum_assignment(-iou)  # scores may differ in the last digits: so may the order
            assert iou[rows, cols].min() >= box_bar
            assert paired_mask_iou(a.masks[rows], b.masks[cols]).min() >= mask_bar


def test_detections_match_onnxruntime_on_real_frames(seg_model, video):
    on_torch = Model.load(str(seg_model), backend="torch", device="cpu")
    assert on_torch.backend.name == "torch"
    assert_same_detections(on_torch, Model.load(str(seg_model), backend="onnxruntime", device="cpu"), video, 5)


@pytest.mark.parametrize("resize_on_device", [False, True])
def test_device_data_path_matches_the_cpu_path(seg_model, video, resize_on_device):
    """The GPU data path (frame upload, letterbox and masks in torch, only the
    head back for NMS), forced on here on the CPU, against ONNX Runtime's path:
    the issue's bar, letterboxed on the device (cv2's pixels) or on the CPU."""
    from segstream.engines.adapters.yolo import PostprocessConfig, make_adapter
    from segstream.engines.model import Model as M

    backend = TorchBackend(str(seg_model))
    adapter = make_adapter(backend.inputs, backend.outputs, backend.metadata, PostprocessConfig(), str(seg_model))
    on_device = M(backend, adapter, str(seg_model), on_device=True)
    on_device.device_path.resize_on_device = resize_on_device
    reference = Model.load(str(seg_model), backend="onnxruntime", device="cpu")
    assert_same_detections(on_device, reference, video, 40, 0.99, 0.97)


def test_semantic_device_path_matches_the_cpu_path(tmp_path, video):
    """A semantic model on the GPU data path (forced on here on the CPU): normalised,
    run and arg-maxed at frame resolution in torch, the same label map as ONNX Runtime's path."""
    from semantic_models import export_tiny_fcn

    path = str(tmp_path / "fcn.onnx")
    export_tiny_fcn(path, classes=21)
    reference = Model.load(path, backend="onnxruntime", device="cpu")
    on_device = Model(TorchBackend(path), reference.adapter, path, on_device=True)
    assert type(on_device.device_path).__name__ == "DeviceSemanticPath"
    with open_source(str(video)) as source:
        for _, frame in zip(range(5), source):
            got, want = on_device(frame), reference(frame)
            assert got.labels.shape == want.labels.shape and (got.labels == want.labels).mean() >= 0.999


def test_fp16_keeps_the_fp32_detections(seg_model, video):
    """`--precision fp16` on the torch backend is torch's mixed precision (autocast),
    run here on the CPU with a GPU's fp16 rounding: nearly every box and mask stays
    at the fp32 path's (a model cast to fp16 throughout moved 41% of the boxes
    below IoU 0.99, the worst to 0.78)."""
    from segstream.engines.adapters.yolo import PostprocessConfig, make_adapter

    backend = TorchBackend(str(seg_model), half=True)
    adapter = make_adapter(backend.inputs, backend.outputs, backend.metadata, PostprocessConfig(), str(seg_model))
    half = Model(backend, adapter, str(seg_model), on_device=True)
    reference = Model.load(str(seg_model), backend="onnxruntime", device="cpu")
    boxes, masks = [], []
    with open_source(str(video)) as source:
        for _, frame in zip(range(15), source):
            a, b = half(frame), reference(frame)
            iou = box_iou(a.xyxy, b.xyxy)
            rows, cols = linear_sum_assignment(-iou)
            assert len(rows) >= max(len(a), len(b)) - 1  # at most one object on a threshold seen by one side
            boxes.append(iou[rows, cols])
            masks.append(paired_mask_iou(a.masks[rows], b.masks[cols]))
    boxes, masks = np.concatenate(boxes), np.concatenate(masks)
    assert boxes.min() >= 0.9 and (boxes >= 0.99).mean() >= 0.97
    assert (masks >= 0.97).mean() >= 0.97


def test_reid_features_on_the_torch_backend_match_onnxruntime(video):
    """Re-id on a GPU without TensorRT runs on torch: OSNet's batch-dynamic copy (opset 18,
    which onnx2torch takes once converted down) gives ONNX Runtime's features."""
    from conftest import asset
    from segstream.engines.adapters.reid import ReidEmbedder
    from segstream.engines.runtimes.batching import batchable_model
    from segstream.engines.runtimes.registry import load_backend
    from segstream.stream.types import Detections

    path = batchable_model(str(asset("models/osnet_x0_25_msmt17.onnx")))
    on_torch = ReidEmbedder(load_backend(path, "torch", "cpu"))
    assert on_torch.backend.name == "torch"
    reference = ReidEmbedder(load_backend(path, "onnxruntime", "cpu"))
    with open_source(str(video)) as source:
        frame = next(iter(source))
    dets = Detections(np.array([[100.0, 50, 160, 200], [300, 80, 350, 230], [500, 100, 540, 220]]), np.ones(3), np.zeros(3))
    np.testing.assert_allclose(on_torch(frame.image, dets), reference(frame.image, dets), atol=1e-5)


@pytest.mark.parametrize("name", ["models/yolov8n-seg_320_fp32.onnx", "models/yolo11n-pose.onnx", "models/yolov5s-seg.onnx",
                                  "models/osnet_x0_25_msmt17.onnx"])
def test_on_a_gpu_the_graph_reads_nothing_back_from_the_device(name):
    """`--cuda-graph` captures the model, and plain GPU runs do not stall the stream
    for every Reshape or Split: the shape constants onnx2torch reads as Python
    numbers stay on the CPU. Checked on the meta device, which holds no data, so
    any read of a device tensor on the host fails as it would during a capture
    (on an H200 this read failed `--cuda-graph` before the constants stayed)."""
    import torch
    from conftest import asset

    backend = TorchBackend(str(asset(name)), device="meta")
    shape = [d if isinstance(d, int) else 2 for d in backend.inputs[0].shape]
    with torch.inference_mode():
        outputs = backend._forward([torch.zeros(shape, device="meta")])
    assert [o.shape[0] for o in outputs] == [shape[0]] * len(backend.outputs)
