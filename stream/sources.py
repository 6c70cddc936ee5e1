"""Frame sources: video files, image folders/globs, webcams and network streams.

Two policies, chosen by the kind of source:

- *Files* (video files, image folders) never drop a frame: the consumer pulls
  at its own pace. With `realtime=True` a file is paced at its native FPS and
  frames are skipped (and counted) when the consumer falls behind, which is
  how a file stands in for a live camera.
- *Live* sources (webcam index or device path, rtsp/http URLs) are read by a thread that
  keeps only the freshest frame. A slow consumer sees gaps in `Frame.seq`
  and a growing `dropped` count, never growing latency.
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import ParseResult, urlparse

import cv2
import numpy as np

from .errors import SourceError
from .picture import Yuv420
from .types import Frame

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
STREAM_SCHEMES = {"rtsp", "rtsps", "http", "https", "rtmp"}
GLOB_CHARS = "*?["
V4L2_DEVICE_PREFIXES = ("/dev/video", "/dev/v4l/")  # Linux cameras by device path
AVI_CHUNK_HEADER = 8  # fourcc and size before each chunk's data
# A video's rotation tag (degrees counter-clockwise) -> the turn that shows it upright, as OpenCV turns it.
UPRIGHT = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


@dataclass(frozen=True)
class StatusEvent:
    """A live source's state change, for the wire (`stream.wire.status_message`)."""

    source_id: str
    status: str  # connected | stalled | reconnecting | ended
    detail: str
    seq: int  # last frame number captured
    t: float  # wall clock
    reconnects: int


class Source:
    """Iterable of `Frame`s. Use as a context manager or call `close()`."""

    source_id: str
    is_live: bool = False
    realtime: bool = False  # a file paced at its FPS, skipping frames when behind, as a camera would
    fps: float | None = None
    frame_count: int | None = None
    reconnects: int = 0
    lost: int = 0  # frames of a file that did not decode (damage), seen as gaps in `seq`
    status: str = "file"  # live sources: connected | stalled | reconnecting | ended
    down_since: float | None = None  # live sources: monotonic time they stopped delivering, if they have
    # Set when the iteration ended early on bad data (a truncated file): the frames
    # before it were good and are delivered; the caller reports this after them.
    problem: str | None = None

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        self.dropped = 0
        self._seq = 0

    @property
    def paced(self) -> bool:
        """Frames come on the source's clock, not the consumer's: a camera, or a
        file played in real time. The pipeline admits them by places inside."""
        return self.is_live or self.realtime

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def interrupt(self) -> None:
        """Make a blocked iteration return soon (called from another thread)."""

    def pop_status(self) -> list[StatusEvent]:
        """State changes since the last call; only live sources have any."""
        return []

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_frame(self, image: np.ndarray | None, pts: float | None = None, seq: int | None = None,
                    yuv: Yuv420 | None = None) -> Frame:
        if seq is None:
            seq = self._seq
            self._seq += 1
        return Frame(image, self.source_id, seq, time.time(), time.monotonic(), pts, yuv)


