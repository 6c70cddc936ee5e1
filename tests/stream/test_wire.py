"""The wire format must round-trip exactly and reject anything malformed with a
clean WireError, never a crash in the subscriber."""

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask
from segstream.stream.types import Detections, Frame, LabelMap, PanopticMap, Segment
from segstream.stream.wire import (
    WireError,
    decode,
    detections_from_message,
    encode,
    eos_message,
    frame_message,
    mask_to_rle,
    panoptic_from_message,
    rle_to_mask,
    semantic_from_message,
    status_message,
)


def sample() -> tuple[Frame, Detections]:
    rng = np.random.default_rng(0)
    masks = rng.random((3, 48, 64)) > 0.7
    masks[2] = False
    kps = np.zeros((3, 17, 3), np.float32)
    kps[0, :, :2] = 10.25
    kps[0, :, 2] = 0.9
    frame = Frame(np.zeros((48, 64, 3), np.uint8), "cam1", 7, 1700000000.0, 0.0, 0.7)
    dets = Detections([[1, 2, 30, 40], [5, 5, 9, 9], [0, 0, 1, 1]], [0.9, 0.5, 0.3], [0, 2, 0], masks, kps, None, [4, 5, 6])
    return frame, dets


def test_masks_round_trip_through_coco_rle():
    _, dets = sample()
    assert mask_to_rle(dets.masks[2]) is None  # empty
    edge = np.zeros((48, 64), bool)
    edge[:, -3:] = True  # touches the last column
    edge[0, 0] = True  # and the first pixel
    for mask in [dets.masks[0], dets.masks[1], edge, np.ones((48, 64), bool)]:
        rle = mask_to_rle(mask)
        assert rle["size"] == [48, 64]
        np.testing.assert_array_equal(rle_to_mask(rle), mask)
        # identical to pycocotools' own whole-frame encoder
        want = coco_mask.encode(np.asfortranarray(mask.view(np.uint8)))
        assert rle["counts"] == want["counts"].decode()


@settings(max_examples=80, deadline=None)
@given(x=st.integers(0, 20), y=st.integers(0, 20), h=st.integers(0, 28), w=st.integers(0, 44), seed=st.integers(0, 2**16))
def test_a_crop_at_its_origin_encodes_as_the_whole_frame_mask(x, y, h, w, seed):
    """BoxMasks crops go on the wire as frame-sized RLE, identical to the dense mask's."""
    crop = np.random.default_rng(seed).random((min(h, 48 - y), min(w, 64 - x))) > 0.5
    dense = np.zeros((48, 64), bool)
    dense[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
    assert mask_to_rle(crop, (x, y), (48, 64)) == mask_to_rle(dense)


def test_uncompressed_rle_counts_decode_too():
    mask = np.zeros((4, 3), bool)
    mask[1:3, 1] = True  # column-major runs: 5 zeros, 2 ones, 5 zeros
    np.testing.assert_array_equal(rle_to_mask({"size": [4, 3], "counts": [5, 2, 5]}), mask)


def test_frame_message_round_trip():
    frame, dets = sample()
    message = frame_message(frame, dets, ["person", "bicycle", "car"], {"infer": 12.5}, t_publish=1700000000.5)
    parts = encode(message)
    assert parts[0] == b"cam1/"
    got = decode(parts)
    assert got == json.loads(json.dumps(message))
    objs = got["objects"]
    assert [o["track_id"] for o in objs] == [4, 5, 6]
    assert [o["class_name"] for o in objs] == ["person", "car", "person"]
    assert len(objs[0]["keypoints"]) == 17 and objs[1]["keypoints"] is None
    assert objs[2]["mask"] is None  # empty mask is sent as null
    np.testing.assert_array_equal(rle_to_mask(objs[0]["mask"]), dets.masks[0])
    assert got["latency_ms"]["total"] == pytest.approx(500.0)


def test_only_objects_the_pose_model_found_carry_keypoints():
    """A person the pose model did not find carries null, not 17 points of confidence 0
    (whatever the person's class id: torchvision's COCO list puts "person" at 1)."""
    frame, dets = sample()
    message = frame_message(frame, dets.with_(class_ids=np.array([1, 3, 1])), ["__background__", "person", "bicycle", "car"])
    objs = message["objects"]
    assert [o["class_name"] for o in objs] == ["person", "car", "person"]
    assert len(objs[0]["keypoints"]) == 17 and objs[1]["keypoints"] is None and objs[2]["keypoints"] is None


def test_eos_message_decodes():
    assert decode(encode(eos_message("cam1", 41, 42)))["type"] == "eos"


@pytest.mark.parametrize("status", ["connected", "stalled", "reconnecting", "ended"])
def test_source_status_messages_decode(status):
    msg = decode(encode(status_message("cam1", status, "attempt 2, next in 1.0 s", 41, 1.7e9, 1)))
    assert (msg["type"], msg["status"], msg["seq"], msg["reconnects"]) == ("status", status, 41, 1)


def test_an_unknown_source_status_is_refused_at_the_source():
    with pytest.raises(ValueError, match="status must be one of"):
        status_message("cam1", "sleeping", "", 0, 0.0, 0)


@pytest.mark.parametrize(
    "parts, match",
    [
        ([b"x/"], "expected 2 message frames"),
        ([b"x/", b"\xff\xfe"], "not UTF-8 JSON"),
        ([b"x/", b"[1,2]"], "must be a JSON object"),
        ([b"x/", b'{"schema":99}'], "unsupported schema version"),
        ([b"x/", b'{"schema":1,"type":"nope"}'], "unknown message type"),
        ([b"x/", b'{"schema":1,"type":"eos","source":"x"}'], "seq is missing"),
        ([b"y/", b'{"schema":1,"type":"eos","source":"x","seq":1}'], "does not match source"),
        (
            [b"x/", b'{"schema":1,"type":"frame","source":"x","seq":1,"width":2,"height":2,"t_capture":0,'
             b'"objects":[{"class_id":0,"score":1,"box":[1,2,3]}]}'],
            "box must be 4 finite numbers",
        ),
    ],
)
def test_malformed_messages_raise_wire_error(parts, match):
    with pytest.raises(WireError, match=match):
        decode(parts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=3))
