"""The GPU data path's operations give the CPU path's results: letterbox
geometry and pixels, masks assembled from prototypes, and semantic label maps. They are plain
torch, so they run here on the CPU; on a GPU they run unchanged on CUDA."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from segstream.engines.device_path import (
    DeviceSemanticPath,
    assemble_masks_on_device,
    box_crops_to_host,
    labels_on_device,
    letterbox_on_device,
    resize_like_cv2,
)
from segstream.engines.model import Model
from segstream.engines.ops.letterbox import letterbox, to_blob
from segstream.engines.ops.masks import assemble_masks
from segstream.stream.sources import open_source
from segstream.stream.types import Frame
from semantic_models import export_tiny_fcn


def frames(video, n):
    with open_source(str(video)) as source:
        return [f for _, f in zip(range(n), source)]


def test_letterbox_on_device_matches_the_cpu_letterbox(video):
    """Same geometry, and the same pixels: the network sees what the CPU path gives it."""
    image = frames(video, 1)[0].image
    for input_hw in [(320, 320), (640, 640), (576, 768)]:
        padded, lb = letterbox(image, input_hw)
        blob, dlb = letterbox_on_device(torch.from_numpy(image), input_hw)
        assert dlb == lb
        np.testing.assert_array_equal(blob.numpy(), to_blob(padded))


@pytest.mark.parametrize("hw, new_hw", [((576, 768), (240, 320)), ((1080, 1920), (360, 640)), ((480, 640), (320, 427)),
                                         ((720, 1280), (384, 683)), ((240, 320), (480, 640)), ((100, 100), (640, 640)),
                                         ((1080, 1920), (1152, 2048))])
def test_resizing_on_device_gives_cv2s_pixels(hw, new_hw):
    """Shrinking and enlarging, edges included: bit for bit what cv2 gives the CPU path."""
    image = np.random.default_rng(0).integers(0, 256, hw + (3,), dtype=np.uint8)
    want = cv2.resize(image, new_hw[::-1], interpolation=cv2.INTER_LINEAR)
    got = resize_like_cv2(torch.from_numpy(image), *new_hw).numpy()
    np.testing.assert_array_equal(got, want)


def test_masks_on_device_match_the_cpu_masks(video, seg_model):
    model = Model.load(str(seg_model))
    for frame in frames(video, 5):
        prepared = model.preprocess(frame)
        outputs = model.infer(prepared)
        boxes, _, _, coefficients = model.adapter.select(outputs)
        xyxy = prepared.letterbox.boxes_to_frame(boxes)
        protos = outputs[model.adapter.output_names[1]][0]
        want = np.asarray(assemble_masks(protos, coefficients, xyxy, prepared.letterbox.frame_hw))
        got = assemble_masks_on_device(torch.from_numpy(protos), torch.from_numpy(coefficients.astype(np.float32)),
                                       xyxy, prepared.letterbox.frame_hw).numpy()
        assert got.shape == want.shape and len(got) > 0
        iou = (got & want).sum(axis=(1, 2)) / np.maximum((got | want).sum(axis=(1, 2)), 1)
        assert iou.min() >= 0.99


def test_only_the_box_pixels_come_back_and_they_are_the_masks():
    rng = np.random.default_rng(3)
    ranges = np.array([[2, 3, 9, 8], [0, 0, 20, 12], [5, 5, 5, 9]])  # the last box is empty
    dense = np.zeros((3, 12, 20), bool)
    for i, (x0, y0, x1, y1) in enumerate(ranges):
        dense[i, y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) > 0.5
    got = box_crops_to_host(torch.from_numpy(dense), ranges, (12, 20))
    np.testing.assert_array_equal(np.asarray(got), dense)
    assert [c.shape for c in got.crops] == [(5, 7), (12, 20), (4, 0)]
    assert len(box_crops_to_host(torch.zeros((0, 12, 20), dtype=torch.bool), ranges[:0], (12, 20))) == 0


@pytest.fixture(scope="module")
def fcn_model(tmp_path_factory):
    """A real semantic ONNX model (random weights) run by ONNX Runtime: the CPU path."""
    path = tmp_path_factory.mktemp("fcn") / "fcn.onnx"
    export_tiny_fcn(path, classes=21)
    return Model.load(str(path), backend="onnxruntime", device="cpu")


@pytest.mark.parametrize("resize_on_device", [True, False])
def test_semantic_maps_on_device_match_the_cpu_path(fcn_model, video, resize_on_device):
    """Mean/std on the device gives the adapter's network input bit for bit, and
    the label map (resize to the frame and argmax on the device) the CPU one's."""
    device = DeviceSemanticPath(fcn_model.adapter, fcn_model.backend, resize_on_device)
    name = fcn_model.adapter.input_name
    for frame in frames(video, 3):
        feed, lb = fcn_model.adapter.preprocess(frame)
        on_device, device_lb = device.preprocess(frame)
        assert device_lb == lb
        np.testing.assert_array_equal(on_device[name].numpy(), feed[name])
        outputs = fcn_model.backend.infer(feed)
        want = fcn_model.adapter.postprocess(outputs, lb)
        got = device.postprocess({k: torch.from_numpy(v) for k, v in outputs.items()}, lb)
        assert got.class_names == want.class_names and got.labels.dtype == np.uint8
        assert (got.labels == want.labels).mean() >= 0.999  # float rounding may flip a near-tie


