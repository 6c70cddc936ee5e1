"""The wire format (schema version 1), documented in SCHEMA.md.

A message is two ZeroMQ frames: the topic (`<source_id>/`, UTF-8) and one
UTF-8 JSON object. JSON keeps it decodable from C++, ROS or a shell without
segstream; masks travel as COCO compressed RLE, the format every COCO tool
(pycocotools, the C `maskApi`) reads. The same JSON object is what
`segstream subscribe` prints and what `--export *.jsonl` writes.
"""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from .errors import PublishError
from .masks import BoxMasks
from .rle import DEFAULT_MAX_PIXELS, WireError, mask_to_rle, rle_to_mask
from .types import NUM_KEYPOINTS, Detections, Frame, LabelMap, PanopticMap, Segment

SCHEMA_VERSION = 1
MESSAGE_TYPES = ("frame", "eos", "status")
SOURCE_STATES = ("connected", "stalled", "reconnecting", "ended")


def topic_for(source_id: str) -> str:
    """The topic of a source. The trailing '/' stops 'cam1' matching 'cam10' in
    ZeroMQ's prefix-based subscriptions."""
    return f"{source_id}/"


def _round(values: np.ndarray, digits: int = 2) -> list:
    return np.round(values.astype(np.float64), digits).tolist()


