"""Fuse the persons of a segmentation model with those of a pose model.

Running a seg model and a pose model on the same frame gives two boxes per
person; users want one object carrying both a mask and 17 keypoints. Persons
are paired one-to-one by box IoU (Hungarian), the paired pose keypoints move
onto the segmentation detection, and pose persons without a partner are kept
as keypoint-only detections (no mask).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ...stream.boxes import box_iou
from ...stream.types import NUM_KEYPOINTS, Detections


def fuse_keypoints(
    primary: Detections, pose: Detections, person_class: int = 0, pose_person_class: int = 0, iou_threshold: float = 0.5
) -> Detections:
    """`primary` (boxes, maybe masks) gains the keypoints of matched `pose` persons.

    Every row of the result has a keypoints entry: zero-confidence keypoints
    where no pose person matched. Unmatched pose persons are appended with the
    primary model's person class id.
    """
    keypoints = np.zeros((len(primary), NUM_KEYPOINTS, 3), dtype=np.float32)
    pose = pose[pose.class_ids == pose_person_class]
    persons = np.flatnonzero(primary.class_ids == person_class)
    matched_pose = np.zeros(len(pose), dtype=bool)
    if len(persons) and len(pose):
        iou = box_iou(primary.xyxy[persons], pose.xyxy)
        rows, cols = linear_sum_assignment(-iou)
        good = iou[rows, cols] >= iou_threshold
        rows, cols = rows[good], cols[good]
        keypoints[persons[rows]] = pose.keypoints[cols]
        matched_pose[cols] = True
    fused = primary.with_(keypoints=keypoints)
    extra = pose[~matched_pose]
    if len(extra) == 0:
        return fused
    extra = extra.with_(class_ids=np.full(len(extra), person_class, dtype=np.int32))
    return Detections.concat([fused, extra])  # keypoint-only persons get empty masks
