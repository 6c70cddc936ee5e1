"""Detections is the contract between every stage: shapes are checked up front
and slicing keeps all columns aligned."""

import numpy as np
import pytest
from segstream.stream.types import Detections, Frame


def make(n: int = 3, with_masks: bool = True) -> Detections:
    return Detections(
        xyxy=np.arange(n * 4, dtype=np.float32).reshape(n, 4),
        scores=np.linspace(0.1, 0.9, n),
        class_ids=np.arange(n),
        masks=np.zeros((n, 4, 5), bool) if with_masks else None,
        keypoints=np.zeros((n, 17, 3)),
        track_ids=np.arange(1, n + 1),
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scores=np.zeros(2)), "scores must have shape (3,)"),
        (dict(class_ids=np.zeros((3, 1))), "class_ids must have shape (3,)"),
        (dict(masks=np.zeros((2, 4, 4), bool)), "masks must have shape (3, *, *)"),
        (dict(keypoints=np.zeros((3, 5, 3))), "keypoints must have shape (3, 17, 3)"),
        (dict(track_ids=np.zeros(4)), "track_ids must have shape (3,)"),
    ],
)
def test_shape_errors_name_the_column(kwargs, message):
    base = dict(xyxy=np.zeros((3, 4)), scores=np.zeros(3), class_ids=np.zeros(3))
    base.update(kwargs)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        Detections(**base)


@pytest.mark.parametrize("index", [np.array([True, False, True]), np.array([0, 2]), slice(0, 3, 2)])
def test_slicing_keeps_columns_aligned(index):
    d = make()
    s = d[index]
    assert len(s) == 2
    assert s.track_ids.tolist() == [1, 3]
    assert s.masks.shape == (2, 4, 5) and s.keypoints.shape == (2, 17, 3)
    np.testing.assert_array_equal(s.xyxy, d.xyxy[[0, 2]])


@pytest.mark.parametrize("index", [np.array([1, 2]), np.array([2, 0]), np.array([False, True, True])])
def test_selecting_rows_shares_the_masks_and_still_checks_bounds(index):
    """Trackers select rows every frame: that must never copy masks."""
    d = make()
    s = d[index]
    rows = np.arange(3)[index]
    assert s.track_ids.tolist() == (rows + 1).tolist()
    assert all(a is d.masks.crops[r] for a, r in zip(s.masks.crops, rows))
    with pytest.raises(IndexError):
        d[np.array([1, 2, 3])]
    with pytest.raises(IndexError):
        d[np.array([2, 0, 5])]


def test_int_index_returns_one_row_detections():
    assert len(make()[1]) == 1


def test_empty_and_concat_fill_missing_columns():
    assert Detections.empty().is_empty()
    a = make(2)
    b = Detections(np.zeros((1, 4)), [0.5], [0])
    c = Detections.concat([a, b])
    assert len(c) == 3
    assert c.track_ids.tolist() == [1, 2, -1]
    assert not c.masks[2].any() and c.keypoints[2].sum() == 0


def test_frame_rejects_non_bgr_images():
    with pytest.raises(ValueError, match="uint8 BGR"):
        Frame(np.zeros((4, 4), np.uint8), "s", 0, 0.0, 0.0)