def test_decoder_never_crashes_on_random_bytes(parts):
    try:
        decode(parts)
    except WireError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["schema", "type", "source", "seq", "width", "height", "t_capture", "objects"]),
                       json_values, max_size=8))
def test_decoder_never_crashes_on_random_json(message):
    message.setdefault("schema", 1)
    try:
        decode([b"x/", json.dumps(message).encode()])
    except WireError:
        pass


def test_label_maps_round_trip_losslessly_at_8_and_16_bits():
    """Semantic (uint8) and panoptic (uint16) maps reach a subscriber pixel for pixel."""
    from segstream.stream.wire import label_map_to_png, png_to_label_map

    rng = np.random.default_rng(0)
    for labels in (rng.integers(0, 21, (48, 64), dtype=np.uint8), rng.integers(0, 3000, (48, 64), dtype=np.uint16)):
        payload = label_map_to_png(labels)
        assert payload["size"] == [48, 64] and payload["format"] == "png"
        decoded = png_to_label_map(json.loads(json.dumps(payload)))
        assert decoded.dtype == labels.dtype and np.array_equal(decoded, labels)
    with pytest.raises(WireError, match="not base64"):
        png_to_label_map({"format": "png", "size": [1, 1], "data": "***"})


def test_a_python_subscriber_gets_back_the_published_arrays():
    """Boxes, scores, classes, track ids, keypoints, masks and the semantic and
    panoptic maps come out of a received message as the pipeline's own types."""
    frame, dets = sample()
    labels = np.zeros((48, 64), np.uint8)
    labels[20:] = 3
    semantic = LabelMap(labels, ["background", "road", "person", "sky"])
    panoptic = PanopticMap(labels.astype(np.uint16), [Segment(3, "sky", False, int((labels == 3).sum()), None)])
    message = frame_message(frame, dets, ["person", "bicycle", "car"], semantic=semantic, panoptic=panoptic)
    received = decode(encode(message))

    got = detections_from_message(received)
    np.testing.assert_allclose(got.xyxy, dets.xyxy, atol=0.005)
    np.testing.assert_allclose(got.scores, dets.scores, atol=5e-5)
    assert got.class_ids.tolist() == [0, 2, 0] and got.track_ids.tolist() == [4, 5, 6]
    np.testing.assert_allclose(got.keypoints[0], dets.keypoints[0], atol=0.005)
    assert not got.keypoints[1].any()  # a car carries no keypoints
    np.testing.assert_array_equal(np.asarray(got.masks), np.asarray(dets.masks))  # the empty third mask included
    sem = semantic_from_message(received)
    assert np.array_equal(sem.labels, labels) and sem.class_names == semantic.class_names
    pan = panoptic_from_message(received)
    assert np.array_equal(pan.segment_ids, panoptic.segment_ids) and pan.segments == panoptic.segments
    assert pan.segment_ids.dtype == np.uint16


def test_panoptic_maps_go_as_8_bit_png_while_ids_fit_and_16_bit_beyond():
    """A few segments (the usual frame) cost an 8-bit PNG; segment 300 still
    arrives as 300. Either way the subscriber gets uint16 ids."""
    frame, dets = sample()
    for top, depth in ((7, 8), (300, 16)):
        ids = np.zeros((48, 64), np.uint16)
        ids[10:30, 5:50] = top
        panoptic = PanopticMap(ids, [Segment(top, "sky", False, int((ids == top).sum()), None)])
        message = decode(encode(frame_message(frame, dets, ["person"], panoptic=panoptic)))
        png = base64.b64decode(message["panoptic"]["data"])
        assert png[24] == depth  # the PNG header's bit depth
        got = panoptic_from_message(message)
        assert got.segment_ids.dtype == np.uint16 and np.array_equal(got.segment_ids, ids)


def test_a_message_without_masks_keypoints_tracks_or_maps_gives_none_for_them():
    frame, dets = sample()
    bare = Detections(dets.xyxy, dets.scores, dets.class_ids)
    received = decode(encode(frame_message(frame, bare, ["person", "bicycle", "car"])))
    got = detections_from_message(received)
    assert len(got) == 3 and got.masks is None and got.keypoints is None and got.track_ids is None
    assert semantic_from_message(received) is None and panoptic_from_message(received) is None


def test_malformed_keypoints_or_masks_raise_wire_error_not_a_crash():
    frame, dets = sample()
    message = json.loads(json.dumps(frame_message(frame, dets, ["person", "bicycle", "car"])))
    message["objects"][0]["keypoints"] = [[1.0, 2.0, 0.9]] * 5
    with pytest.raises(WireError, match="objects do not decode to arrays"):
        detections_from_message(message)
    message = json.loads(json.dumps(frame_message(frame, dets, ["person", "bicycle", "car"])))
    message["objects"][0]["mask"] = {"size": [48, 64]}
    with pytest.raises(WireError, match="mask counts"):
        detections_from_message(message)
