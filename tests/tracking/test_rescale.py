"""A camera that comes back at another resolution: every tracker moves its
tracks with the picture, so people keep their ids."""

import numpy as np
import pytest
from segstream.stream.types import Detections
from segstream.tracking.byte import ByteTracker
from segstream.tracking.deepsort import DeepSort
from segstream.tracking.sort import Sort

TRACKERS = {"sort": Sort, "byte": ByteTracker, "deepsort": DeepSort}


def two_people(t: int, sx: float = 1.0, sy: float = 1.0) -> Detections:
    """Two people walking apart on a 640x480 picture, frame t, the picture resized by (sx, sy)."""
    boxes = np.array([[100 + 4 * t, 200, 140 + 4 * t, 320], [420 - 4 * t, 150, 460 - 4 * t, 270]], float)
    return Detections(boxes * [sx, sy, sx, sy], [0.9, 0.9], [0, 0])


@pytest.mark.parametrize("name", TRACKERS)
@pytest.mark.parametrize("scale", [(2.0, 2.0), (2.0, 1.5), (0.5, 0.5)])
def test_ids_carry_on_when_the_picture_is_resized(name, scale):
    tracker = TRACKERS[name]()
    for t in range(6):
        before = tracker.update(two_people(t)).track_ids.tolist()
    assert sorted(before) == [1, 2]
    tracker.rescale(*scale)
    after = [tracker.update(two_people(t, *scale)).track_ids.tolist() for t in range(6, 10)]
    assert after == [before] * 4


@pytest.mark.parametrize("name", TRACKERS)
def test_without_rescaling_the_old_tracks_are_lost(name):
    """What `rescale` prevents: the same people at twice the resolution do not
    match their own tracks."""
    tracker = TRACKERS[name]()
    for t in range(6):
        tracker.update(two_people(t))
    seen = set()
    for t in range(6, 12):
        seen.update(tracker.update(two_people(t, 2.0, 2.0)).track_ids.tolist())
    assert seen and not seen & {1, 2}
