"""The cost terms BYTE matches on: IoU that never pairs different classes, and
DIoU's centre penalty that still ranks boxes that do not overlap."""

import numpy as np
from segstream.tracking.association import iou_and_centre_penalty, iou_similarity


def test_iou_and_centre_penalty():
    dets = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float64)
    trks = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [40, 0, 50, 10]], np.float64)
    iou, pen = iou_and_centre_penalty(dets, trks, np.array([0, 0]), np.array([0, 0, 1]))
    np.testing.assert_allclose(iou, iou_similarity(dets, trks, np.array([0, 0]), np.array([0, 0, 1])))
    assert iou[0, 0] == 1 and iou[0, 1] == 50 / 150 and iou[0, 2] == 0
    # centres 5 apart, enclosing box 15 x 10: 25 / (225 + 100)
    np.testing.assert_allclose(pen[0, 1], 25 / 325)
    assert pen[0, 0] == 0 and pen[1, 2] < pen[0, 2]  # no overlap, still ranked: the nearer box costs less