def png_params(dtype: np.dtype) -> list[int]:
    """cv2.imencode flags for a label map. Label maps are flat regions, which
    PNG's row filters do not shrink: without them a 1080p map encodes 4x
    faster (libpng tries every filter on every row otherwise). Run-length
    zlib suits 8-bit ids, which repeat byte by byte, but not 16-bit ones
    (alternating high and low bytes), which keep zlib's fastest level."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # recent OpenCV; older ones keep the (slower) adaptive filters
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    if np.dtype(dtype) == np.uint8:
        params += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    return params


def label_map_to_png(labels: np.ndarray) -> dict[str, Any]:
    """(H, W) uint8/uint16 ids -> `{"size", "format": "png", "data": base64}`.
    PNG is lossless, compresses label maps ~50x, and every language reads it."""
    ok, png = cv2.imencode(".png", labels, png_params(labels.dtype))
    if not ok:
        raise PublishError(f"cannot PNG-encode a {labels.shape} {labels.dtype} label map")
    return {"size": [int(labels.shape[0]), int(labels.shape[1])], "format": "png",
            "data": base64.b64encode(png.tobytes()).decode("ascii")}


def png_to_label_map(
    payload: Mapping[str, Any], frame_hw: tuple[int, int] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """The inverse of `label_map_to_png` -> (H, W) uint8 or uint16.

    The PNG's own header is read before it is decoded: its size must be the
    payload's `size`, the frame's (`frame_hw`, when given) and at most
    `max_pixels`, so a small PNG cannot unpack into gigabytes. Anything else
    raises WireError."""
    if not isinstance(payload, Mapping) or payload.get("format") != "png":
        raise WireError("a label map must be a JSON object with format 'png'")
    try:
        raw = base64.b64decode(payload["data"], validate=True)
    except (KeyError, ValueError, TypeError):
        raise WireError("label map data is not base64") from None
    # PNG: 8-byte signature, then the IHDR chunk: length, b"IHDR", width, height (big-endian), bit depth, colour type.
    if len(raw) < 26 or raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR":
        raise WireError("label map data is not a PNG")
    width, height = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    depth, colour = raw[24], raw[25]
    size = payload.get("size")
    if size != [height, width] or (frame_hw is not None and (height, width) != tuple(frame_hw)):
        raise WireError(f"label map of {width}x{height} does not match its size {size!r:.40} or its frame")
    if height * width > max_pixels or depth not in (8, 16) or colour != 0:
        raise WireError(f"label map of {width}x{height}, depth {depth}, colour type {colour}: not a label map a "
                        f"reader takes (one channel, 8 or 16 bits, at most {max_pixels} pixels)")
    labels = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.shape != (height, width):
        raise WireError(f"label map does not decode to its size {size}")
    return labels


def semantic_payload(semantic: LabelMap) -> dict[str, Any]:
    return {**label_map_to_png(semantic.labels), "classes": list(semantic.class_names)}


def panoptic_payload(panoptic: PanopticMap) -> dict[str, Any]:
    """The segment map goes as an 8-bit PNG while every id fits (a frame rarely
    holds 255 segments): half the bytes and half the encoding time of 16 bits."""
    segments = [{"id": s.id, "category": s.category, "isthing": s.isthing, "area": s.area, "track_id": s.track_id}
                for s in panoptic.segments]
    ids = panoptic.segment_ids
    if max((s.id for s in panoptic.segments), default=0) < 256:
        ids = ids.astype(np.uint8)
    return {**label_map_to_png(ids), "segments": segments}


def frame_message(
    frame: Frame,
    dets: Detections,
    class_names: Sequence[str],
    latency_ms: Mapping[str, float] | None = None,
    t_publish: float | None = None,
    semantic: LabelMap | None = None,
    panoptic: PanopticMap | None = None,
) -> dict[str, Any]:
    """Build the JSON-able message for one processed frame (with the semantic
    and panoptic maps when a semantic model runs)."""
    n = len(dets)
    boxes = _round(dets.boxes_found)
    filtered = _round(dets.xyxy) if dets.detected_xyxy is not None else [None] * n
    scores = _round(dets.scores, 4)
    class_ids = dets.class_ids.tolist()
    track_ids = dets.track_ids.tolist() if dets.track_ids is not None else [None] * n
    keypoints: list[Any] = [None] * n
    if dets.keypoints is not None:
        kp_lists = _round(dets.keypoints)
        has_kp = dets.keypoints[:, :, 2].max(axis=1) > 0 if n else np.zeros(0, bool)
        # An object the pose model found carries its 17 keypoints; anything else
        # (a person a segmentation model found and the pose model did not) null.
        keypoints = [kp if has_kp[i] else None for i, kp in enumerate(kp_lists)]
    masks: list[Any] = [None] * n
    if dets.masks is not None:
        frame_hw = dets.masks.frame_hw
        masks = [mask_to_rle(crop, origin, frame_hw) for crop, origin in zip(dets.masks.crops, dets.masks.origins.tolist())]
    objects = [
        {
            "track_id": track_ids[i],
            "class_id": class_ids[i],
            "class_name": class_names[class_ids[i]] if 0 <= class_ids[i] < len(class_names) else str(class_ids[i]),
            "score": scores[i],
            "box": boxes[i],
            "box_filtered": filtered[i],
            "keypoints": keypoints[i],
            "mask": masks[i],
        }
        for i in range(n)
    ]
    t_pub = time.time() if t_publish is None else t_publish
    latency = {k: round(float(v), 3) for k, v in (latency_ms or {}).items()}
    latency["total"] = round((t_pub - frame.t_capture) * 1000.0, 3)
    message = {
        "schema": SCHEMA_VERSION,
        "type": "frame",
        "source": frame.source_id,
        "seq": frame.seq,
        "width": frame.width,
        "height": frame.height,
        "pts": frame.pts,
        "t_capture": frame.t_capture,
        "t_publish": t_pub,
        "latency_ms": latency,
        "objects": objects,
    }
    if semantic is not None:
        message["semantic"] = semantic_payload(semantic)
    if panoptic is not None:
        message["panoptic"] = panoptic_payload(panoptic)
    return message


def detections_from_message(message: Mapping[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS) -> Detections:
    """A received frame message's objects as `Detections`, the arrays the
    pipeline published: boxes, scores, class ids, masks (`BoxMasks`, each cut
    to its own bounding box) when any object has one, keypoints (N, 17, 3;
    zero confidence for objects without) when any has them, track ids (-1 for
    an untracked object) when any has one. The inverse of `frame_message`
    but for rounding (boxes and keypoints to 0.01 px, scores to 1e-4).

    What it costs is bounded by the message's own frame size, which must be
    at most `max_pixels`: every mask must have exactly that size, checked
    before it is decoded. Anything malformed raises `WireError`."""
    try:
        hw = _frame_hw(message, max_pixels)
        return _detections(message, hw, max_pixels)
    except WireError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, OverflowError, RecursionError) as err:
        raise WireError(f"objects do not decode to arrays: {type(err).__name__}: {err}"[:300]) from None


def _frame_hw(message: Mapping[str, Any], max_pixels: int) -> tuple[int, int]:
    """The message's (height, width), checked against `max_pixels`."""
    if not isinstance(message, Mapping):
        raise WireError("a message must be a JSON object")
    h, w = message.get("height"), message.get("width")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (h, w)):
        raise WireError("message height and width must be non-negative ints")
    if h * w > max_pixels:
        raise WireError(f"a {w}x{h} frame is over the {max_pixels}-pixel limit")
    return h, w


