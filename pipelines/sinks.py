"""Where results go: ZeroMQ, JSON lines, MOTChallenge text, annotated video.

Every sink receives the processed frames in order and is closed exactly once,
so files are always finalised (the video's index written, text flushed).
"""

from __future__ import annotations

import json
import logging
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from ..stream.errors import OutputError
from ..stream.publisher import Publisher
from ..stream.types import Detections, Frame
from ..stream.wire import eos_message
from ..tracking.mot import format_tracks
from .draw import Trails, annotate, legend_entries

log = logging.getLogger(__name__)


def prepare_output(path: str) -> None:
    """Create the parent folder and check that `path` can be opened for
    writing, before the first frame, or fail with a one-line error naming the
    path (a folder, a read-only place, a file system like /proc)."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name in it")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror} ({p.parent})") from None
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror}") from None
    if not existed:
        p.unlink(missing_ok=True)  # only a probe: the sink creates it at its first frame


class Sink:
    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        """One processed frame: its detections, its wire message, and its panoptic
        (else semantic) label map when a semantic model runs."""
        raise NotImplementedError

    def end_source(self, source_id: str, last_seq: int, frames: int) -> None:
        pass

    def status(self, message: dict[str, Any]) -> None:
        """A live source changed state (`stream.wire.status_message`)."""

    def joined(self) -> bool:
        """Whether a reader arrived since the last call, who must be told each source's state."""
        return False

    def close(self) -> None:
        pass


class PublishSink(Sink):
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        self.publisher.publish(message)

    def end_source(self, source_id: str, last_seq: int, frames: int) -> None:
        self.publisher.publish(eos_message(source_id, last_seq, frames))

    def status(self, message: dict[str, Any]) -> None:
        self.publisher.publish(message)

    def joined(self) -> bool:
        return self.publisher.joined() > 0

    def close(self) -> None:
        self.publisher.close()


class _TextSink(Sink):
    def __init__(self, path: str, append: bool = False) -> None:
        prepare_output(path)
        self.path = path
        try:
            # Line-buffered: every frame's lines reach the file as written, so a killed
            # run leaves an export that is valid up to its last frame (and a restarted
            # worker appends after them).
            self._file = open(path, "a" if append else "w", encoding="utf-8", buffering=1)
        except OSError as err:
            raise OutputError(f"cannot write {path}: {err.strerror}") from None

    def _write(self, text: str) -> None:
        try:
            self._file.write(text)
        except OSError as err:  # a full disk, a removed drive
            raise OutputError(f"cannot write {self.path}: {err.strerror}") from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as err:
            raise OutputError(f"cannot write {self.path}: {err.strerror}") from None


class JsonlSink(_TextSink):
    """One wire message per line: exactly what `segstream subscribe` prints."""

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        self._write(json.dumps(message, separators=(",", ":")) + "\n")


class MotSink(_TextSink):
    """MOTChallenge results; frame numbers are 1-based (`seq + 1`)."""

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        self._write(format_tracks(frame.seq + 1, dets))


class VideoSink(Sink):
    """Annotated video (PyAV), opened at the first frame's size.

    H.264 (libx264, in PyAV's wheels), which browsers, phones and video tools
    all play, where MPEG-4 part 2 plays in few of them; `ultrafast` and
    `zerolatency` (no B-frames, no look-ahead: each frame is written as it
    comes) cost about as much as MPEG-4 part 2 did. A PyAV built without
    libx264 gets MPEG-4 part 2.

    MP4 files are written fragmented (a key frame and a fragment every second),
    so a run that is killed outright, power cut included, still leaves a file
    that plays up to its last second; `close()` finishes it cleanly.

    Each frame is stamped with when it happened, so the video plays at the
    speed of the scene however many frames the pipeline kept: a file's frame
    by its number at the file's rate (`--realtime` skips leave gaps), a live
    frame by its capture time (a 30 fps camera processed at 15 FPS gives a
    video that lasts as long as the run, not half of it; a reconnect holds
    the last picture)."""

    LIVE_TIME_BASE = Fraction(1, 1000)  # capture times in milliseconds (MPEG-4 allows up to 1/65535)
    CODEC_OPTIONS = {
        "libx264": {"preset": "ultrafast", "tune": "zerolatency", "crf": "23"},
        "mpeg4": {"b": "4M"},
    }

    FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}

    def __init__(self, path: str, fps: float, class_names: Sequence[str], live: bool = False, trails: int = 0) -> None:
        prepare_output(path)
        self.path = path
        self._trails = Trails(trails) if trails else None
        self.fps = fps
        self.class_names = class_names
        self.live = live
        self._rate = Fraction(fps).limit_denominator(1001)
        self._time_base = self.LIVE_TIME_BASE if live else 1 / self._rate
        self._container: Any = None
        self._stream: Any = None
        self._resized = False  # warned that frames changed size
        self._start: float = 0.0  # the first frame's seq (files) or capture time (live)
        self._last_pts = -1

    def _open(self, width: int, height: int) -> None:
        import av

        options = self.FRAGMENTED if Path(self.path).suffix.lower() in (".mp4", ".m4v", ".mov") else {}
        codec = next(c for c in self.CODEC_OPTIONS if c == "mpeg4" or c in av.codecs_available)
        try:
            self._container = av.open(self.path, "w", options=options)
            stream = self._container.add_stream(codec, rate=self._rate)
        except (av.FFmpegError, ValueError) as err:
            raise OutputError(f"cannot write video {self.path}: {err}; use a .mp4 path in a writable folder") from None
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = self._time_base
        # a key frame, hence a fragment, every second
        stream.options = {**self.CODEC_OPTIONS[codec], "g": str(max(1, round(self.fps)))}
        self._stream = stream
        log.debug("%s: %s, %dx%d", self.path, codec, width, height)

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        import av

        if self._container is None:
            self._open(frame.width - frame.width % 2, frame.height - frame.height % 2)  # yuv420p needs even sizes
            self._start = frame.t_mono if self.live else frame.seq
        paths = self._trails.update(dets) if self._trails else None
        legend = legend_entries(labels, message) if labels is not None else None
        image = self._fit(annotate(frame.image, dets, self.class_names, labels=labels, trails=paths, legend=legend))
        # cv2 converts to the encoder's YUV 4:2:0 (BT.601, limited range, as FFmpeg's
        # own conversion) in 0.5 ms a 1080p frame; PyAV's swscale took 4.
        picture = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        picture.pts = self._pts(frame)
        picture.time_base = self._time_base
        for packet in self._stream.encode(picture):
            self._container.mux(packet)

    def _pts(self, frame: Frame) -> int:
        """The frame's time in the video's time base, always after the previous one."""
        if self.live:
            pts = round((frame.t_mono - self._start) / self._time_base)
        else:
            pts = frame.seq - int(self._start)
        self._last_pts = max(pts, self._last_pts + 1)
        return self._last_pts

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """The video keeps its first frame's size: an odd row or column is cut off
        (yuv420p), and a frame of another size (a camera that came back from a
        reconnect at another resolution) is scaled whole, not cropped."""
        h, w = self._stream.height, self._stream.width
        if image.shape[0] - h in (0, 1) and image.shape[1] - w in (0, 1):
            return image[:h, :w]
        if not self._resized:
            log.warning("%s: frames are now %dx%d; the video keeps %dx%d and scales them",
                        self.path, image.shape[1], image.shape[0], w, h)
            self._resized = True
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():  # flush the encoder
                self._container.mux(packet)
            self._container.close()
            self._container = None


