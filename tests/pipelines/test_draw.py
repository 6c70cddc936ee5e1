"""`--save` tints each instance mask in its track's colour exactly where the
mask is, wherever in the frame its crop sits, and leaves other pixels alone."""

import numpy as np

from pipelines.draw import annotate, color_for
from stream.types import Detections


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
