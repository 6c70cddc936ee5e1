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
from pycocotools import mask as coco_mask

from .errors import PublishError
from .masks import BoxMasks
from .types import NUM_KEYPOINTS, Detections, Frame, LabelMap, PanopticMap, Segment, person_class_id

SCHEMA_VERSION = 1
MESSAGE_TYPES = ("frame", "eos", "status")
SOURCE_STATES = ("connected", "stalled", "reconnecting", "ended")


class WireError(PublishError):
    """A received message does not follow the wire schema."""


def topic_for(source_id: str) -> str:
    """The topic of a source. The trailing '/' stops 'cam1' matching 'cam10' in
    ZeroMQ's prefix-based subscriptions."""
    return f"{source_id}/"


def mask_to_rle(
    mask: np.ndarray, origin: tuple[int, int] = (0, 0), frame_hw: tuple[int, int] | None = None
) -> dict[str, Any] | None:
    """(h, w) bool -> COCO compressed RLE with `counts` as str; None if empty.

    `mask` is the whole frame, or (with `frame_hw`) a crop whose top-left
    pixel sits at `origin` = (x, y) of a frame of that size, as `BoxMasks`
    keeps them. Runs are found only in the columns the mask occupies (COCO RLE
    is column-major), which is several times faster than encoding the whole
    frame for the small objects of a typical scene."""
    h, w = frame_hw if frame_hw is not None else mask.shape
    cols = np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0:
        return None
    ox, oy = int(origin[0]), int(origin[1])
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    if oy == 0 and mask.shape[0] == h:
        flat = mask[:, c0:c1].T.ravel()
    else:  # a crop: pad its columns to the frame's height
        strip = np.zeros((c1 - c0, h), bool)
        strip[:, oy:oy + mask.shape[0]] = mask[:, c0:c1].T
        flat = strip.ravel()
    x0, x1 = ox + c0, ox + c1
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [len(flat)]]))
    lead, trail = x0 * h, (w - x1) * h
    # Counts alternate zeros, ones, zeros, ... starting with a (maybe empty) run of zeros.
    if flat[0]:
        runs = np.concatenate([[lead], runs])
    else:
        runs[0] += lead
    if not flat[-1]:
        runs[-1] += trail
    elif trail:
        runs = np.concatenate([runs, [trail]])
    rle = coco_mask.frPyObjects({"size": [h, w], "counts": runs.tolist()}, h, w)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: Mapping[str, Any]) -> np.ndarray:
    """COCO RLE dict (compressed str counts or uncompressed list) -> (H, W) bool."""
    h, w = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, list):
        rle = coco_mask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    else:
        rle = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(rle).astype(bool)


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


def png_to_label_map(payload: Mapping[str, Any]) -> np.ndarray:
    """The inverse of `label_map_to_png` -> (H, W) uint8 or uint16."""
    if payload.get("format") != "png":
        raise WireError(f"label map format {payload.get('format')!r} is not 'png'")
    try:
        raw = np.frombuffer(base64.b64decode(payload["data"], validate=True), np.uint8)
    except (KeyError, ValueError, TypeError):
        raise WireError("label map data is not base64") from None
    labels = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if labels is None or list(labels.shape) != list(payload.get("size", [])):
        raise WireError(f"label map does not decode to its size {payload.get('size')}")
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
    boxes = _round(dets.xyxy)
    scores = _round(dets.scores, 4)
    class_ids = dets.class_ids.tolist()
    track_ids = dets.track_ids.tolist() if dets.track_ids is not None else [None] * n
    keypoints: list[Any] = [None] * n
    if dets.keypoints is not None:
        kp_lists = _round(dets.keypoints)
        has_kp = dets.keypoints[:, :, 2].max(axis=1) > 0 if n else np.zeros(0, bool)
        # Persons carry 17 keypoints (confidence 0 where the pose model saw none);
        # other classes carry none. (COCO models call class 0 "person", torchvision's class 1.)
        person = person_class_id(class_names)
        keypoints = [kp if (has_kp[i] or class_ids[i] == person) else None for i, kp in enumerate(kp_lists)]
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


