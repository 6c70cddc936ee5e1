"""A subscriber survives any message: every decoder of outside input raises
`WireError` and nothing else, in bounded time and memory. Hypothesis mutates
a real frame message (objects, masks, keypoints, semantic and panoptic maps)
anywhere, and the messages that broke earlier versions are kept as cases."""

from __future__ import annotations

import base64
import json
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from segstream.stream.types import LabelMap, PanopticMap, Segment
from segstream.stream.wire import (
    WireError,
    decode,
    detections_from_message,
    frame_message,
    panoptic_from_message,
    png_to_label_map,
    rle_to_mask,
    semantic_from_message,
)
from test_wire import sample


def full_message() -> dict[str, Any]:
    frame, dets = sample()
    labels = np.zeros((48, 64), np.uint8)
    labels[:10] = 3
    semantic = LabelMap(labels, ["background", "road", "person", "sky"])
    panoptic = PanopticMap(labels.astype(np.uint16), [Segment(3, "sky", False, int((labels == 3).sum()), None)])
    message = frame_message(frame, dets, ["person", "bicycle", "car"], semantic=semantic, panoptic=panoptic)
    return json.loads(json.dumps(message))


def read_all(message: Any) -> None:
    """Everything a subscriber does with a message, through the public decoders."""
    payload = json.dumps(message).encode()
    source = message.get("source") if isinstance(message, dict) else None
    topic = f"{source}/".encode() if isinstance(source, str) else b"x/"
    try:
        decoded = decode([topic, payload])
    except WireError:
        decoded = message if isinstance(message, dict) else {}
    for read in (detections_from_message, semantic_from_message, panoptic_from_message):
        try:
            read(decoded)
        except WireError:
            pass


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            out += paths(v, prefix + (i,))
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["", "0", "png", "person", "frame", "\x7f", "iVBORw0KGgo="]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
MESSAGE = full_message()
PATHS = paths(MESSAGE)[1:]


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), json_values)
def test_any_field_replaced_by_anything_is_a_wire_error_at_worst(path, value):
    message = json.loads(json.dumps(MESSAGE))
    node = message
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    read_all(message)


@settings(max_examples=200, deadline=2000)
@given(json_values)
def test_any_json_is_a_wire_error_at_worst(value):
    read_all(value)


@settings(max_examples=300, deadline=1000)
@given(st.lists(st.integers(-5, 2**40), max_size=8) | st.text(max_size=40), st.lists(st.integers(-3, 70), max_size=3))
def test_any_rle_decodes_to_its_size_or_is_a_wire_error(counts, size):
    try:
        mask = rle_to_mask({"size": size, "counts": counts}, max_pixels=4096)
    except WireError:
        return
    assert mask.shape == tuple(size) and mask.dtype == bool


def test_a_deeply_nested_payload_is_a_wire_error():
    with pytest.raises(WireError, match="nested"):
        decode([b"x/", b'{"schema":1,"x":' + b"[" * 100_000])


def test_a_huge_declared_mask_is_refused_before_it_is_allocated():
    message = full_message()
    message["objects"][0]["mask"] = {"size": [20000, 20000], "counts": "0"}
    with pytest.raises(WireError, match="frame's size"):
        detections_from_message(message)
    message["width"] = message["height"] = 20000
    with pytest.raises(WireError, match="limit"):
        detections_from_message(message)
    message["width"] = message["height"] = 2000  # under the default limit, over the one this reader sets
    with pytest.raises(WireError, match="limit"):
        detections_from_message(message, max_pixels=1_000_000)


def test_a_small_png_that_unpacks_to_a_huge_map_is_refused_unread():
    ok, png = cv2.imencode(".png", np.zeros((10000, 10000), np.uint8))  # 400 KB of zeros: 100 MB decoded
    payload = {"format": "png", "size": [10000, 10000], "data": base64.b64encode(png.tobytes()).decode()}
    with pytest.raises(WireError, match="at most"):
        png_to_label_map(payload, max_pixels=1_000_000)
    message = full_message()
    message["semantic"] = {**payload, "classes": ["a"]}
    with pytest.raises(WireError, match="does not match"):
        semantic_from_message(message)  # not the 64x48 frame the message states


@pytest.mark.parametrize("rle", [
    {"size": [300, 300], "counts": ""},  # truncated: pycocotools returned uninitialised pixels
    {"size": [3, 3], "counts": [2, 3]},
    {"size": [-3, 3], "counts": [0]},
    {"size": [3, 3], "counts": [-1, 10]},
])
def test_truncated_or_negative_runs_are_wire_errors(rle):
    with pytest.raises(WireError):
        rle_to_mask(rle)


def test_a_track_id_past_int64_and_a_bad_panoptic_are_wire_errors():
    message = full_message()
    message["objects"][0]["track_id"] = 2**63
    with pytest.raises(WireError):
        detections_from_message(message)
    message = full_message()
    message["panoptic"]["segments"] = [{"id": "x"}]
    with pytest.raises(WireError):
        panoptic_from_message(message)
    message["semantic"] = [1, 2]
    with pytest.raises(WireError):
        semantic_from_message(message)