class VideoFileSource(Source):
    """A video file decoded with FFmpeg (PyAV).

    Frames of 8-bit 4:2:0 video (nearly every camera and encoder) are handed on
    as their decoded planes: the stages take the network input and the boxes'
    pixels from them, and the whole frame is converted to BGR only if something
    asks for `Frame.image` (`stream.picture`). Other formats, and videos with a
    rotation tag, are converted at once; the pixels are those OpenCV's decoder
    gives (same converter, and rotated upright as OpenCV does).
    """

    def __init__(self, path: str, source_id: str, realtime: bool = False) -> None:
        import av  # here, not at import: `segstream.stream` stays light for subscribers

        super().__init__(source_id)
        self.path = path
        self.realtime = realtime
        self._av_error = av.error.FFmpegError
        try:
            self._container = av.open(path)
            self._stream = self._container.streams.video[0]
        except (av.error.FFmpegError, IndexError, UnicodeDecodeError) as err:
            if getattr(self, "_container", None) is not None:
                self._container.close()
            raise SourceError(f"cannot decode video file {path}: not a video, or a codec FFmpeg cannot read") from err
        # Slice threads only: frame threads cost more CPU per frame (bench/cpu_side.py: 10.5 -> 9.7 ms
        # at 1080p with 8 sources on 2 cores), and several sources already keep the cores busy.
        self._stream.thread_type = "SLICE"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate and rate > 0 else None
        self.frame_count = self._stream.frames or None
        self._lost_ranges: list[tuple[int, int]] = []
        self._frame_at: dict[int, int] = {}
        self._numbering = self._frame_numbering()

    def _frame_numbering(self) -> tuple[int, int] | None:
        """(pts of frame 0, pts step) when a frame's place in the file can be read from its pts.

        A decoder that skips damaged data would otherwise number every later frame too low.
        An AVI demuxer numbers the packets it reads, so its index is used instead: a packet
        found at an indexed position gets that frame's number as its pts (the index points at
        a chunk's 8-byte header, a packet at its data). MP4 and MOV keep each sample's time
        in their index: when those are evenly spaced, pts / step is the frame's place. Other
        containers (and variable frame rate) are numbered by counting decoded frames.
        """
        index = self._stream.index_entries
        if "avi" in self._container.format.name.split(","):
            self._frame_at = {entry.pos + AVI_CHUNK_HEADER: entry.timestamp for entry in index}
            return (0, 1) if self._frame_at else None
        if self.frame_count is None or len(index) != self.frame_count or len(index) < 2:
            return None
        steps = np.diff(np.fromiter((entry.timestamp for entry in index), np.int64, len(index)))
        start = self._stream.start_time
        if start is None or steps[0] <= 0 or not (steps == steps[0]).all():
            return None
        return int(start), int(steps[0])

    def _decoded(self) -> Iterator[Any]:
        """The file's frames; a packet FFmpeg cannot decode is skipped, as OpenCV's decoder does."""
        try:
            for packet in self._container.demux(self._stream):
                number = self._frame_at.get(packet.pos) if self._frame_at else None
                if number is not None:
                    packet.pts = packet.dts = number
                try:
                    yield from packet.decode()
                except self._av_error as err:
                    log.debug("%s: a packet did not decode: %s", self.path, err)
        except self._av_error as err:  # the container itself is damaged: the frames so far stand
            log.debug("%s: demuxing stopped: %s", self.path, err)

    def _place(self, decoded: Any) -> int | None:
        """The frame's number in the file, or None where frames are numbered by counting."""
        if self._numbering is None or decoded.pts is None:
            return None
        first, step = self._numbering
        return round((decoded.pts - first) / step)

    def _frame(self, decoded: Any, seq: int | None) -> Frame:
        pts = float(decoded.time) if decoded.time is not None else None
        if seq is not None:
            self._seq = seq + 1
        if decoded.format.name == "yuv420p" and not decoded.rotation and decoded.color_range != 2:  # 2: full range
            y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in decoded.planes)
            picture = Yuv420(y, u, v, partial(decoded.to_ndarray, format="bgr24", interpolation="BICUBIC"))
            return self._make_frame(None, pts, seq, yuv=picture)
        image = decoded.to_ndarray(format="bgr24", interpolation="BICUBIC")
        if decoded.rotation % 360 in UPRIGHT:
            image = cv2.rotate(image, UPRIGHT[decoded.rotation % 360])
        return self._make_frame(image, pts, seq)

    def __iter__(self) -> Iterator[Frame]:
        interval = 1.0 / self.fps if (self.realtime and self.fps) else 0.0
        t0 = time.monotonic()
        index = 0
        for decoded in self._decoded():
            seq = self._place(decoded)
            if seq is not None and seq < self._seq:
                # After damage a decoder may still hand out frames from before the place it
                # resumed at (seen with H.264 in MP4): numbers only go forward, so they are dropped.
                log.debug("%s: frame %d came after frame %d; dropped", self.path, seq, self._seq - 1)
                continue
            if seq is not None and seq > self._seq:  # frames between did not decode
                self.lost += seq - self._seq
                self._lost_ranges.append((self._seq, seq - 1))
                self._seq = seq
            if interval:
                lag = time.monotonic() - (t0 + index * interval)
                if lag < 0:
                    time.sleep(-lag)
                elif lag > interval:  # behind the file's clock: skip the frame (decoded, never converted)
                    index += 1
                    self._seq += 1
                    self.dropped += 1
                    continue
            index += 1
            yield self._frame(decoded, seq)
        if index == 0:
            raise SourceError(f"cannot decode video file {self.path}: no frame could be read (corrupt or empty)")
        missing_tail = self.frame_count is not None and index + self.lost < self.frame_count - 1  # may overstate by 1
        if self.lost:
            spans = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in self._lost_ranges[:5])
            more = f" and {len(self._lost_ranges) - 5} more stretches" if len(self._lost_ranges) > 5 else ""
            tail = f", and it ends after frame {self._seq - 1}: truncated" if missing_tail else ""
            self.problem = (f"video file {self.path}: {self.lost} of its {self.frame_count} frames did not decode "
                            f"(damaged: frames {spans}{more}){tail}; the outputs hold the {index} that did, "
                            "numbered by their place in the file")
        elif missing_tail:
            # Damage in a file whose frames cannot be placed (see _frame_numbering) also ends up here:
            # FFmpeg skips what it cannot decode and goes on, so the outputs hold every frame that decoded.
            self.problem = (f"video file {self.path} gave {index} of the {self.frame_count} frames its "
                            f"header lists: truncated, or frames lost to damage; the outputs hold the "
                            f"{index} that decoded")
        if self.problem:
            log.debug(self.problem)  # reported once, by whoever iterates (the pipeline: at the end)

    def close(self) -> None:
        self._container.close()