def detections_from_message(message: Mapping[str, Any]) -> Detections:
    """A received frame message's objects as `Detections`, the arrays the
    pipeline published: boxes, scores, class ids, masks (`BoxMasks`, each cut
    to its own bounding box) when any object has one, keypoints (N, 17, 3;
    zero confidence for objects without) when any has them, track ids (-1 for
    an untracked object) when any has one. The inverse of `frame_message`
    but for rounding (boxes and keypoints to 0.01 px, scores to 1e-4). A
    malformed object (17 keypoints that are not, a mask that does not decode)
    raises `WireError`, as `decode` does for the rest."""
    try:
        return _detections(message)
    except (KeyError, ValueError, TypeError, IndexError) as err:
        raise WireError(f"objects do not decode to arrays: {type(err).__name__}: {err}") from None


def _frame_mask(rle: Mapping[str, Any], hw: tuple[int, int]) -> np.ndarray:
    mask = rle_to_mask(rle)
    if mask.shape != hw:
        raise WireError(f"a mask of size {list(mask.shape)} in a {hw[1]}x{hw[0]} frame")
    return mask


def _detections(message: Mapping[str, Any]) -> Detections:
    objects = message["objects"]
    n = len(objects)
    hw = (int(message["height"]), int(message["width"]))
    boxes = np.array([o["box"] for o in objects], np.float32).reshape(n, 4)
    scores = [o["score"] for o in objects]
    class_ids = [o["class_id"] for o in objects]
    tracks = [o.get("track_id") for o in objects]
    track_ids = np.array([-1 if t is None else t for t in tracks], np.int64) if any(t is not None for t in tracks) else None
    keypoints = None
    if any(o.get("keypoints") is not None for o in objects):
        keypoints = np.zeros((n, NUM_KEYPOINTS, 3), np.float32)
        for i, o in enumerate(objects):
            if o.get("keypoints") is not None:
                keypoints[i] = np.asarray(o["keypoints"], np.float32).reshape(NUM_KEYPOINTS, 3)
    masks = None
    if any(o.get("mask") is not None for o in objects):
        # One frame-sized mask at a time, each cut to its own bounding box: not N of them at once.
        masks = BoxMasks.concat([BoxMasks.from_dense(_frame_mask(o["mask"], hw)[None]) if o.get("mask") is not None
                                 else BoxMasks.empty(1, hw) for o in objects])
    return Detections(boxes, scores, class_ids, masks=masks, keypoints=keypoints, track_ids=track_ids)


def semantic_from_message(message: Mapping[str, Any]) -> LabelMap | None:
    """A received frame message's semantic map, or None when no semantic model ran."""
    payload = message.get("semantic")
    return None if payload is None else LabelMap(png_to_label_map(payload), list(payload.get("classes", [])))


def panoptic_from_message(message: Mapping[str, Any]) -> PanopticMap | None:
    """A received frame message's panoptic map and segment table, or None without `--panoptic`."""
    payload = message.get("panoptic")
    if payload is None:
        return None
    segments = [Segment(s["id"], s["category"], s["isthing"], s["area"], s.get("track_id")) for s in payload["segments"]]
    return PanopticMap(png_to_label_map(payload).astype(np.uint16, copy=False), segments)


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
        message = json.loads(bytes(parts[1]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise WireError(f"payload is not UTF-8 JSON: {err}") from None
    if not isinstance(message, dict):
        raise WireError(f"payload must be a JSON object, got {type(message).__name__}")
    schema = message.get("schema")
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise WireError(f"unsupported schema version {schema!r}; this client reads version {SCHEMA_VERSION}")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in _REQUIRED:
        raise WireError(f"unknown message type {kind!r}; expected one of {', '.join(MESSAGE_TYPES)}")
    _check_fields(message, _REQUIRED[kind], "message")
    if topic != topic_for(message["source"]):
        raise WireError(f"topic {topic!r} does not match source {message['source']!r}")
    if kind == "frame":
        for i, obj in enumerate(message["objects"]):
            if not isinstance(obj, dict):
                raise WireError(f"objects[{i}] must be a JSON object")
            _check_fields(obj, _OBJECT_FIELDS, f"objects[{i}]")
            box = obj["box"]
            if len(box) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box):
                raise WireError(f"objects[{i}].box must be 4 finite numbers")
    return message


def _check_fields(obj: Mapping[str, Any], spec: Mapping[str, type | tuple[type, ...]], where: str) -> None:
    for key, typ in spec.items():
        value = obj.get(key)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise WireError(f"{where}.{key} is missing or not of type {getattr(typ, '__name__', typ)}")
