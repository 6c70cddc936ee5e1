"""`BoxMasks` keeps each instance mask as the crop inside its box: it must
read back exactly as the dense (N, H, W) masks it stands for, and selecting
rows must never copy pixels (trackers select rows every frame)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from segstream.stream.masks import BoxMasks, paired_mask_iou


def dense_sample() -> np.ndarray:
    rng = np.random.default_rng(1)
    masks = np.zeros((4, 30, 40), bool)
    masks[0, 5:20, 3:9] = rng.random((15, 6)) > 0.3
    masks[1, 0:30, 35:40] = True  # touches the right and both horizontal edges
    masks[3, 29, 0] = True  # one pixel in the corner; masks[2] stays empty
    return masks


def test_dense_round_trip_and_array_reading():
    dense = dense_sample()
    masks = BoxMasks.from_dense(dense)
    assert masks.shape == (4, 30, 40) and len(masks) == 4 and masks.dtype == bool
    np.testing.assert_array_equal(np.asarray(masks), dense)
    np.testing.assert_array_equal(masks[1], dense[1])
    np.testing.assert_array_equal(np.stack(list(masks)), dense)
    np.testing.assert_array_equal(masks[:, 5:10, 3:5], dense[:, 5:10, 3:5])
    assert masks.areas().tolist() == dense.sum(axis=(1, 2)).tolist()
    assert masks.crops[2].size == 0 and masks.crops[3].shape == (1, 1)  # cut to each mask's bounding box
    with pytest.raises(ValueError, match="always a new copy"):
        np.asarray(masks, copy=False)


def test_known_box_windows_are_kept_as_given():
    dense = np.zeros((1, 10, 10), bool)
    dense[0, 2:4, 2:4] = True
    masks = BoxMasks.from_dense(dense, np.array([[1, 1, 6, 5]]))
    assert masks.crops[0].shape == (4, 5) and masks.origins.tolist() == [[1, 1]]
    np.testing.assert_array_equal(np.asarray(masks), dense)


@pytest.mark.parametrize("index", [np.array([3, 0]), np.array([True, False, False, True]), slice(1, None, 2)])
def test_selecting_rows_shares_the_crops(index):
    dense = dense_sample()
    masks = BoxMasks.from_dense(dense)
    picked = masks[index]
    rows = np.arange(4)[index]
    assert all(a is masks.crops[r] for a, r in zip(picked.crops, rows))
    np.testing.assert_array_equal(np.asarray(picked), dense[rows])


def test_concat_and_empty_masks():
    dense = dense_sample()
    both = BoxMasks.concat([BoxMasks.from_dense(dense), BoxMasks.empty(2, (30, 40))])
    assert both.shape == (6, 30, 40)
    np.testing.assert_array_equal(np.asarray(both), np.concatenate([dense, np.zeros((2, 30, 40), bool)]))
    with pytest.raises(ValueError, match="different frame sizes"):
        BoxMasks.concat([BoxMasks.empty(1, (30, 40)), BoxMasks.empty(1, (31, 40))])


def test_a_crop_outside_the_frame_is_refused():
    with pytest.raises(ValueError, match="does not fit a 40x30 frame"):
        BoxMasks([np.ones((5, 5), bool)], [[38, 0]], (30, 40))


@settings(max_examples=60, deadline=None)
@given(x0=st.integers(0, 39), y0=st.integers(0, 29), x1=st.integers(0, 40), y1=st.integers(0, 30), i=st.integers(0, 3))
def test_window_reads_the_dense_mask(x0, y0, x1, y1, i):
    dense = dense_sample()
    x1, y1 = max(x0, x1), max(y0, y1)
    np.testing.assert_array_equal(BoxMasks.from_dense(dense).window(i, x0, y0, x1, y1), dense[i, y0:y1, x0:x1])


def test_paired_iou_matches_the_dense_computation():
    a = dense_sample()
    b = np.roll(a, 2, axis=2)
    got = paired_mask_iou(BoxMasks.from_dense(a), BoxMasks.from_dense(b))
    union = (a | b).sum(axis=(1, 2))
    want = np.where(union > 0, (a & b).sum(axis=(1, 2)) / np.maximum(union, 1), 0.0)
    np.testing.assert_allclose(got, want)
