"""Panoptic fusion: a semantic model's stuff + an instance model's things.

Follows the panoptic segmentation definition (Kirillov et al., 2019) and the
usual heuristic combination (Detectron2's `combine_semantic_and_instance_outputs`):
- every pixel gets at most one segment (no overlaps); 0 means unlabelled;
- things come from the instance masks, best score first; an instance whose
  mask is mostly (more than `overlap`) covered by better ones is dropped,
  otherwise it takes its still-free pixels;
- stuff comes from the semantic map, per class, on the pixels things left
  free; stuff regions smaller than `min_stuff_area` pixels are dropped;
- semantic pixels of thing classes that no instance claimed stay unlabelled
  (a "person" region without a person instance is not a segment).

One pass over instances, then whole-map histograms and a class -> segment
lookup (cv2's, 5x numpy's boolean indexing at 1080p).
"""

from __future__ import annotations

import re
from typing import Collection, Sequence

import cv2
import numpy as np

from ...stream.types import Detections, LabelMap, PanopticMap, Segment

# Classes that mean "nothing here" in common label sets.
VOID_NAMES = frozenset({"background", "__background__", "unlabeled", "unlabelled", "void", "ignore"})
# Pascal VOC spellings of COCO thing classes, so a VOC semantic model and a COCO instance model agree.
ALIASES = {"aeroplane": "airplane", "motorbike": "motorcycle", "diningtable": "dining table",
           "pottedplant": "potted plant", "sofa": "couch", "tvmonitor": "tv"}


def _norm(name: str) -> str:
    name = ALIASES.get(name.lower(), name.lower())
    return re.sub(r"[\s_\-]+", "", name)


def stuff_class_ids(semantic_names: Sequence[str], thing_names: Collection[str]) -> list[int]:
    """Semantic classes that are stuff: neither void nor a thing class of the instance model."""
    things = {_norm(n) for n in thing_names}
    return [i for i, n in enumerate(semantic_names) if n.lower() not in VOID_NAMES and _norm(n) not in things]


def fuse_panoptic(
    semantic: LabelMap,
    dets: Detections,
    thing_names: Sequence[str],
    stuff_ids: Collection[int] | None = None,
    overlap: float = 0.5,
    min_stuff_area: int = 4096,
) -> PanopticMap:
    """One panoptic map from a semantic map and the (tracked) instances of
    the same frame. `thing_names` are the instance model's class names (for
    `dets.class_ids`); `stuff_ids` the semantic classes to keep as stuff
    (default: `stuff_class_ids`)."""
    h, w = semantic.labels.shape
    ids = np.zeros((h, w), np.uint16)
    segments: list[Segment] = []
    categories: list[tuple[str, bool, int | None]] = []

    if dets.masks is not None and len(dets):
        if dets.masks.frame_hw != (h, w):
            raise ValueError(f"instance masks are {dets.masks.frame_hw}, the semantic map is {(h, w)}")
        for i in np.argsort(-dets.scores, kind="stable"):
            crop = dets.masks.crops[i]
            area = int(np.count_nonzero(crop))
            if area == 0:
                continue
            x0, y0 = dets.masks.origins[i].tolist()
            window = ids[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]]  # masks are kept as crops: work inside them
            free = crop & (window == 0)
            kept = int(np.count_nonzero(free))
            if kept == 0 or (area - kept) / area > overlap:
                continue
            cid = int(dets.class_ids[i])
            name = thing_names[cid] if 0 <= cid < len(thing_names) else str(cid)
            track = int(dets.track_ids[i]) if dets.track_ids is not None and dets.track_ids[i] >= 0 else None
            categories.append((name, True, track))
            window[free] = len(categories)

    # Stuff: one segment per kept class, assigned in one pass through a class -> segment table.
    stuff = set(stuff_class_ids(semantic.class_names, thing_names) if stuff_ids is None else stuff_ids)
    free = ids == 0
    labels = semantic.labels
    present = _histogram(labels, max(len(semantic.class_names), int(labels.max()) + 1), free)
    segment_of_class = np.zeros(256 if labels.dtype == np.uint8 else len(present), np.uint16)
    for cid in np.flatnonzero(present >= max(min_stuff_area, 1)):
        if int(cid) in stuff:
            name = semantic.class_names[cid] if cid < len(semantic.class_names) else str(cid)
            categories.append((name, False, None))
            segment_of_class[cid] = len(categories)
    stuff_ids_map = cv2.LUT(labels, segment_of_class) if labels.dtype == np.uint8 else segment_of_class[labels]
    np.copyto(ids, stuff_ids_map, where=free)

    areas = _histogram(ids, len(categories) + 1)
    for seg_id, (name, isthing, track) in enumerate(categories, start=1):
        segments.append(Segment(seg_id, name, isthing, int(areas[seg_id]), track))
    return PanopticMap(ids, segments)


def _histogram(values: np.ndarray, bins: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Counts of 0 .. bins-1 in a uint8/uint16 map (where `mask`): cv2's histogram,
    a few times faster than numpy's bincount over a whole frame. It counts in
    float32, exact to 2**24, so maps larger than that (8K) take numpy's."""
    if values.size >= 1 << 24:
        return np.bincount((values if mask is None else values[mask]).ravel(), minlength=bins)[:bins]
    hist = cv2.calcHist([values], [0], None if mask is None else mask.view(np.uint8), [bins], [0, bins])
    return hist.ravel().astype(np.int64)
