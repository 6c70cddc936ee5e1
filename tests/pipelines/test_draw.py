"""`--save` tints each instance mask in its track's colour exactly where the
mask is, wherever in the frame its crop sits, and leaves other pixels alone;
a semantic or panoptic map is tinted under them, label by label."""

import numpy as np
import pytest
from segstream.pipelines.draw import annotate, color_for, label_colors
from segstream.stream.types import Detections


def test_masks_are_tinted_where_they_are_and_nowhere_else():
    image = np.full((60, 80, 3), 100, np.uint8)
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 10:20, 5:15] = True
    masks[1, 40:60, 60:80] = True  # touches the bottom-right corner
    dets = Detections([[4, 9, 16, 21], [59, 39, 80, 60]], [0.9, 0.8], [0, 0], masks=masks, track_ids=[3, 8])
    out = annotate(image, dets, ["person"], alpha=0.5)
    for i, track in enumerate([3, 8]):
        ys, xs = np.nonzero(masks[i])
        y, x = int(ys.mean()), int(xs.mean())  # the middle of the mask, away from the box outline
        want = (np.array(color_for(track)) * 0.5 + 100 * 0.5).round()
        np.testing.assert_allclose(out[y, x], want, atol=1)
    assert (out[25:, :55] == 100).all()  # away from both objects, their outlines and labels


def test_overlapping_masks_show_the_later_one_blended_once():
    """Where two people overlap, the pixel takes the later mask's colour at
    the same strength as elsewhere, not a double blend of both."""
    image = np.full((60, 80, 3), 100, np.uint8)
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 20:40, 20:40] = True
    masks[1, 30:50, 30:50] = True
    dets = Detections([[20, 20, 40, 40], [30, 30, 50, 50]], [0.9, 0.8], [0, 0], masks=masks, track_ids=[3, 8])
    out = annotate(image, dets, ["person"], alpha=0.5)
    want = (np.array(color_for(8)) * 0.5 + 100 * 0.5).round()
    np.testing.assert_allclose(out[35, 35], want, atol=1)
    np.testing.assert_allclose(out[25, 25], (np.array(color_for(3)) * 0.5 + 50).round(), atol=1)


@pytest.mark.parametrize("dtype, ids", [(np.uint8, (3, 17)), (np.uint16, (3, 17)), (np.uint16, (3, 4000))])
def test_label_maps_are_tinted_by_label_and_unlabelled_pixels_are_left_alone(dtype, ids):
    """Semantic maps (8-bit) and panoptic maps (16-bit, even with thousands of segment ids)."""
    image = np.full((40, 60, 3), 100, np.uint8)
    labels = np.zeros((40, 60), dtype)
    labels[:20, :30] = ids[0]
    labels[25:, 40:] = ids[1]
    out = annotate(image, Detections.empty(), ["person"], labels=labels)
    colors = label_colors(max(ids) + 1)
    for label in ids:
        want = np.round(colors[label] * 0.4 + 100 * 0.6)
        assert np.abs(out[labels == label] - want).max() <= 1
    assert (out[labels == 0] == 100).all()