def _frame_mask(rle: Mapping[str, Any], hw: tuple[int, int], max_pixels: int) -> np.ndarray:
    if not isinstance(rle, Mapping) or rle.get("size") != list(hw):
        raise WireError(f"a mask must have its frame's size {list(hw)}")
    return rle_to_mask(rle, max_pixels)


def _detections(message: Mapping[str, Any], hw: tuple[int, int], max_pixels: int) -> Detections:
    objects = message["objects"]
    if not isinstance(objects, list) or not all(isinstance(o, Mapping) for o in objects):
        raise WireError("objects must be a list of JSON objects")
    n = len(objects)
    with np.errstate(over="ignore"):  # a number past float32 becomes inf, refused below
        boxes = np.array([o["box"] for o in objects], np.float32).reshape(n, 4)
        scores = np.array([o["score"] for o in objects], np.float32)
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise WireError("boxes and scores must be finite float32 numbers")
    class_ids = [o["class_id"] for o in objects]
    tracks = [o.get("track_id") for o in objects]
    track_ids = np.array([-1 if t is None else t for t in tracks], np.int64) if any(t is not None for t in tracks) else None
    keypoints = None
    if any(o.get("keypoints") is not None for o in objects):
        keypoints = np.zeros((n, NUM_KEYPOINTS, 3), np.float32)
        for i, o in enumerate(objects):
            if o.get("keypoints") is not None:
                with np.errstate(over="ignore"):
                    keypoints[i] = np.asarray(o["keypoints"], np.float32).reshape(NUM_KEYPOINTS, 3)
        if not np.isfinite(keypoints).all():
            raise WireError("keypoints must be finite float32 numbers")
    masks = None
    if any(o.get("mask") is not None for o in objects):
        # One frame-sized mask at a time, each cut to its own bounding box: not N of them at once.
        masks = BoxMasks.concat([BoxMasks.from_dense(_frame_mask(o["mask"], hw, max_pixels)[None])
                                 if o.get("mask") is not None else BoxMasks.empty(1, hw) for o in objects])
    return Detections(boxes, scores, class_ids, masks=masks, keypoints=keypoints, track_ids=track_ids)


def semantic_from_message(message: Mapping[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS) -> LabelMap | None:
    """A received frame message's semantic map, or None when no semantic model
    ran; the map must have the message's frame size. WireError if malformed."""
    payload = message.get("semantic") if isinstance(message, Mapping) else None
    if payload is None:
        return None
    classes = payload.get("classes", []) if isinstance(payload, Mapping) else None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise WireError("semantic must be a JSON object whose classes are a list of strings")
    return LabelMap(png_to_label_map(payload, _frame_hw(message, max_pixels), max_pixels), classes)


_SEGMENT_FIELDS: dict[str, type | tuple[type, ...]] = {"id": int, "category": str, "area": int}


def panoptic_from_message(message: Mapping[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS) -> PanopticMap | None:
    """A received frame message's panoptic map and segment table, or None
    without `--panoptic`; the map must have the message's frame size.
    WireError if malformed."""
    payload = message.get("panoptic") if isinstance(message, Mapping) else None
    if payload is None:
        return None
    raw = payload.get("segments") if isinstance(payload, Mapping) else None
    if not isinstance(raw, list) or not all(isinstance(s, Mapping) for s in raw):
        raise WireError("panoptic must be a JSON object with a list of segments")
    segments = []
    for i, s in enumerate(raw):
        _check_fields(s, _SEGMENT_FIELDS, f"panoptic.segments[{i}]")
        track_id = s.get("track_id")
        if not isinstance(s.get("isthing"), bool) or not (track_id is None or type(track_id) is int):
            raise WireError(f"panoptic.segments[{i}]: isthing must be true or false, track_id an int or null")
        segments.append(Segment(s["id"], s["category"], s["isthing"], s["area"], track_id))
    labels = png_to_label_map(payload, _frame_hw(message, max_pixels), max_pixels)
    return PanopticMap(labels.astype(np.uint16, copy=False), segments)


def eos_message(source_id: str, last_seq: int, frames: int) -> dict[str, Any]:
    """The explicit end-of-stream message: a subscriber never has to guess from silence."""
    return {
        "schema": SCHEMA_VERSION,
        "type": "eos",
        "source": source_id,
        "seq": last_seq,
        "frames": frames,
        "t_publish": time.time(),
    }


def status_message(source_id: str, status: str, detail: str, seq: int, t: float, reconnects: int) -> dict[str, Any]:
    """A live source's state changed: `connected`, `stalled` (open, no frames),
    `reconnecting` (retrying with backoff) or `ended` (gave up or closed)."""
    if status not in SOURCE_STATES:
        raise ValueError(f"status must be one of {', '.join(SOURCE_STATES)}, got {status!r}")
    return {
        "schema": SCHEMA_VERSION,
        "type": "status",
        "source": source_id,
        "status": status,
        "detail": detail,
        "seq": seq,
        "reconnects": reconnects,
        "t": t,
    }


def encode(message: Mapping[str, Any]) -> list[bytes]:
    """Message dict -> [topic, payload] ZeroMQ frames."""
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return [topic_for(message["source"]).encode("utf-8"), payload]


_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "frame": {"source": str, "seq": int, "width": int, "height": int, "t_capture": (int, float), "objects": list},
    "eos": {"source": str, "seq": int},
    "status": {"source": str, "status": str, "seq": int},
}
_OBJECT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "class_id": int,
    "score": (int, float),
    "box": list,
}


