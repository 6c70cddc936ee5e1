"""Recordings of a run (MCAP, what `segstream run --record` writes), read back.

A recording holds, per source, the frames as JPEG on `/<source>/image`
(`foxglove.CompressedImage`) and boxes, ids and keypoints on
`/<source>/annotations` (`foxglove.ImageAnnotations`), so Foxglove shows the
run; and every published wire message, in publishing order, on
`/segstream/messages` (JSON, `stream/SCHEMA.md`). A frame's wire message is
written just before its image: the image is the frame, the message says
which frame it was (`seq`, `pts`, capture times).

Read back, a recording is a source (`McapSource`: the pipeline runs again on
the recorded frames, with another tracker, other thresholds or another
model) or a stream of messages (`iter_messages`: `segstream replay`). A run
that was killed leaves a file without its index; it is read up to its last
complete chunk. Reading is bounded: no record may exceed `RECORD_LIMIT`, and
anything malformed ends in `RecordingError`.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from .errors import SourceError
from .sources import Source
from .types import Frame
from .wire import WireError, decode_payload

log = logging.getLogger(__name__)

METADATA_NAME = "segstream"  # written first: which sources the file holds
MESSAGES_TOPIC = "/segstream/messages"
RECORD_LIMIT = 256 << 20  # bytes: a chunk of a 4K recording is a few MB
MCAP_SUFFIX = ".mcap"


def image_topic(source_id: str) -> str:
    return f"/{source_id}/image"


def annotations_topic(source_id: str) -> str:
    return f"/{source_id}/annotations"


class RecordingError(SourceError):
    """A recording that cannot be read: not MCAP, not segstream's, or damaged where it matters."""


@dataclass
class Recorded:
    """One message of a recording: its topic, when it was logged (ns since the epoch) and its bytes."""

    topic: str
    log_time_ns: int
    data: bytes


def _read_errors() -> tuple[type[BaseException], ...]:
    from mcap.exceptions import McapError

    return McapError, struct.error, ValueError, KeyError, OSError, MemoryError


def recorded_sources(path: str) -> list[str]:
    """The source ids a segstream recording holds, from its first records."""
    from mcap.records import Metadata
    from mcap.stream_reader import StreamReader

    try:
        with open(path, "rb") as f:
            for i, record in enumerate(StreamReader(f, record_size_limit=RECORD_LIMIT).records):
                if isinstance(record, Metadata) and record.name == METADATA_NAME:
                    return [s for s in record.metadata.get("sources", "").split(",") if s]
                if i >= 8:
                    break
    except _read_errors() as err:
        raise RecordingError(f"cannot read recording {path}: not an MCAP file, or damaged ({err})") from None
    raise RecordingError(f"cannot read recording {path}: not a segstream recording (no '{METADATA_NAME}' "
                         "metadata); record one with `segstream run --record FILE.mcap`")


def iter_recording(path: str, topics: list[str] | None = None) -> Iterator[Recorded]:
    """The messages of `topics` (all by default) in the order they were
    written. A file cut short (a killed run) ends at its last whole chunk,
    with a warning; damage before that raises `RecordingError`. No record,
    and no chunk once decompressed, may exceed `RECORD_LIMIT`: a small file
    cannot ask for gigabytes."""
    from mcap.exceptions import EndOfFile
    from mcap.reader import breakup_chunk
    from mcap.records import Channel, Chunk, Message
    from mcap.stream_reader import StreamReader

    wanted = set(topics) if topics else None
    channels: dict[int, str] = {}
    count = 0
    try:
        with open(path, "rb") as f:
            for record in StreamReader(f, emit_chunks=True, record_size_limit=RECORD_LIMIT).records:
                if isinstance(record, Chunk):
                    if record.uncompressed_size > RECORD_LIMIT:
                        raise RecordingError(f"cannot read recording {path}: a chunk declares "
                                             f"{record.uncompressed_size} bytes, over the {RECORD_LIMIT} limit")
                    inner = breakup_chunk(record)
                else:
                    inner = [record]
                for item in inner:
                    if isinstance(item, Channel):
                        channels[item.id] = item.topic
                    elif isinstance(item, Message):
                        topic = channels.get(item.channel_id)
                        if topic is not None and (wanted is None or topic in wanted):
                            count += 1
                            yield Recorded(topic, item.log_time, item.data)
    except (EndOfFile, struct.error) as err:
        if count == 0:
            raise RecordingError(f"cannot read recording {path}: it ends before its first message ({err})") from None
        log.warning("recording %s ends early (the run that wrote it was stopped hard): read up to its last "
                    "complete chunk, %d messages", path, count)
    except RecordingError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure to decode outside input is one error type
        raise RecordingError(f"cannot read recording {path}: damaged after {count} messages ({err})") from None


