"""The GPU data path's operations give the CPU path's results: letterbox
geometry and pixels, and masks assembled from prototypes. They are plain
torch, so they run here on the CPU; on a GPU they run unchanged on CUDA."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engines.device_path import assemble_masks_on_device, box_crops_to_host, letterbox_on_device, resize_like_cv2
from engines.letterbox import letterbox, to_blob
from engines.masks import assemble_masks
from engines.model import Model
from stream.sources import open_source


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