class SegmentedSink(Sink):
    """One output cut into parts of `seconds` each, so a service that runs for
    weeks leaves files that can be opened, moved and deleted one by one
    instead of one that grows without end.

    Live sources are cut on the wall clock at multiples of `seconds` (every
    10 minutes: at :00, :10, ...) and each part is named after the UTC time
    it starts, `out-20261126T021000Z.mp4`; files are cut on their own time and
    parts numbered, `out-part0001.mp4` (the second `seconds` of the video). A
    part opens at its first frame, so a camera that is down leaves no empty
    file; parts never go back, even when several sources share the output."""

    def __init__(self, path: str, seconds: float, live: bool, make: Callable[[str], Sink]) -> None:
        self.path = Path(path)
        self.seconds = seconds
        self.live = live
        self.make = make
        self._sink: Sink | None = None
        self._part = -1

    def part_path(self, part: int) -> str:
        if self.live:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(part * self.seconds))
            return str(self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}"))
        return str(self.path.with_name(f"{self.path.stem}-part{part:04d}{self.path.suffix}"))

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        t = frame.t_capture if self.live or frame.pts is None else frame.pts
        part = int(t // self.seconds)
        if part > self._part or self._sink is None:
            self.close()
            self._part = max(part, self._part)
            path = self.part_path(self._part)
            log.info("writing %s", path)
            self._sink = self.make(path)
        self._sink.write(frame, dets, message, labels)

    def end_source(self, source_id: str, last_seq: int, frames: int) -> None:
        if self._sink is not None:
            self._sink.end_source(source_id, last_seq, frames)

    def status(self, message: dict[str, Any]) -> None:
        if self._sink is not None:
            self._sink.status(message)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None


class PerSourceSink(Sink):
    """One file per source (`out-cam0.mp4`, `out-cam1.mp4`) for formats that
    cannot mix sources: videos (frame sizes differ) and MOTChallenge text."""

    def __init__(self, sinks: dict[str, Sink]) -> None:
        self.sinks = sinks

    def write(self, frame: Frame, dets: Detections, message: dict[str, Any], labels: np.ndarray | None = None) -> None:
        self.sinks[frame.source_id].write(frame, dets, message, labels)

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


def per_source(
    path: str, source_ids: Sequence[str], make: Callable[[str, str], Sink], run_source_ids: Sequence[str] | None = None,
) -> Sink:
    """`make(path, source_id)` for a single source, else one suffixed file per
    source; `run_source_ids`, every source of the run when this process has only
    some of them (a worker), decides the names."""
    if len(run_source_ids or source_ids) == 1:
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


def segmented(path: str, seconds: float | None, live: bool, make: Callable[[str], Sink]) -> Sink:
    """`make(path)`, or with `seconds` a `SegmentedSink` of such parts."""
    return SegmentedSink(path, seconds, live, make) if seconds else make(path)


def export_sink(
    path: str, live: dict[str, bool], segment_s: float | None = None, run_source_ids: Sequence[str] | None = None,
    append: bool = False,
) -> Sink:
    """JSON lines carry the source in each message; MOTChallenge files get one per source.
    `live` says of each source id whether it is live (how parts are cut); `append`
    continues the files of a worker that was restarted."""
    def text(kind: type[_TextSink]) -> Callable[[str], Sink]:
        return lambda p: kind(p, append=append)

    if path.endswith(".jsonl"):
        return segmented(path, segment_s, any(live.values()), text(JsonlSink))
    return per_source(path, list(live), lambda p, sid: segmented(p, segment_s, live[sid], text(MotSink)),
                      run_source_ids)
