"""`--save` tints each instance mask in its track's colour exactly where the
mask is, wherever in the frame its crop sits, and leaves other pixels alone;
a semantic or panoptic map is tinted under them, label by label."""

import numpy as np
import pytest
from segstream.pipelines.draw import annotate, color_for, label_colors
from segstream.stream.types import Detections


def test_masks_are_tinted_where_they_are_and_nowhere_else():
    # Room above each box for its label plate, which covers what is under it.
    image = np.full((100, 120, 3), 100, np.uint8)
    masks = np.zeros((2, 100, 120), bool)
    masks[0, 40:50, 5:15] = True
    masks[1, 80:100, 100:120] = True  # touches the bottom-right corner
    dets = Detections([[4, 39, 16, 51], [99, 79, 120, 100]], [0.9, 0.8], [0, 0], masks=masks, track_ids=[3, 8])
    out = annotate(image, dets, ["person"], alpha=0.5)
    for i, track in enumerate([3, 8]):
        ys, xs = np.nonzero(masks[i])
        y, x = int(ys.mean()), int(xs.mean())  # the middle of the mask, away from the box outline
        want = (np.array(color_for(track)) * 0.5 + 100 * 0.5).round()
        np.testing.assert_allclose(out[y, x], want, atol=1)
    assert (out[55:, :55] == 100).all()  # away from both objects, their outlines and labels


def test_overlapping_masks_show_the_later_one_blended_once():
    """Where two people overlap, the pixel takes the later mask's colour at
    the same strength as elsewhere, not a double blend of both."""
    image = np.full((100, 100, 3), 100, np.uint8)
    masks = np.zeros((2, 100, 100), bool)
    masks[0, 50:70, 20:40] = True
    masks[1, 60:80, 30:50] = True
    dets = Detections([[20, 50, 40, 70], [30, 60, 50, 80]], [0.9, 0.8], [0, 0], masks=masks, track_ids=[3, 8])
    out = annotate(image, dets, ["person"], alpha=0.5)
    want = (np.array(color_for(8)) * 0.5 + 100 * 0.5).round()
    np.testing.assert_allclose(out[65, 35], want, atol=1)
    np.testing.assert_allclose(out[55, 25], (np.array(color_for(3)) * 0.5 + 50).round(), atol=1)


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


def test_labels_sit_on_a_plate_inside_the_frame_even_at_its_edges():
    """'#1 ca' cut at the right edge, or a label off the top, was unreadable."""
    from segstream.pipelines.draw import annotate

    image = np.zeros((200, 300, 3), np.uint8)
    dets = Detections([[280, 0, 300, 60], [0, 150, 40, 200]], [0.9, 0.8], [2, 0], track_ids=[1, 12])
    out = annotate(image, dets, ["person", "bicycle", "car"])
    for track, (x0, y0, x1, y1) in ((1, (280, 0, 300, 60)), (12, (0, 150, 40, 200))):
        color = np.array(color_for(track))
        plate = np.all(out == color, axis=-1)
        ys, xs = np.nonzero(plate)
        assert len(xs) > 0
        # The plate is wider than the box (the text fits on it) and ends inside the frame.
        assert xs.max() <= 299 and ys.min() >= 0 and xs.max() - xs.min() + 1 > x1 - x0


def test_trails_follow_each_track_and_forget_the_gone():
    """`--trails N` draws where each person walked over the last N frames, under
    their box, in their colour; a track gone for N frames leaves no trail."""
    from segstream.pipelines.draw import Trails, annotate

    trails = Trails(frames=3)
    for step in range(5):  # track 7 walks right 10 px a frame; track 9 is seen only at first
        ids = [7, 9] if step == 0 else [7]
        boxes = [[10 + 10 * step, 20, 30 + 10 * step, 60], [100, 20, 120, 60]][: len(ids)]
        paths = trails.update(Detections(boxes, [0.9] * len(ids), [0] * len(ids), track_ids=ids))
    assert paths[7].tolist() == [[40, 60], [50, 60], [60, 60]]  # the last 3 positions, feet first
    assert 9 not in paths and 9 not in trails._points  # gone for 4 frames: forgotten
    dets = Detections([[50, 20, 70, 60]], [0.9], [0], track_ids=[7])
    plain = annotate(np.zeros((80, 160, 3), np.uint8), dets, ["person"])
    drawn = annotate(np.zeros((80, 160, 3), np.uint8), dets, ["person"], trails=paths)
    changed = np.argwhere((drawn != plain).any(axis=2))
    assert len(changed) and changed[:, 1].min() <= 42 and changed[:, 1].max() >= 58  # along the path


def test_labels_of_people_who_overlap_do_not_cover_each_other():
    """A crowd where every box overlaps the next: each label keeps a plate of its
    own ("#2 pe#son" was two labels drawn over each other), inside the frame."""
    from segstream.pipelines.draw import TextStyle, place_labels

    rng = np.random.default_rng(3)
    x = rng.uniform(0, 700, 12)
    y = rng.uniform(150, 300, 12)
    boxes = np.stack([x, y, x + 60, y + 160], axis=1)
    style = TextStyle.for_frame((576, 768))
    sizes = [style.plate_size(f"#{i} person") for i in range(12)]
    corners = place_labels(boxes, sizes, (576, 768))
    rects = [(cx, cy, w, h) for (cx, cy), (w, h) in zip(corners, sizes)]
    for i, (ax, ay, aw, ah) in enumerate(rects):
        assert 0 <= ax <= 768 - aw and 0 <= ay <= 576 - ah
        for bx, by, bw, bh in rects[i + 1:]:
            assert not (ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah)
    # A lone box keeps the usual place: just above its top-left corner.
    assert place_labels(boxes[:1], sizes[:1], (576, 768)) == [(int(boxes[0, 0]), int(boxes[0, 1]) - sizes[0][1])]


def test_a_semantic_map_gets_a_legend_of_the_classes_it_shows():
    from segstream.pipelines.draw import legend_entries

    labels = np.zeros((60, 80), np.uint8)
    labels[:, :50] = 2  # road, the larger
    labels[:10, 60:] = 5  # sky
    message = {"semantic": {"classes": ["background", "person", "road", "car", "tree", "sky"]}}
    entries = legend_entries(labels, message)
    colors = label_colors(6)
    assert entries == [("road", tuple(int(c) for c in colors[2])), ("sky", tuple(int(c) for c in colors[5]))]
    out = annotate(np.full((60, 80, 3), 90, np.uint8), Detections.empty(), ["person"], labels=labels, legend=entries)
    swatches = [np.all(out == np.array(color), axis=-1).any() for _, color in entries]
    assert all(swatches)  # each class's colour is shown in the legend's swatch
    panoptic = {"panoptic": {"segments": [
        {"id": 1, "category": "person", "isthing": True, "area": 900, "track_id": 4},
        {"id": 2, "category": "grass", "isthing": False, "area": 300, "track_id": None},
        {"id": 3, "category": "sky", "isthing": False, "area": 500, "track_id": None}]}}
    assert [name for name, _ in legend_entries(labels, panoptic)] == ["sky", "grass"]  # stuff, largest first
