"""Fusion pairs persons by IoU, one-to-one, and keeps unmatched pose persons."""

import numpy as np
from segstream.engines.fusion.keypoints import fuse_keypoints
from segstream.stream.types import Detections


def test_fusion_pairs_by_iou_and_keeps_leftovers():
    masks = np.ones((3, 10, 10), bool)
    primary = Detections([[0, 0, 10, 20], [50, 0, 60, 20], [0, 0, 5, 5]], [0.9, 0.8, 0.7], [0, 0, 2], masks=masks)
    kps = np.zeros((3, 17, 3), np.float32)
    kps[:, :, 2] = [[0.9], [0.8], [0.7]]
    pose = Detections([[51, 1, 60, 20], [0, 1, 10, 21], [100, 100, 120, 140]], [0.9, 0.9, 0.6], [0, 0, 0], keypoints=kps)
    fused = fuse_keypoints(primary, pose)
    assert len(fused) == 4
    assert fused.keypoints[0, 0, 2] == np.float32(0.8)  # paired with pose row 1
    assert fused.keypoints[1, 0, 2] == np.float32(0.9)
    assert fused.keypoints[2].sum() == 0  # a car gets no keypoints
    assert fused.class_ids[3] == 0 and not fused.masks[3].any()  # keypoint-only person
    np.testing.assert_array_equal(fused.xyxy[3], [100, 100, 120, 140])
