"""Mask-colour embeddings: unit length, same person similar across frames,
and different clothes less similar."""

import numpy as np
from segstream.engines.ops.appearance import color_embeddings
from segstream.stream.types import Detections


def test_colour_embeddings_separate_colours_and_use_the_mask():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :100] = (0, 0, 200)  # red on the left
    image[:, 100:] = (200, 0, 0)  # blue on the right
    boxes = [[10, 10, 60, 90], [20, 5, 70, 95], [120, 10, 180, 90]]
    emb = color_embeddings(image, Detections(boxes, [0.9] * 3, [0] * 3))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert emb[0] @ emb[1] > 0.99 and emb[0] @ emb[2] < 0.1
    # a box straddling both colours, with a mask on the blue part only, looks blue
    masks = np.zeros((1, 100, 200), bool)
    masks[0, 10:90, 110:150] = True
    masked = color_embeddings(image, Detections([[60, 10, 150, 90]], [0.9], [0], masks=masks))
    assert masked[0] @ emb[2] > 0.99


def test_same_people_on_real_frames_are_more_alike(video, seg_model):
    from segstream.engines.model import Model
    from segstream.stream.sources import open_source

    model = Model.load(str(seg_model), classes=["person"])
    frames = {}
    with open_source(str(video)) as src:
        for f in src:
            if f.seq in (100, 102):
                frames[f.seq] = f
            if f.seq > 102:
                break
    a, b = (model(frames[s]) for s in (100, 102))
    ea, eb = color_embeddings(frames[100].image, a), color_embeddings(frames[102].image, b)
    from segstream.stream.boxes import box_iou

    iou = box_iou(a.xyxy, b.xyxy)
    same = iou > 0.7  # two frames apart, a person barely moves
    sim = ea @ eb.T
    assert same.sum() >= 2
    assert sim[same].mean() > sim[~same].mean() + 0.05


def test_large_boxes_sampled_at_every_other_pixel_keep_their_features(video, seg_model, monkeypatch):
    """Big people (a 1080p camera's) are described from a quarter of their pixels: the same features,
    to a cosine of 0.99, as from all of them, masks included."""
    import cv2
    from segstream.engines.model import Model
    from segstream.engines.ops import appearance
    from segstream.stream.sources import open_source
    from segstream.stream.types import Frame

    model = Model.load(str(seg_model), classes=["person"])
    with open_source(str(video)) as src:
        frame = next(f for f in src if f.seq == 100)
    big = Frame(cv2.resize(frame.image, (1920, 1440)), "cam", 0, 0.0, 0.0)
    dets = model(big)
    assert len(dets) and (dets.xyxy[:, 2:] - dets.xyxy[:, :2]).min() >= appearance.HALF_SAMPLE_PX
    sampled = color_embeddings(big, dets)
    monkeypatch.setattr(appearance, "HALF_SAMPLE_PX", 10**6)  # every pixel
    whole = color_embeddings(big, dets)
    assert np.all(np.sum(sampled * whole, axis=1) > 0.99)
