"""Two-stage (torchvision R-CNN) outputs become Detections: confidence and
class filter, pasted mask probabilities thresholded, keypoint logits turned
into confidences, boxes clipped to the frame. Hand-made outputs here; the
exported models themselves are run in test_torchvision_export.py."""

from __future__ import annotations

import numpy as np
from segstream.engines.adapters.rcnn import RcnnAdapter, is_rcnn
from segstream.engines.adapters.yolo import PostprocessConfig
from segstream.engines.ops.letterbox import Letterbox
from segstream.engines.runtimes.base import TensorSpec
from segstream.stream.types import Frame

NAMES = repr({0: "__background__", 1: "person", 2: "bicycle", 3: "car"})
IMAGE = TensorSpec("image", (3, None, None))
LB = Letterbox(1.0, 0, 0, (4, 6), (4, 6))


def outputs(n=3):
    masks = np.zeros((n, 1, 4, 6), np.float32)
    masks[:, 0, 1:3, 1:4] = 0.9
    masks[:, 0, 0, 0] = 0.4  # below torchvision's 0.5
    return {
        "boxes": np.array([[1, 1, 4, 3], [-2, 0, 9, 5], [0, 0, 1, 1]], np.float32)[:n],
        "labels": np.array([1, 3, 1], np.int64)[:n],
        "scores": np.array([0.9, 0.6, 0.1], np.float32)[:n],
        "masks": masks,
    }


def test_outputs_are_recognised():
    specs = [TensorSpec(n, (None, 4)) for n in ("boxes", "labels", "scores", "masks")]
    assert is_rcnn([IMAGE], specs)
    assert not is_rcnn([TensorSpec("images", (1, 3, 320, 320))], [TensorSpec("output0", (1, 116, 2100))])


def test_mask_model_filters_thresholds_and_clips():
    specs = [TensorSpec(n, ()) for n in ("boxes", "labels", "scores", "masks")]
    adapter = RcnnAdapter(IMAGE, specs, {"names": NAMES}, PostprocessConfig(conf=0.25))
    assert adapter.task == "segment" and adapter.class_names[:4] == ["__background__", "person", "bicycle", "car"]
    dets = adapter.postprocess(outputs(), LB)
    np.testing.assert_allclose(dets.scores, [0.9, 0.6])
    assert dets.class_ids.tolist() == [1, 3]
    np.testing.assert_array_equal(dets.xyxy[1], [0, 0, 6, 4])
    assert dets.masks.shape == (2, 4, 6) and dets.masks[:, 1:3, 1:4].all() and not dets.masks[:, 0, 0].any()
    adapter.restrict_classes([3])
    assert adapter.postprocess(outputs(), LB).class_ids.tolist() == [3]


def test_keypoint_model_gives_17_points_with_confidences():
    specs = [TensorSpec(n, ()) for n in ("boxes", "labels", "scores", "keypoints", "keypoints_scores")]
    adapter = RcnnAdapter(IMAGE, specs, {"names": NAMES}, PostprocessConfig(conf=0.25))
    out = outputs()
    out.pop("masks")
    out["keypoints"] = np.tile(np.array([2.0, 3.0, 1.0], np.float32), (3, 17, 1))
    out["keypoints_scores"] = np.zeros((3, 17), np.float32)
    dets = adapter.postprocess(out, LB)
    assert adapter.task == "pose" and dets.keypoints.shape == (2, 17, 3)
    np.testing.assert_allclose(dets.keypoints[0, 0], [2.0, 3.0, 0.5])


def test_preprocess_is_rgb_in_unit_range_at_frame_size():
    specs = [TensorSpec(n, ()) for n in ("boxes", "labels", "scores", "masks")]
    adapter = RcnnAdapter(IMAGE, specs, {}, PostprocessConfig())
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    feed, lb = adapter.preprocess(Frame(image, "cam", 0, 0.0, 0.0))
    assert feed["image"].shape == (3, 4, 6) and feed["image"][2].max() == 1.0 and feed["image"][0].max() == 0.0
    assert lb.frame_hw == (4, 6) and lb.gain == 1.0
