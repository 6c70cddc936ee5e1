"""`--record run.mcap`: the run's frames and messages in an MCAP file.

Why MCAP: it is the recording format of ROS 2 and what Foxglove opens, so a
robotics developer sees the camera with boxes, ids and keypoints over it
without segstream; and segstream reads it back (`stream.recorded`) to run the
pipeline again on the same frames, or to republish the messages
(`segstream replay`). The layout is documented in `stream.recorded`.

Chunks are compressed (zstd) and written as they fill, about every
`CHUNK_BYTES`: a run killed outright leaves a file that reads up to its last
complete chunk; `close()` adds the index that makes it seekable.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Sequence

import cv2
import numpy as np

from ..stream.errors import OutputError
from ..stream.recorded import MESSAGES_TOPIC, METADATA_NAME, annotations_topic, image_topic
from ..stream.types import Detections, Frame
from ..stream.wire import encode, eos_message
from .draw import KEYPOINT_MIN_CONF, SKELETON, colors_for
from .sinks import Sink, prepare_output

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
JPEG_QUALITY = 90
MESSAGE_SCHEMA = {
    "title": "segstream.message",
    "description": "A segstream wire message (frame, status or end of stream); see stream/SCHEMA.md",
    "type": "object",
    "properties": {"type": {"type": "string"}, "schema": {"type": "integer"}, "source": {"type": "string"}},
    "required": ["type", "schema"],
}


class McapSink(Sink):
    """Every frame as JPEG with its annotations, and every wire message, in one MCAP file."""

    def __init__(self, path: str, source_ids: Sequence[str], class_names: Sequence[str]) -> None:
        from mcap.writer import CompressionType, Writer

        prepare_output(path)
        self.path = path
        self.class_names = class_names
        try:
            self._file = open(path, "wb")
        except OSError as err:
            raise OutputError(f"cannot write {path}: {err.strerror}") from None
        self._writer = Writer(self._file, chunk_size=CHUNK_BYTES, compression=CompressionType.ZSTD)
        self._guard(self._writer.start, profile="", library="segstream")
        self._guard(self._writer.add_metadata, METADATA_NAME,
                    {"sources": ",".join(source_ids), "classes": json.dumps(list(class_names))})
        schema = self._writer.register_schema("segstream.message", "jsonschema", json.dumps(MESSAGE_SCHEMA).encode())
        self._messages = self._writer.register_channel(MESSAGES_TOPIC, "json", schema)
        self._channels: dict[str, int] = {}

    def _guard(self, write: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return write(*args, **kwargs)
        except OSError as err:  # a full disk, a removed drive
            raise OutputError(f"cannot write {self.path}: {err.strerror}") from None

    def _channel(self, topic: str, message_type: Any) -> int:
        channel = self._channels.get(topic)
        if channel is None:
            from mcap_protobuf.schema import register_schema

            schema = register_schema(self._writer, message_type)
            channel = self._channels[topic] = self._writer.register_channel(topic, "protobuf", schema)
        return channel

    def _add(self, channel: int, t_ns: int, data: bytes) -> None:
        self._guard(self._writer.add_message, channel, log_time=t_ns, data=data, publish_time=t_ns)

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
        from foxglove_schemas_protobuf.ImageAnnotations_pb2 import ImageAnnotations

        t_ns = int(frame.t_capture * 1e9)
        self._add(self._messages, t_ns, _json(message))  # first: it says which frame the image is
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OutputError(f"cannot write {self.path}: a frame of {frame.source_id} did not encode as JPEG")
        image = CompressedImage(frame_id=frame.source_id, format="jpeg", data=jpeg.tobytes())
        image.timestamp.FromNanoseconds(t_ns)
        self._add(self._channel(image_topic(frame.source_id), CompressedImage), t_ns, image.SerializeToString())
        notes = image_annotations(dets, self.class_names, t_ns)
        self._add(self._channel(annotations_topic(frame.source_id), ImageAnnotations), t_ns, notes.SerializeToString())

    def status(self, message: dict[str, Any]) -> None:
        self._add(self._messages, _stamp_ns(message, "t"), _json(message))

    def end_source(self, source_id: str, last_seq: int, frames: int) -> None:
        message = eos_message(source_id, last_seq, frames)
        self._add(self._messages, _stamp_ns(message, "t_publish"), _json(message))

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._guard(self._writer.finish)
        finally:
            self._file.close()


def _stamp_ns(message: dict[str, Any], key: str) -> int:
    """When a status or end-of-stream message happened, in ns: its own time, else now."""
    value = message.get(key)
    return int((float(value) if isinstance(value, (int, float)) else time.time()) * 1e9)


def _json(message: dict[str, Any]) -> bytes:
    return encode(message)[1]  # the very payload subscribers receive


def image_annotations(dets: Detections, class_names: Sequence[str], t_ns: int) -> Any:
    """Foxglove's `ImageAnnotations` for one frame: each box as a closed outline
    in its track's colour with a label (`#id class`), each pose as its skeleton
    and its visible keypoints. Boxes are the detector's (those the masks and
    keypoints belong to), as in saved videos."""
    from foxglove_schemas_protobuf.ImageAnnotations_pb2 import ImageAnnotations
    from foxglove_schemas_protobuf.PointsAnnotation_pb2 import PointsAnnotation

    out = ImageAnnotations()
    keys = dets.track_ids if dets.track_ids is not None else dets.class_ids
    colors = colors_for(keys)[:, ::-1] / 255.0  # BGR -> RGB in [0, 1]
    for i, (x1, y1, x2, y2) in enumerate(dets.boxes_found.astype(float).tolist()):
        r, g, b = colors[i].tolist()
        box = out.points.add(type=PointsAnnotation.LINE_LOOP, thickness=2)
        box.timestamp.FromNanoseconds(t_ns)
        box.points.extend([_point(x1, y1), _point(x2, y1), _point(x2, y2), _point(x1, y2)])
        box.outline_color.r, box.outline_color.g, box.outline_color.b, box.outline_color.a = r, g, b, 1.0
        class_id = int(dets.class_ids[i])
        name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        text = out.texts.add(text=f"#{keys[i]} {name}" if dets.track_ids is not None else name, font_size=14)
        text.timestamp.FromNanoseconds(t_ns)
        text.position.x, text.position.y = x1, max(y1 - 2, 0)
        text.text_color.r = text.text_color.g = text.text_color.b = text.text_color.a = 1.0
        text.background_color.r, text.background_color.g, text.background_color.b = r, g, b
        text.background_color.a = 0.8
        if dets.keypoints is not None:
            kps = dets.keypoints[i]
            visible = kps[:, 2] >= KEYPOINT_MIN_CONF
            if visible.any():
                limbs = out.points.add(type=PointsAnnotation.LINE_LIST, thickness=2)
                limbs.timestamp.FromNanoseconds(t_ns)
                limbs.outline_color.r, limbs.outline_color.g, limbs.outline_color.b, limbs.outline_color.a = r, g, b, 1
                for a, c in SKELETON:
                    if visible[a] and visible[c]:
                        limbs.points.extend([_point(*kps[a, :2]), _point(*kps[c, :2])])
                joints = out.points.add(type=PointsAnnotation.POINTS, thickness=4)
                joints.timestamp.FromNanoseconds(t_ns)
                joints.outline_color.r = joints.outline_color.g = joints.outline_color.b = 1.0
                joints.outline_color.a = 1.0
                joints.points.extend([_point(*p) for p in kps[visible, :2].tolist()])
    return out


def _point(x: float, y: float) -> Any:
    from foxglove_schemas_protobuf.Point2_pb2 import Point2

    return Point2(x=float(x), y=float(y))
