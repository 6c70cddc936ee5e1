"""A real re-id model (OSNet on PETS09 ground-truth crops) gives one unit
vector per detection, and the same person looks closer to themselves than to
others; a model exported with a batch fixed at 1 still takes all the crops
of a frame in one call, with the same features."""

import numpy as np
import pytest
from conftest import asset
from segstream.engines.adapters.reid import MAX_CROPS, ReidEmbedder, crop_batches
from segstream.engines.runtimes.batching import batchable_model
from segstream.engines.runtimes.registry import load_backend
from segstream.engines.runtimes.tensorrt import options_for_model
from segstream.stream.errors import ModelError
from segstream.stream.sources import open_source
from segstream.stream.types import Detections
from segstream.tracking.mot import read_detections


def gt_frames(frames):
    """{frame index: Detections with track_ids = gt identities} for the given 0-based frames."""
    rows = np.loadtxt(asset("mot/MOT15/PETS09-S2L1/gt/gt.txt"), delimiter=",")
    out = {}
    for f in frames:
        r = rows[(rows[:, 0] == f + 1) & (rows[:, 6] != 0)]
        xyxy = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1)
        out[f] = Detections(xyxy, np.ones(len(r)), np.zeros(len(r)), track_ids=r[:, 1].astype(np.int64))
    return out


def test_same_person_is_closer_than_different_people(video):
    embed = ReidEmbedder.load(str(asset("models/osnet_x0_25_msmt17.onnx")))
    assert embed.batch == MAX_CROPS and embed.size == (128, 256)  # exported with a batch of 1, made dynamic
    wanted = gt_frames([0, 40, 80, 120])
    feats, ids = [], []
    with open_source(str(video)) as src:
        for frame in src:
            if frame.seq in wanted:
                dets = wanted[frame.seq]
                f = embed(frame.image, dets)
                assert f.shape == (len(dets), 512)
                np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
                feats.append(f)
                ids.append(dets.track_ids)
            if frame.seq >= max(wanted):
                break
    feats, ids = np.concatenate(feats), np.concatenate(ids)
    sim = feats @ feats.T
    same = (ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)
    different = ids[:, None] != ids[None, :]
    assert sim[same].mean() > sim[different].mean() + 0.03


def test_a_fixed_batch_export_runs_all_crops_at_once_with_the_same_features(video):
    path = str(asset("models/osnet_x0_25_msmt17.onnx"))
    one_by_one = ReidEmbedder(load_backend(path, "onnxruntime", "cpu"))
    batched = ReidEmbedder.load(path)
    assert one_by_one.batch == 1 and batched.batch == MAX_CROPS
    dets = gt_frames([60])[60]
    with open_source(str(video)) as src:
        frame = next(f for f in src if f.seq == 60)
    np.testing.assert_allclose(batched(frame.image, dets), one_by_one(frame.image, dets), atol=1e-5)


def test_more_crops_than_a_call_takes_go_in_chunks_with_the_same_features(video):
    """A GPU engine takes at most MAX_CROPS crops a call; a crowd gets the features it would get in one call."""
    path = batchable_model(str(asset("models/osnet_x0_25_msmt17.onnx")))
    dets = gt_frames([60])[60]
    assert len(dets) > 2
    with open_source(str(video)) as src:
        frame = next(f for f in src if f.seq == 60)
    whole = ReidEmbedder(load_backend(path, "onnxruntime", "cpu"))
    chunked = ReidEmbedder(load_backend(path, "onnxruntime", "cpu"), max_batch=2)
    np.testing.assert_allclose(chunked(frame.image, dets), whole(frame.image, dets), atol=1e-5)
    # What TensorRT compiles for it: batches of 1 to MAX_CROPS at the model's input size.
    profile = options_for_model(path, crop_batches())[0].profile
    assert (profile.min_batch, profile.max_batch, profile.opt_hw) == (1, MAX_CROPS, (256, 128))


def test_no_detections_and_boxes_partly_outside_the_frame(video):
    embed = ReidEmbedder.load(str(asset("models/osnet_x0_25_msmt17.onnx")))
    with open_source(str(video)) as src:
        frame = next(iter(src))
    assert embed(frame.image, Detections.empty()).shape == (0, 512)
    edge = Detections([[-20, -10, 30, 100], [700, 500, 900, 700], [10, 10, 10, 10]], [1, 1, 1], [0, 0, 0])
    f = embed(frame.image, edge)
    assert f.shape == (3, 512) and np.isfinite(f).all()


def test_public_detections_get_embeddings_every_frame(video):
    """The bench's setting: MOT15 det.txt rows of a frame in, one embedding per row out."""
    embed = ReidEmbedder.load(str(asset("models/osnet_x0_25_msmt17.onnx")))
    dets = read_detections(asset("mot/MOT15/PETS09-S2L1/det/det.txt"), 795)[:3]
    with open_source(str(video)) as src:
        for frame, d in zip(src, dets):
            assert embed(frame.image, d).shape == (len(d), 512)


def test_a_detector_given_as_the_reid_model_is_refused_by_name(seg_model):
    """`--reid-model yolov8n-seg.onnx` (a mix-up) must not run and feed the
    tracker flattened detection heads as 'appearance'."""
    with pytest.raises(ModelError, match=r"yolov8n-seg_320_fp32.onnx: not a re-identification model: .*\[N, D\] output.*"
                                         r"outputs \[\?, 116, 2100\], \[\?, 32, 80, 80\]"):
        ReidEmbedder.load(str(seg_model))
