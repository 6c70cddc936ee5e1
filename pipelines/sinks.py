"""Where results go: ZeroMQ, JSON lines, MOTChallenge text, annotated video.

Every sink receives the processed frames in order and is closed exactly once,
so files are always finalised (the video's index written, text flushed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2

from stream.errors import OutputError
from stream.publisher import Publisher
from stream.types import Detections, Frame
from stream.wire import eos_message
from tracking.mot import format_tracks

from .draw import annotate

log = logging.getLogger(__name__)


def prepare_output(path: str) -> None:
    """Create the parent folder, or fail with a one-line error naming the path."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror} ({Path(path).parent})") from None


class Sink:
    def write(self, frame: Frame, dets: Detections, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def end_source(self, source_id: str, last_seq: int, frames: int) -> None:
        pass

    def status(self, message: dict[str, Any]) -> None:
        """A live source changed state (`stream.wire.status_message`)."""

    def close(self) -> None:
        pass


class PublishSink(Sink):
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any]) -> None:
        self.publisher.publish(message)

    def end_source(self, source_id: str, last_seq: int, frames: int) -> None:
        self.publisher.publish(eos_message(source_id, last_seq, frames))

    def status(self, message: dict[str, Any]) -> None:
        self.publisher.publish(message)

    def close(self) -> None:
        self.publisher.close()


class _TextSink(Sink):
    def __init__(self, path: str) -> None:
        prepare_output(path)
        self.path = path
        try:
            self._file = open(path, "w", encoding="utf-8")
        except OSError as err:
            raise OutputError(f"cannot write {path}: {err.strerror}") from None

    def close(self) -> None:
        self._file.close()


class JsonlSink(_TextSink):
    """One wire message per line: exactly what `segstream subscribe` prints."""

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any]) -> None:
        self._file.write(json.dumps(message, separators=(",", ":")) + "\n")


class MotSink(_TextSink):
    """MOTChallenge results; frame numbers are 1-based (`seq + 1`)."""

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any]) -> None:
        self._file.write(format_tracks(frame.seq + 1, dets))


class VideoSink(Sink):
    """Annotated mp4, opened at the first frame's size."""

    def __init__(self, path: str, fps: float, class_names: Sequence[str]) -> None:
        prepare_output(path)
        self.path = path
        self.fps = fps
        self.class_names = class_names
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (frame.width, frame.height))
            if not self._writer.isOpened():
                raise OutputError(f"cannot write video {self.path}: use a .mp4 path in a writable folder")
        self._writer.write(annotate(frame.image, dets, self.class_names))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


class PerSourceSink(Sink):
    """One file per source (`out-cam0.mp4`, `out-cam1.mp4`) for formats that
    cannot mix sources: videos (frame sizes differ) and MOTChallenge text."""

    def __init__(self, sinks: dict[str, Sink]) -> None:
        self.sinks = sinks

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any]) -> None:
        self.sinks[frame.source_id].write(frame, dets, message)

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


def per_source(path: str, source_ids: Sequence[str], make: Callable[[str, str], Sink]) -> Sink:
    """`make(path, source_id)` for a single source, else one suffixed file per source."""
    if len(source_ids) == 1:
        return make(path, source_ids[0])
    p = Path(path)
    sinks: dict[str, Sink] = {}
    try:
        for sid in source_ids:
            sinks[sid] = make(str(p.with_name(f"{p.stem}-{sid}{p.suffix}")), sid)
    except BaseException:
        PerSourceSink(sinks).close()
        raise
    return PerSourceSink(sinks)


def export_sink(path: str, source_ids: Sequence[str]) -> Sink:
    """JSON lines carry the source in each message; MOTChallenge files get one per source."""
    if path.endswith(".jsonl"):
        return JsonlSink(path)
    return per_source(path, source_ids, lambda p, _sid: MotSink(p))
