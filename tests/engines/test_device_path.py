"""The GPU data path's operations give the CPU path's results: letterbox
geometry and pixels, and masks assembled from prototypes. They are plain
torch, so they run here on the CPU; on a GPU they run unchanged on CUDA."""

from __future__ import annotations

import numpy as np
import torch

from engines.device_path import assemble_masks_on_device, letterbox_on_device
from engines.letterbox import letterbox, to_blob
from engines.masks import assemble_masks
from engines.model import Model
from stream.sources import open_source


def frames(video, n):
    with open_source(str(video)) as source:
        return [f for _, f in zip(range(n), source)]


def test_letterbox_on_device_matches_the_cpu_letterbox(video):
    image = frames(video, 1)[0].image
    for input_hw in [(320, 320), (640, 640), (576, 768)]:
        padded, lb = letterbox(image, input_hw)
        blob, dlb = letterbox_on_device(torch.from_numpy(image), input_hw)
        assert dlb == lb
        # cv2 rounds the resized image to uint8, torch keeps floats: within one grey level.
        assert np.abs(blob.numpy() - to_blob(padded)).max() <= 1.01 / 255


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