class ImageFolderSource(Source):
    """Still images from a folder, a glob pattern or a single image file, in name order."""

    def __init__(self, files: list[str], source_id: str, origin: str) -> None:
        super().__init__(source_id)
        if not files:
            raise SourceError(f"no images found in {origin}: expected files ending in {', '.join(sorted(IMAGE_EXTENSIONS))}")
        self.files = files
        self.frame_count = len(files)

    def __iter__(self) -> Iterator[Frame]:
        for seq, path in enumerate(self.files):  # a frame's number is its place in the sorted list
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                log.warning("skipping %s: not a readable image", path)
                self.dropped += 1
                continue  # a gap in the numbers, as for any frame that is not there
            yield self._make_frame(image, seq=seq)


CLOSE_WAIT_S = 0.5  # how long closing a live source waits for its reader thread


class LiveSource(Source):
    """A webcam or network stream read by a background thread.

    The thread overwrites a one-frame slot, so the consumer always gets the
    freshest frame. Frames overwritten before being consumed count as dropped.

    When the connection is lost (the read fails at once) or stalls (no frame
    for `read_timeout` seconds while the connection stays open), the thread
    reopens the source with `opener`, waiting `backoff[0]` seconds and doubling
    up to `backoff[1]`, until it succeeds or the source is closed; frame
    numbers continue where they stopped. Every change of state is queued as a
    `StatusEvent` (`pop_status()`), the first being `connected`. With
    `reconnect=False` a lost connection ends the iteration and a stall raises
    `SourceError` in the consumer.
    """

    is_live = True

    def __init__(
        self,
        cap: cv2.VideoCapture | None,
        source_id: str,
        name: str,
        read_timeout: float,
        opener: Callable[[], cv2.VideoCapture] | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        super().__init__(source_id)
        self.name = name
        self.read_timeout = read_timeout
        self.reconnect = reconnect and opener is not None
        self.backoff = backoff
        self.reconnects = 0
        self.status = ""
        fps = cap.get(cv2.CAP_PROP_FPS) if cap is not None else 0.0
        self.fps = fps if fps and 0 < fps < 1000 else None
        self._cap = cap
        self._opener = opener
        self._events: collections.deque[StatusEvent] = collections.deque()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._ended = False
        self._closing = threading.Event()
        if cap is not None:
            self._set_status("connected", "opened")
        self._thread = threading.Thread(target=self._read_loop, name=f"capture-{source_id}", daemon=True)
        self._thread.start()

    def pop_status(self) -> list[StatusEvent]:
        """State changes since the last call, oldest first (thread-safe)."""
        events = []
        while self._events:
            events.append(self._events.popleft())
        return events

    def _set_status(self, status: str, detail: str) -> None:
        if status == "connected":
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.monotonic()  # stalled, reconnecting or ended since then
        self.status = status
        event = StatusEvent(self.source_id, status, detail, self._seq - 1, time.time(), self.reconnects)
        self._events.append(event)
        level = logging.INFO if status in ("connected", "ended") else logging.WARNING
        log.log(level, "%s: %s (%s)", self.name, status, detail)

    def _read_loop(self) -> None:
        try:
            if self._cap is None and not self._reopen():  # not reachable at start: keep trying
                return
            while not self._closing.is_set():
                started = time.monotonic()
                ok, image = self._cap.read()
                # FFmpeg gives up a blocked read after `read_timeout` (and may still
                # hand back a stale frame): a read that slow means the stream stalled.
                stalled = time.monotonic() - started >= 0.8 * self.read_timeout
                if ok and not (stalled and self.reconnect):
                    self._offer(self._make_frame(image))
                    continue
                if self._closing.is_set() or not self.reconnect:
                    break
                if stalled:
                    self._set_status("stalled", f"no frame for {self.read_timeout:g} s")
                if not self._reopen():
                    break
        finally:
            if self._cap is not None:
                self._cap.release()
            self._set_status("ended", "closed" if self._closing.is_set() else "stream ended")
            with self._cond:
                self._ended = True
                self._cond.notify()

    def _offer(self, frame: Frame) -> None:
        with self._cond:
            if self._latest is not None:
                self.dropped += 1
            self._latest = frame
            self._cond.notify()

    def _reopen(self) -> bool:
        """Retry with capped exponential backoff until reconnected (True) or closed (False)."""
        assert self._opener is not None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        delay, attempt = self.backoff[0], 0
        while True:
            attempt += 1
            self._set_status("reconnecting", f"attempt {attempt}, next in {delay:.1f} s")
            if self._closing.wait(delay):
                return False
            cap = self._opener()
            if cap.isOpened():
                self._cap = cap
                self.reconnects += 1
                self._set_status("connected", f"reconnected after {attempt} attempt(s)")
                return True
            cap.release()
            delay = min(delay * 2, self.backoff[1])

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                ready = lambda: self._latest is not None or self._ended or self._closing.is_set()  # noqa: E731
                if not self._cond.wait_for(ready, self.read_timeout):
                    if self.reconnect:
                        continue  # the reader thread is reconnecting; it reports the state
                    raise SourceError(f"{self.name} stalled: no frame for {self.read_timeout:.0f} s")
                if self._closing.is_set():
                    return
                frame, self._latest = self._latest, None
            if frame is None:
                return
            yield frame

    def interrupt(self) -> None:
        self._closing.set()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        self.interrupt()
        # The reader may be blocked inside FFmpeg's open or read of a stalled camera,
        # which only returns after `read_timeout`. A stop must not wait for that: the
        # reader is a daemon thread that releases the capture itself when the read
        # returns, and sees `_closing` then.
        self._thread.join(timeout=CLOSE_WAIT_S)


def _open_live(
    opener: Callable[[], cv2.VideoCapture], source_id: str, name: str, timeout: float, reconnect: bool,
    wait_for_live: bool, problem: str,
) -> LiveSource:
    cap = opener()
    if cap.isOpened():
        return LiveSource(cap, source_id, name, timeout, opener, reconnect)
    cap.release()
    if not (wait_for_live and reconnect):
        raise SourceError(problem)
    log.warning("%s; retrying in the background", problem)
    return LiveSource(None, source_id, name, timeout, opener, reconnect=True)


def _open_stream(url: str, rtsp_transport: str, timeout: float, open_timeout: float) -> cv2.VideoCapture:
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(timeout * 1000)]
    key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
    previous = os.environ.get(key)
    if url.startswith("rtsp"):
        # OpenCV's FFmpeg backend reads its demuxer options from this variable at open time.
        os.environ[key] = f"rtsp_transport;{rtsp_transport}"
    try:
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def open_source(
    spec: str,
    source_id: str | None = None,
    realtime: bool = False,
    rtsp_transport: str = "tcp",
    timeout: float = 10.0,
    reconnect: bool = True,
    wait_for_live: bool = False,
    open_timeout: float | None = None,
) -> Source:
    """Open a source from what a user types after `--source`.

    A stream URL gets `open_timeout` seconds (default `timeout`) to open and
    then counts as stalled after `timeout` seconds without a frame: a camera
    slow to answer need not make stalls slow to notice.

    `spec` is a webcam index ("0"), a URL (rtsp://, http://, ...), a video
    file, an image file, a folder of images or a glob ("frames/*.jpg").
    A live source must open now (else `SourceError`) unless `wait_for_live`,
    which starts it unconnected and retrying (one dead camera among several
    must not stop the others); later losses are reconnected (see
    `LiveSource`) unless `reconnect` is False.
    """
    source_id = source_id or default_source_id(spec)
    kind = source_kind(spec)
    if kind == "webcam":
        # A device path (/dev/v4l/by-id/..., stable across reboots, unlike indices) goes to V4L2 by name.
        opener = partial(cv2.VideoCapture, int(spec)) if spec.isdigit() else partial(cv2.VideoCapture, spec, cv2.CAP_V4L2)
        problem = f"cannot open webcam {spec}: no such camera or it is busy; list cameras with `v4l2-ctl --list-devices`"
        return _open_live(opener, source_id, f"webcam {spec}", timeout, reconnect, wait_for_live, problem)
    if kind == "stream":
        if stream_url(spec).scheme.lower() not in STREAM_SCHEMES:
            raise SourceError(f"unsupported source URL {redact(spec)}: scheme must be one of "
                              f"{', '.join(sorted(STREAM_SCHEMES))}")
        opener = partial(_open_stream, spec, rtsp_transport, timeout, open_timeout or timeout)
        problem = f"cannot open stream {redact(spec)}: unreachable or wrong URL; check host, port, path and credentials"
        return _open_live(opener, source_id, f"stream {redact(spec)}", timeout, reconnect, wait_for_live, problem)
    if kind == "glob":
        files = sorted(f for f in glob.glob(spec) if Path(f).suffix.lower() in IMAGE_EXTENSIONS)
        return ImageFolderSource(files, source_id, spec)
    path = Path(spec)
    if path.is_dir():
        files = sorted(str(f) for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        return ImageFolderSource(files, source_id, spec)
    from .recorded import MCAP_SUFFIX, McapSource, split_spec  # here: recorded.py builds on this module

    recording, _ = split_spec(spec)
    if recording.lower().endswith(MCAP_SUFFIX) and Path(recording).is_file():
        return McapSource(spec, source_id, realtime)
    if not path.exists():
        raise SourceError(f"no such file: {spec} (give a video file, image folder, glob, webcam index or stream URL)")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFolderSource([spec], source_id, spec)
    return VideoFileSource(spec, source_id, realtime)


def source_kind(spec: str) -> str:
    """What a `--source` spec names: "webcam" (an index or a V4L2 device path),
    "stream" (a URL), "glob" (a pattern of image files) or "path" (a video,
    image or folder)."""
    if spec.isdigit() or spec.startswith(V4L2_DEVICE_PREFIXES):
        return "webcam"
    if "://" in spec:
        return "stream"
    if any(ch in spec for ch in GLOB_CHARS):
        return "glob"
    return "path"


SECRET_QUERY_KEY = re.compile(r"pass|pwd|token|secret|key|auth|sig", re.IGNORECASE)


def redact(spec: str) -> str:
    """A source spec as it may be shown (logs, errors, status messages): an
    URL's password and secret-looking query values (`password=`, `token=`,
    `key=`...) replaced by `***`. Anything else is returned as it is."""
    if "://" not in spec:
        return spec
    scheme, _, rest = spec.partition("://")
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.split(':', 1)[0]}:***@{host}"
    path, question, query = tail.partition("?")
    if question:
        pairs = [pair.split("=", 1) for pair in query.split("&")]
        query = "&".join(f"{p[0]}=***" if len(p) == 2 and SECRET_QUERY_KEY.search(p[0]) else "=".join(p) for p in pairs)
    return f"{scheme}://{authority}{slash}{path}{question}{query}"