def test_semantic_labels_on_device_go_through_classes_in_chunks_with_the_same_result(tmp_path):
    """A 300-class model (more than uint8 holds) at a frame size the logits do not divide:
    chunked classes give what all classes at once give, and the map is uint16."""
    logits = torch.from_numpy(np.random.default_rng(5).normal(size=(300, 24, 32)).astype(np.float32))
    _, lb = letterbox(np.zeros((250, 300, 3), np.uint8), (24, 32))
    whole = labels_on_device(logits, lb, chunk=300)
    np.testing.assert_array_equal(labels_on_device(logits, lb, chunk=7).numpy(), whole.numpy())
    assert whole.shape == (250, 300) and int(whole.max()) > 255
    path = tmp_path / "wide.onnx"
    export_tiny_fcn(path, classes=300)
    wide = Model.load(str(path), backend="onnxruntime", device="cpu")
    image = np.random.default_rng(1).integers(0, 256, (250, 300, 3), dtype=np.uint8)
    feed, lb = wide.adapter.preprocess(Frame(image, "cam", 0, 0.0, 0.0))
    outputs = wide.backend.infer(feed)
    got = DeviceSemanticPath(wide.adapter, wide.backend).postprocess({k: torch.from_numpy(v) for k, v in outputs.items()}, lb)
    want = wide.adapter.postprocess(outputs, lb)
    assert got.labels.dtype == want.labels.dtype == np.uint16
    assert (got.labels == want.labels).mean() >= 0.999


def maps_on_cpu_and_device(path, video, n=2):
    """(CPU path, device path) label maps of the first `n` frames (the device path in torch on the CPU)."""
    model = Model.load(str(path), backend="onnxruntime", device="cpu")
    device = DeviceSemanticPath(model.adapter, model.backend)
    for frame in frames(video, n):
        feed, lb = model.adapter.preprocess(frame)
        outputs = model.backend.infer(feed)
        yield model.adapter.postprocess(outputs, lb), device.postprocess({k: torch.from_numpy(v) for k, v in outputs.items()}, lb)


def test_a_one_channel_model_thresholds_the_same_on_the_device(tmp_path, video):
    """A binary model's map (foreground above the threshold) is the CPU path's on the device too."""
    path = tmp_path / "binary.onnx"
    export_tiny_fcn(path, classes=1, sigmoid=True, seed=3)
    for want, got in maps_on_cpu_and_device(path, video):
        assert got.class_names == want.class_names == ["background", "foreground"]
        assert 0 < want.labels.mean() < 1 and (got.labels == want.labels).mean() >= 0.999


def test_class_ids_out_of_the_model_resize_the_same_on_the_device(tmp_path, video):
    """A model that outputs class ids: nearest-pixel resizing on the device is cv2's."""
    path = tmp_path / "ids.onnx"
    export_tiny_fcn(path, classes=21, ids="[N,1,h,w]")
    for want, got in maps_on_cpu_and_device(path, video):
        assert got.labels.dtype == want.labels.dtype == np.uint8 and np.array_equal(got.labels, want.labels)
