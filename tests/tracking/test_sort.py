"""SORT keeps ids stable and unique per stream, carries every detection column
through, and reproduces the original SORT's MOT15 results."""

import tempfile

import numpy as np
import pytest
from segstream.stream.types import Detections
from segstream.tracking.evaluation import evaluate_mot
from segstream.tracking.mot import track_sequences
from segstream.tracking.sort import Sort


def moving_boxes(t: int, n: int = 3) -> np.ndarray:
    x = np.arange(n) * 100.0 + t * 5.0
    return np.stack([x, np.full(n, 50.0), x + 40, np.full(n, 150.0)], axis=1)


def dets_at(t: int, n: int = 3) -> Detections:
    masks = np.zeros((n, 8, 8), bool)
    masks[:, 0, 0] = True
    kps = np.full((n, 17, 3), t, np.float32)
    return Detections(moving_boxes(t, n), np.full(n, 0.9), np.zeros(n), masks=masks, keypoints=kps)


def test_ids_start_at_one_and_stay_stable():
    sort = Sort()
    for t in range(10):
        out = sort.update(dets_at(t))
        assert sorted(out.track_ids.tolist()) == [1, 2, 3]
    order = np.argsort(out.xyxy[:, 0])
    assert out.track_ids[order].tolist() == [1, 2, 3]


def test_columns_survive_tracking():
    sort = Sort()
    for t in range(5):
        out = sort.update(dets_at(t))
    assert out.masks.shape == (3, 8, 8) and out.masks[:, 0, 0].all()
    assert np.all(out.keypoints == 4)


def test_ids_are_never_reused_and_trackers_are_independent():
    a, b = Sort(max_age=1), Sort()
    seen = set()
    for t in range(30):
        n = 3 if (t // 5) % 2 == 0 else 0  # objects vanish and come back: new ids
        out = a.update(dets_at(t, n) if n else Detections.empty())
        ids = set(out.track_ids.tolist())
        if t % 5 == 0 and n:
            assert not ids & seen or t == 0
        seen |= ids
    assert min(seen) == 1 and len(seen) > 3
    assert b.update(dets_at(0)).track_ids.min() == 1  # another stream's counter starts at 1


def test_tracks_do_not_switch_class():
    sort = Sort(min_hits=0)
    sort.update(Detections([[0, 0, 10, 10]], [0.9], [0]))
    out = sort.update(Detections([[0, 0, 10, 10]], [0.9], [2]))
    assert out.track_ids.tolist() == [2]


def test_min_hits_hides_new_tracks_after_warmup():
    sort = Sort(min_hits=3)
    for t in range(5):
        sort.update(dets_at(t, 1))
    far = Detections([[500, 500, 540, 600]], [0.9], [0])
    both = Detections.concat([dets_at(5, 1), far])
    assert sort.update(both).track_ids.tolist() == [1]


# Reference rows from the SORT README (MOT devkit MOTA), and TrackEval's
# COMBINED scores for the original SORT on all eight sequences.
SORT_MOTA = {"TUD-Campus": 62.7, "ETH-Sunnyday": 59.1, "KITTI-17": 60.2}


@pytest.mark.slow
def test_reproduces_original_sort_on_mot15(mot_root):
    with tempfile.TemporaryDirectory() as out:
        sequences, _, _ = track_sequences(mot_root, lambda frame_rate: Sort(), out)
        scores = evaluate_mot(mot_root, out, sequences)
    for seq, mota in SORT_MOTA.items():
        assert abs(scores[seq].mota - mota) <= 1.0, f"{seq}: MOTA {scores[seq].mota:.1f} vs {mota}"
    combined = scores["COMBINED"]
    assert abs(combined.mota - 49.7) <= 1.0 and abs(combined.hota - 40.9) <= 1.0 and abs(combined.idf1 - 52.2) <= 1.0