def decode(parts: Sequence[bytes]) -> dict[str, Any]:
    """[topic, payload] -> message dict, or WireError naming what is wrong."""
    if len(parts) != 2:
        raise WireError(f"expected 2 message frames (topic, payload), got {len(parts)}")
    try:
        topic = bytes(parts[0]).decode("utf-8")
    except UnicodeDecodeError as err:
        raise WireError(f"topic is not UTF-8: {err}"[:300]) from None
    message = decode_payload(parts[1])
    if topic != topic_for(message["source"]):
        raise WireError(f"topic {topic!r} does not match source {message['source']!r}")
    return message


def decode_payload(payload: bytes) -> dict[str, Any]:
    """A message's JSON payload (`encode(...)[1]`, also what recordings hold) ->
    message dict, checked as `decode` checks it, or WireError."""
    try:
        message = json.loads(bytes(payload).decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as err:
        raise WireError(f"payload is not UTF-8 JSON: {err}"[:300]) from None
    except RecursionError:  # nesting deeper than Python's stack: no schema message nests more than a few levels
        raise WireError("payload is nested too deeply to be a segstream message") from None
    if not isinstance(message, dict):
        raise WireError(f"payload must be a JSON object, got {type(message).__name__}")
    schema = message.get("schema")
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise WireError(f"unsupported schema version {schema!r}; this client reads version {SCHEMA_VERSION}")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in _REQUIRED:
        raise WireError(f"unknown message type {kind!r}; expected one of {', '.join(MESSAGE_TYPES)}")
    _check_fields(message, _REQUIRED[kind], "message")
    if kind == "frame":
        for i, obj in enumerate(message["objects"]):
            if not isinstance(obj, dict):
                raise WireError(f"objects[{i}] must be a JSON object")
            _check_fields(obj, _OBJECT_FIELDS, f"objects[{i}]")
            for key in ("box", "box_filtered"):
                box = obj.get(key)
                if key == "box_filtered" and box is None:
                    continue  # optional: only a tracker with a filtered estimate sends it
                if (not isinstance(box, list) or len(box) != 4
                        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                   for v in box)):
                    raise WireError(f"objects[{i}].{key} must be 4 finite numbers")
    return message


def _no_constants(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259): refused, so nothing re-prints them."""
    raise ValueError(f"{name} is not a JSON number")


def _check_fields(obj: Mapping[str, Any], spec: Mapping[str, type | tuple[type, ...]], where: str) -> None:
    for key, typ in spec.items():
        value = obj.get(key)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise WireError(f"{where}.{key} is missing or not of type {getattr(typ, '__name__', typ)}")
