"""DeepSORT's rules, each as a user would notice it: impossible jumps are
gated out, recently seen tracks choose first, tracks are confirmed and
deleted by the documented counts, ids are never reused, and appearance keeps
identities when people cross."""

import numpy as np
import pytest
from scipy.stats import chi2
from segstream.stream.types import Detections
from segstream.tracking.deepsort import DeepSort, cosine_gallery_distance
from segstream.tracking.kalman import CHI2_95, HeightScaledKalman, xyxy_to_xyah


def people(xs, feats=None, score=0.9):
    boxes = [[x, 100, x + 40, 220] for x in xs]
    return Detections(boxes, [score] * len(xs), [0] * len(xs), embeddings=feats)


def unit(*v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def test_chi_square_table_is_the_95_percent_quantile():
    for dof, value in CHI2_95.items():
        assert value == pytest.approx(chi2.ppf(0.95, dof), abs=1e-3)


def test_gating_distance_is_the_mahalanobis_distance():
    kf = HeightScaledKalman()
    mean, cov = kf.initiate(xyxy_to_xyah(np.array([[100.0, 100, 140, 220], [300, 80, 330, 160]])))
    mean, cov = kf.predict(mean, cov)
    z = xyxy_to_xyah(np.array([[104.0, 102, 144, 224], [500, 100, 540, 220], [300, 80, 331, 161]]))
    got = kf.gating_distance(mean, cov, z)
    proj, s = kf.project(mean, cov)
    for t in range(2):
        for d in range(3):
            diff = z[d] - proj[t]
            assert got[t, d] == pytest.approx(diff @ np.linalg.inv(s[t]) @ diff)


def test_tracks_of_the_first_frame_are_confirmed_at_once():
    """A stream shows ids from its first frame (ByteTrack's rule), later tracks wait n_init hits."""
    tracker = DeepSort(n_init=3)
    assert tracker.update(people([100])).track_ids.tolist() == [1]
    assert [len(tracker.update(people([100, 300]))) for _ in range(3)] == [1, 1, 2]


def test_confirmed_after_n_init_hits_then_deleted_after_max_age():
    tracker = DeepSort(n_init=3, max_age=2)
    tracker.update(Detections.empty())  # past the first frame, whose tracks are confirmed at once
    assert [len(tracker.update(people([100 + 3 * t]))) for t in range(4)] == [0, 0, 1, 1]
    for _ in range(3):  # misses: lost, then deleted after max_age frames
        tracker.update(Detections.empty())
    for t in range(3):
        out = tracker.update(people([112]))
    assert out.track_ids.tolist() == [2]  # a new track; id 1 is never reused


def test_a_tentative_track_that_misses_once_is_deleted():
    tracker = DeepSort(n_init=3)
    tracker.update(Detections.empty())
    tracker.update(people([100]))
    tracker.update(Detections.empty())
    outs = [tracker.update(people([100])) for _ in range(3)]
    assert [len(o) for o in outs] == [0, 0, 1] and outs[-1].track_ids.tolist() == [1]


def test_a_detection_outside_the_motion_gate_never_matches_even_if_it_looks_the_same():
    f = unit(1, 0, 0)
    tracker = DeepSort(n_init=1)
    for t in range(5):
        tracker.update(people([100 + 2 * t], feats=f[None]))
    out = tracker.update(people([600], feats=f[None]))  # same look, teleported 490 px
    assert out.track_ids.tolist() == [2]  # not track 1: a new track is born
    assert tracker.update(people([602], feats=f[None])).track_ids.tolist() == [2]


def test_the_cascade_lets_the_most_recently_seen_track_choose_first():
    """Two tracks with identical appearance compete for one detection inside
    both gates: the one updated last frame wins over the one lost for a while."""
    f = unit(1, 0, 0)
    tracker = DeepSort(n_init=1, max_cosine_distance=0.5)
    tracker.update(people([100, 130], feats=np.stack([f, f])))
    for _ in range(3):  # track at 130 goes unseen, track at 100 stays
        tracker.update(people([100], feats=f[None]))
    out = tracker.update(people([115], feats=f[None]))
    assert out.track_ids.tolist() == [1]


def test_appearance_keeps_identities_when_two_people_cross():
    red, blue = unit(1, 0, 0), unit(0, 1, 0)
    tracker = DeepSort(n_init=1)
    first = last = None
    for xr, xb in zip(range(100, 200, 10), range(190, 90, -10)):
        out = tracker.update(people([xr, xb], feats=np.stack([red, blue])))
        by_colour = dict(zip(out.embeddings[:, 0].round().tolist(), out.track_ids.tolist()))
        first = first or by_colour
        last = by_colour
    assert first == last and len(set(first.values())) == 2


def test_everything_the_detection_had_survives_tracking():
    tracker = DeepSort(n_init=1)
    masks = np.zeros((1, 300, 300), bool)
    masks[0, 100:220, 100:140] = True
    kpts = np.full((1, 17, 3), 5.0, np.float32)
    tracker.update(Detections([[100, 100, 140, 220]], [0.8], [0], masks=masks, keypoints=kpts))
    out = tracker.update(Detections([[101, 100, 141, 220]], [0.7], [0], masks=masks, keypoints=kpts))
    assert out.masks.shape == (1, 300, 300) and out.masks[0].sum() == masks[0].sum()
    assert np.array_equal(out.keypoints, kpts) and out.scores.tolist() == pytest.approx([0.7])


def test_gallery_distance_uses_the_closest_stored_feature():
    gallery = np.zeros((2, 3, 2), np.float32)
    gallery[0, :2] = [unit(1, 0), unit(0, 1)]
    d = cosine_gallery_distance(gallery, np.array([2, 0]), np.stack([unit(0, 1), unit(1, 1)]))
    assert d[0].tolist() == pytest.approx([0.0, 1 - np.sqrt(0.5)])
    assert d[1].tolist() == [1.0, 1.0]  # an empty gallery matches nothing by appearance
