"""Panoptic fusion on hand-made maps whose right answer is known: no pixel in
two segments, things win over stuff, the better instance wins an overlap, a
mostly hidden instance is dropped, small stuff is dropped, thing-class pixels
without an instance stay unlabelled, and tracked things keep their track id."""

from __future__ import annotations

import numpy as np
from segstream.engines.fusion.panoptic import fuse_panoptic, stuff_class_ids
from segstream.stream.types import Detections, LabelMap

SEMANTIC_NAMES = ["background", "road", "person", "sky", "car", "grass"]
THING_NAMES = ["person", "bicycle", "car"]


def box_mask(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def scene():
    """20x20 frame: sky rows 0-7, road rows 8-19, a 'person' semantic blob, and
    a tiny patch of grass (3 px) on the road."""
    labels = np.zeros((20, 20), np.uint8)
    labels[:8] = 3
    labels[8:] = 1
    labels[10:18, 2:6] = 2  # person pixels with no instance there
    labels[15, 15:18] = 5  # tiny grass patch
    labels[0, 0] = 0  # one background pixel
    return LabelMap(labels, SEMANTIC_NAMES)


def test_stuff_classes_are_the_semantic_classes_that_are_neither_void_nor_things():
    assert stuff_class_ids(SEMANTIC_NAMES, THING_NAMES) == [1, 3, 5]
    # VOC spellings of COCO things are things too.
    assert stuff_class_ids(["background", "motorbike", "tvmonitor", "grass"], ["motorcycle", "tv"]) == [3]


def test_fusion_rules():
    h = w = 20
    masks = np.stack([
        box_mask(h, w, 5, 15, 8, 12),    # person A, score 0.9
        box_mask(h, w, 5, 15, 10, 14),   # person B, score 0.8, half under A: keeps its free half
        box_mask(h, w, 6, 14, 8, 12),    # car C, score 0.7, entirely under A: dropped
    ])
    boxes = [[8, 5, 12, 15], [10, 5, 14, 15], [0, 0, 0, 0]]  # C's box does not hold its mask: the whole frame is used
    dets = Detections(boxes, [0.9, 0.8, 0.7], [0, 0, 2], masks=masks, track_ids=[7, 9, 11])
    pan = fuse_panoptic(scene(), dets, THING_NAMES, min_stuff_area=4)

    ids, table = pan.segment_ids, {s.id: s for s in pan.segments}
    assert [(s.category, s.isthing, s.track_id) for s in pan.segments] == [
        ("person", True, 7), ("person", True, 9), ("road", False, None), ("sky", False, None)]
    a, b, road, sky = (s.id for s in pan.segments)
    assert (ids[masks[0]] == a).all()                      # the best instance keeps all its pixels
    assert (ids[5:15, 12:14] == b).all() and not (ids == b)[masks[0]].any()
    assert not (ids[10:18, 2:6]).any()                      # person pixels without an instance: unlabelled
    assert ids[0, 0] == 0                                   # background is void
    assert (ids[15, 15:18] == 0).all()                      # 3 pixels of grass: below min_stuff_area
    assert (ids[1:5, 15:20] == sky).all() and (ids[18:20, 15:20] == road).all()
    counts = np.bincount(ids.ravel(), minlength=len(table) + 1)
    assert all(table[i].area == counts[i] for i in table)  # areas are the final, non-overlapping ones
    assert counts.sum() == h * w


def test_without_instances_the_map_is_all_stuff():
    pan = fuse_panoptic(scene(), Detections.empty(), THING_NAMES, min_stuff_area=4)
    assert [s.category for s in pan.segments] == ["road", "sky"]
    assert not pan.segment_ids[10:18, 2:6].any()


def test_a_16_bit_label_map_fuses_like_an_8_bit_one():
    """A semantic model with more than 256 classes (uint16 labels) gets the same segments."""
    small = scene()
    names = SEMANTIC_NAMES + [f"extra{i}" for i in range(300)]
    wide = LabelMap(small.labels.astype(np.uint16), names)
    dets = Detections([[8, 5, 12, 15]], [0.9], [0], masks=box_mask(20, 20, 5, 15, 8, 12)[None], track_ids=[7])
    a = fuse_panoptic(small, dets, THING_NAMES, min_stuff_area=4)
    b = fuse_panoptic(wide, dets, THING_NAMES, min_stuff_area=4)
    assert np.array_equal(a.segment_ids, b.segment_ids) and a.segments == b.segments
    assert [s.category for s in b.segments] == ["person", "road", "sky"]


def test_segment_areas_are_exact_on_maps_beyond_float32_counting():
    """A frame of 16.8 million pixels (past 2**24, where a float32 counter stops at 16777216)."""
    labels = np.ones((4100, 4100), np.uint8)  # all road
    pan = fuse_panoptic(LabelMap(labels, SEMANTIC_NAMES), Detections.empty(), THING_NAMES)
    assert [(s.category, s.area) for s in pan.segments] == [("road", 4100 * 4100)]