def stream_url(spec: str) -> ParseResult:
    """A stream source's URL, parsed; a malformed one (an unclosed IPv6
    bracket, say) is a `SourceError` naming it rather than a traceback."""
    try:
        return urlparse(spec)
    except ValueError as err:
        raise SourceError(f"malformed source URL {redact(spec)}: {err}; expected e.g. rtsp://user:pass@host:554/path") from None


def local_path(spec: str) -> Path | None:
    """The file or folder a source spec names, as `open_source` reads it; None
    for a webcam index, a stream URL or a glob, which only opening can check."""
    return Path(spec) if source_kind(spec) == "path" else None


def default_source_id(spec: str) -> str:
    """A short, topic-safe id: the file stem, 'cam0', the device's name, or the URL's host and path."""
    kind = source_kind(spec)
    if spec.isdigit():
        return f"cam{spec}"
    if kind == "webcam":
        raw = Path(spec).name  # video0, usb-Logitech_HD_Webcam_C270-video-index0
    elif kind == "stream":
        parsed = stream_url(spec)
        raw = (parsed.hostname or "") + parsed.path
    elif (recorded := _recorded_id(spec)) is not None:
        raw = recorded  # a recording runs again under the id it was recorded with
    else:
        raw = Path(spec.rstrip("/*")).stem or "source"
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in raw).strip("_")
    return cleaned or "source"


def _recorded_id(spec: str) -> str | None:
    """The source a recording spec (`run.mcap`, `run.mcap#cam0`) names, if it names one."""
    from .recorded import MCAP_SUFFIX, RecordingError, recorded_sources, split_spec

    path, chosen = split_spec(spec)
    if not path.lower().endswith(MCAP_SUFFIX):
        return None
    if chosen is not None:
        return chosen
    try:
        ids = recorded_sources(path)
    except (RecordingError, OSError):
        return None  # opening it says what is wrong
    return ids[0] if len(ids) == 1 else None