def split_spec(spec: str) -> tuple[str, str | None]:
    """`run.mcap#cam0` -> ("run.mcap", "cam0"); a plain path has no source."""
    path, hash_, source = spec.rpartition("#")
    if hash_ and path.lower().endswith(MCAP_SUFFIX):
        return path, source
    return spec, None


def expand_recordings(specs: list[str]) -> list[str]:
    """Each recording of several sources becomes one spec per source
    (`run.mcap#cam0`, `run.mcap#cam1`), so every recorded camera runs again."""
    out = []
    for spec in specs:
        path, source = split_spec(spec)
        if source is None and path.lower().endswith(MCAP_SUFFIX) and Path(path).is_file():
            ids = recorded_sources(path)
            out += [f"{path}#{sid}" for sid in ids] if len(ids) > 1 else [spec]
        else:
            out.append(spec)
    return out


class McapSource(Source):
    """The frames one source recorded (see the module's docstring), with their
    recorded `seq`, `pts` and capture times; `realtime` replays them at the
    pace they were captured, else as fast as the pipeline takes them."""

    def __init__(self, spec: str, source_id: str | None = None, realtime: bool = False) -> None:
        path, chosen = split_spec(spec)
        ids = recorded_sources(path)
        if chosen is None and len(ids) == 1:
            chosen = ids[0]
        if chosen not in ids:
            raise RecordingError(f"recording {path} holds {', '.join(ids) or 'no source'}: "
                                 f"choose one as {path}#{ids[0] if ids else 'SOURCE'}")
        super().__init__(source_id or chosen)
        self.path, self.recorded_id, self.realtime = path, chosen, realtime

    def __iter__(self) -> Iterator[Frame]:
        topics = [MESSAGES_TOPIC, image_topic(self.recorded_id)]
        pending: dict[str, Any] | None = None  # the wire message of the frame whose image comes next
        start: tuple[float, float] | None = None  # (first capture time, monotonic clock then)
        count = 0
        for item in iter_recording(self.path, topics):
            if item.topic == MESSAGES_TOPIC:
                message = message_of(item, self.path)
                if message.get("type") == "frame" and message.get("source") == self.recorded_id:
                    pending = message
                continue
            if pending is None:
                continue  # an image without its message
            image = cv2.imdecode(np.frombuffer(_jpeg(item.data), np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise RecordingError(f"recording {self.path}: frame {pending.get('seq')} of "
                                     f"{self.recorded_id} is not a readable JPEG")
            t_capture = float(pending["t_capture"])  # a checked frame message has it, and its seq
            if self.realtime:
                if start is None:
                    start = (t_capture, time.monotonic())
                delay = (t_capture - start[0]) - (time.monotonic() - start[1])
                if delay > 0:
                    time.sleep(delay)
            count += 1
            pts = pending.get("pts")
            yield self._make_frame(image, float(pts) if isinstance(pts, (int, float)) else None, pending["seq"])
            pending = None
        if count == 0:
            raise RecordingError(f"recording {self.path} holds no frame of {self.recorded_id}")


def message_of(item: Recorded, path: str) -> dict[str, Any]:
    """A recorded wire message, checked as a subscriber checks it (`wire.decode_payload`)."""
    try:
        return decode_payload(item.data)
    except WireError as err:
        raise RecordingError(f"recording {path}: a message is malformed ({err})") from None


def _jpeg(data: bytes) -> bytes:
    """The picture of a serialised `foxglove.CompressedImage`."""
    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
    from google.protobuf.message import DecodeError

    image = CompressedImage()
    try:
        image.ParseFromString(data)
    except DecodeError as err:
        raise RecordingError(f"a recorded image is damaged ({err})") from None
    return image.data
