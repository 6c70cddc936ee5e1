"""The multi-stage pipeline: capture -> preprocess -> infer -> postprocess -> track -> publish.

Each stage runs in its own thread, joined by small bounded queues, so
decoding, pre/post-processing, tracking and publishing overlap inference.
Only the entry of a live source drops frames (keeping the freshest), and a
live source takes a new frame only while it has one of its share of the
`live_in_flight` places inside free, so none waits behind a queue-full of
older ones; after that every queue applies back-pressure. A failing stage
sets the abort event, every other thread leaves its wait within `POLL_S`,
and `run()` raises `StageError` naming the stage. `stop()` (Ctrl-C, SIGTERM) ends capture and lets
the frames already inside drain, so outputs are complete up to the last frame.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from threadpoolctl import threadpool_limits

from ..stream.errors import SegstreamError, SourceError
from ..stream.sources import Source
from ..stream.types import Detections, Frame, LabelMap, PanopticMap
from ..stream.wire import frame_message, status_message
from .queues import EMPTY, END, POLL_S, Aborted, StageQueue
from .sinks import Sink
from .stats import RunStats

log = logging.getLogger(__name__)

STATUS_REPEAT_S = 5.0  # a live source's state is sent again this often, for subscribers that join late


class StageError(SegstreamError):
    """A stage raised; the message names the stage and the cause."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        detail = str(cause) if isinstance(cause, SegstreamError) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"stage '{stage}' failed: {detail}")
        self.stage = stage
        self.cause = cause


@dataclass
class Packet:
    """One frame on its way through the stages. Whoever holds it owns it."""

    frame: Frame
    index: int = -1  # position in the stream after preprocessing; restores order before tracking
    prepared: Any = None
    outputs: Any = None
    detections: Detections | None = None
    semantic: LabelMap | None = None
    panoptic: PanopticMap | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Queue key: packets of one source replace each other under the `latest` policy."""
        return self.frame.source_id


class Pipeline:
    """Runs `models` over `sources`, tracks per source and hands results to `sinks`.

    `models` is anything with `preprocess(frame)`, `infer(prepared)`,
    `postprocess(outputs, prepared)` and `class_names` (an engines `ModelSet`).
    `make_tracker` builds one tracker per source (None: no tracking); a source in
    `first_track_ids` gets `make_tracker(first_id=...)`, so a worker process that
    takes over a source carries on after the ids it has already published.
    Each source has its own capture thread; `max_frames` applies per source.
    `infer_workers` > 1 keeps several frames in inference at once (each call
    can use fewer runtime threads); frames are put back in order before tracking.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        models: Any,
        make_tracker: Callable[[], Any] | None,
        sinks: Sequence[Sink],
        queue_size: int = 2,
        max_frames: int | None = None,
        on_frame: Callable[[Packet], None] | None = None,
        infer_workers: int = 1,
        make_camera_motion: Callable[[], Any] | None = None,
        embed: Callable[[Any, Detections], Any] | None = None,
        panoptic: Callable[[LabelMap, Detections], PanopticMap] | None = None,
        batch: int = 1,
        batch_wait_ms: float = 5.0,
        live_in_flight: int = 2,
        first_track_ids: dict[str, int] | None = None,
    ) -> None:
        self.sources = list(sources)
        self.first_track_ids = first_track_ids or {}
        self.models = models
        self.make_tracker = make_tracker
        self.sinks = list(sinks)
        self.max_frames = max_frames
        self.on_frame = on_frame
        self.stats = RunStats()
        self._abort = threading.Event()
        self._stop = threading.Event()
        self._errors: list[StageError] = []
        names = ["preprocess", "infer", "postprocess", "track", "publish"]
        self.batch, self.batch_wait_s = batch, batch_wait_ms / 1000.0
        # The infer queue must be able to hold a whole batch.
        self._queues = {n: StageQueue(max(queue_size, batch) if n == "infer" else queue_size, self._abort, n)
                        for n in names}
        self.infer_workers = infer_workers
        self._workers_left = {"infer": infer_workers}
        self._workers_lock = threading.Lock()
        self._next_index = 0
        self._reorder: dict[int, Packet] = {}
        self._trackers: dict[str, Any] = {}
        self._frame_hw: dict[str, tuple[int, ...]] = {}  # per source, to notice a change of resolution
        self.make_camera_motion = make_camera_motion
        self.embed = embed
        self.panoptic = panoptic
        self._camera_motion: dict[str, Any] = {}
        self._status: dict[str, tuple[Any, float]] = {}  # per live source: its last state change, when last sent
        self._last_seq: dict[str, int] = {}
        self._frames_per_source: dict[str, int] = {}
        # Live sources (and files played in real time) share `live_in_flight` places
        # (batches, with `batch`) inside the pipeline, each source at least one; a
        # source takes its next frame only when it has a place free (see `_capture`).
        # Each its own: a dead camera waiting for a frame never blocks the others.
        paced = [s.source_id for s in self.sources if s.paced]
        per_source = max(1, -(-live_in_flight * batch // max(len(paced), 1)))
        self._in_flight = {sid: threading.Semaphore(per_source) for sid in paced}

    # ---- control -------------------------------------------------------------------------

    def stop(self) -> None:
        """Graceful stop: no new frames; frames already inside are finished."""
        self._stop.set()
        for source in self.sources:
            source.interrupt()  # a capture thread waiting on a silent camera returns now

    def run(self) -> RunStats:
        remaining, lock = [len(self.sources)], threading.Lock()
        threads = [
            threading.Thread(target=self._capture, args=(src, remaining, lock), name=f"capture-{src.source_id}", daemon=True)
            for src in self.sources
        ]
        stages = [
            ("preprocess", self._preprocess, "infer"),
            *([("infer", self._infer, "postprocess")] * self.infer_workers if self.batch == 1 else []),
            ("postprocess", self._postprocess, "track"),
        ]
        for name, fn, nxt in stages:
            threads.append(threading.Thread(target=self._stage_loop, args=(name, fn, nxt), name=name, daemon=True))
        if self.batch > 1:
            self._workers_left["infer"] = 1
            threads.append(threading.Thread(target=self._infer_batch_loop, name="infer", daemon=True))
        threads.append(threading.Thread(target=self._track_loop, name="track", daemon=True))
        threads.append(threading.Thread(target=self._publish_loop, name="publish", daemon=True))
        # The stages' matrix products are tiny; a multi-threaded BLAS only adds
        # threads that spin between calls and take the cores from inference
        # (measured on 2 cores: 74 -> 106 FPS with yolov8n-seg).
        blas = threadpool_limits(limits=1, user_api="blas")
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
        finally:
            blas.restore_original_limits()
            self.stats.seconds = time.monotonic() - t0
            self._abort.set()  # release anything still waiting
            for t in threads:
                t.join(1.0)
            self.stats.interrupted = self._stop.is_set()
            self.stats.dropped = {f"source {s.source_id}": s.dropped for s in self.sources}
            self.stats.dropped.update({f"queue {q.name}": q.dropped for q in self._queues.values()})
            self.stats.reconnects = {s.source_id: s.reconnects for s in self.sources if s.is_live}
        if self._errors:
            raise self._errors[0]
        problems = [s.problem for s in self.sources if s.problem]
        if problems:  # raised after every output was finalised, so they are valid up to the last good frame
            raise SourceError("; ".join(problems))
        return self.stats

    @property
    def frames_per_source(self) -> dict[str, int]:
        return dict(self._frames_per_source)

    @property
    def queues(self) -> dict[str, StageQueue]:
        return dict(self._queues)

    def health(self, stall_s: float) -> tuple[bool, dict[str, Any]]:
        """Healthy unless a stage failed or a live source has been stalled or
        reconnecting for longer than `stall_s` seconds. Returns (ok, details)."""
        now = time.monotonic()
        sources = {}
        ok = not self._errors
        for source in self.sources:
            down_s = 0.0 if source.down_since is None else now - source.down_since
            bad = source.status in ("stalled", "reconnecting") and down_s > stall_s
            ok = ok and not bad
            sources[source.source_id] = {"status": source.status, "down_s": round(down_s, 1), "healthy": not bad}
        return ok, {"healthy": ok, "sources": sources, "errors": [str(e) for e in self._errors]}

    def _fail(self, stage: str, err: BaseException) -> None:
        if not self._abort.is_set():
            log.debug("stage %s failed", stage, exc_info=err)
            self._errors.append(StageError(stage, err))
            self._abort.set()

    # ---- stages --------------------------------------------------------------------------

    def _capture(self, source: Source, remaining: list[int], lock: threading.Lock) -> None:
        """Reads one source; the last capture thread to finish ends the stream."""
        out = self._queues["preprocess"]
        policy = "latest" if source.is_live else "block"
        slots = self._in_flight.get(source.source_id)
        stats = self.stats.stages["capture"]
        taken = 0
        frames = iter(source)
        try:
            while not (self._stop.is_set() or self._abort.is_set()):
                if slots is not None and not slots.acquire(timeout=POLL_S):
                    continue  # a live source's frames are all inside: its next one would only wait
                t = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                # Time to get a frame: decoding for files, waiting too for live sources.
                stats.add((time.perf_counter() - t) * 1000.0)
                replaced = out.put(Packet(frame), policy, frame.source_id)
                if replaced:
                    slots.release(replaced)  # live frames replaced in the queue are out
                taken += 1
                if self.max_frames is not None and taken >= self.max_frames:
                    break
        except Aborted:
            pass
        except BaseException as err:  # noqa: BLE001 - reported, never swallowed
            self._fail(f"capture {source.source_id}", err)
        finally:
            source.close()
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                try:
                    out.put(END)
                except Aborted:
                    pass

    def _stage_loop(self, name: str, fn: Callable[[Packet], None], nxt: str) -> None:
        inq, outq = self._queues[name], self._queues[nxt]
        stats = self.stats.stages[name]
        try:
            while True:
                packet = inq.get()
                if packet is END:
                    if self._last_worker(name):
                        outq.put(END)
                    else:
                        inq.put(END)  # let the sibling workers see it too
                    return
                t = time.perf_counter()
                fn(packet)
                ms = (time.perf_counter() - t) * 1000.0
                packet.timings[name] = ms
                stats.add(ms)
                outq.put(packet)
        except Aborted:
            pass
        except BaseException as err:  # noqa: BLE001
            self._fail(name, err)

    def _infer_batch_loop(self) -> None:
        """Inference of up to `batch` frames per call, from any sources: waits at
        most `batch_wait_ms` after the first frame for the others, so a lone
        camera is never held back long. Each frame keeps its own packet."""
        inq, outq = self._queues["infer"], self._queues["postprocess"]
        stats = self.stats.stages["infer"]
        ended = False
        try:
            while not ended:
                first = inq.get()
                if first is END:
                    break
                batch = [first]
                deadline = time.monotonic() + self.batch_wait_s
                while len(batch) < self.batch:
                    item = inq.get(timeout=max(deadline - time.monotonic(), 0.0))
                    if item is EMPTY:
                        break
                    if item is END:
                        ended = True
                        break
                    batch.append(item)
                t = time.perf_counter()
                outputs = self.models.infer_batch([p.prepared for p in batch])
                ms = (time.perf_counter() - t) * 1000.0
                self.stats.batch_sizes[len(batch)] = self.stats.batch_sizes.get(len(batch), 0) + 1
                for packet, out in zip(batch, outputs):
                    packet.outputs = out
                    packet.timings["infer"] = ms
                    stats.add(ms / len(batch))
                    outq.put(packet)
            outq.put(END)
        except Aborted:
            pass
        except BaseException as err:  # noqa: BLE001
            self._fail("infer", err)

    def _last_worker(self, name: str) -> bool:
        with self._workers_lock:
            left = self._workers_left.get(name, 1) - 1
            self._workers_left[name] = left
            return left <= 0

    def _preprocess(self, p: Packet) -> None:
        p.prepared = self.models.preprocess(p.frame)
        p.index = self._next_index  # one preprocess thread: indices are consecutive
        self._next_index += 1

    def _infer(self, p: Packet) -> None:
        p.outputs = self.models.infer(p.prepared)

    def _postprocess(self, p: Packet) -> None:
        p.detections = self.models.postprocess(p.outputs, p.prepared)
        if self.models.semantic_model is not None:
            p.semantic = self.models.semantic(p.outputs, p.prepared)
        if self.embed is not None:
            p.detections = p.detections.with_(embeddings=self.embed(p.frame, p.detections))
        p.prepared = p.outputs = None  # free the input blobs and raw outputs early

    def _track_loop(self) -> None:
        """Tracks frames strictly in stream order, holding back early arrivals."""
        inq, outq = self._queues["track"], self._queues["publish"]
        stats = self.stats.stages["track"]
        expected = 0
        try:
            while True:
                packet = inq.get()
                if packet is END:
                    outq.put(END)
                    return
                self._reorder[packet.index] = packet
                while expected in self._reorder:
                    ready = self._reorder.pop(expected)
                    expected += 1
                    t = time.perf_counter()
                    self._track(ready)
                    ms = (time.perf_counter() - t) * 1000.0
                    ready.timings["track"] = ms
                    stats.add(ms)
                    outq.put(ready)
        except Aborted:
            pass
        except BaseException as err:  # noqa: BLE001
            self._fail("track", err)

    def _track(self, p: Packet) -> None:
        if self.make_tracker is not None:
            self._update_tracker(p)
        if self.panoptic is not None and p.semantic is not None:
            p.panoptic = self.panoptic(p.semantic, p.detections)  # after tracking: things carry their track ids

    def _update_tracker(self, p: Packet) -> None:
        sid = p.frame.source_id
        tracker = self._trackers.get(sid)
        if tracker is None:
            first = self.first_track_ids.get(sid)
            tracker = self._trackers[sid] = self.make_tracker() if first is None else self.make_tracker(first_id=first)
        hw = (p.frame.height, p.frame.width)
        last = self._frame_hw.setdefault(sid, hw)
        if hw != last:  # a camera back at another resolution: tracks follow the picture
            log.info("%s: frames are now %dx%d (were %dx%d): tracks rescaled", sid, hw[1], hw[0], last[1], last[0])
            tracker.rescale(hw[1] / last[1], hw[0] / last[0])
            self._frame_hw[sid] = hw
        if self.make_camera_motion is not None:
            cmc = self._camera_motion.get(sid)
            if cmc is None:
                cmc = self._camera_motion[sid] = self.make_camera_motion()
            warp = cmc.update(p.frame.image, p.detections.xyxy)
            p.detections = tracker.update(p.detections, warp=warp)
        else:
            p.detections = tracker.update(p.detections)
        self.stats.track_ids.setdefault(sid, set()).update(p.detections.track_ids.tolist())

    def _publish_status(self) -> None:
        """Send the live sources' state changes (connected, stalled, reconnecting,
        ended), and each live source's current state again every
        `STATUS_REPEAT_S`: a subscriber that joins late (most do: the first
        `connected` goes out before anyone can have connected) still learns it."""
        now = time.monotonic()
        for source in self.sources:
            events = source.pop_status()
            last = events[-1] if events else None
            if last is not None:
                self._status[source.source_id] = (last, now)
            elif source.source_id in self._status:
                last, sent = self._status[source.source_id]
                if now - sent < STATUS_REPEAT_S or last.status == "ended":
                    continue
                events = [last]
                self._status[source.source_id] = (last, now)
            for event in events:
                message = status_message(event.source_id, event.status, event.detail, event.seq, event.t, event.reconnects)
                for sink in self.sinks:
                    sink.status(message)

    def _publish_loop(self) -> None:
        inq = self._queues["publish"]
        stats = self.stats.stages["publish"]
        try:
            while True:
                packet = inq.get(timeout=POLL_S)  # wakes up to report source states while no frame flows
                self._publish_status()
                if packet is EMPTY:
                    continue
                if packet is END:
                    break
                t = time.perf_counter()
                frame, dets = packet.frame, packet.detections
                message = frame_message(frame, dets, self.models.class_names, packet.timings,
                                        semantic=packet.semantic, panoptic=packet.panoptic)
                self.stats.end_to_end.add(message["latency_ms"]["total"])
                maps = packet.panoptic.segment_ids if packet.panoptic else packet.semantic.labels if packet.semantic else None
                if self.on_frame is not None:  # before the sinks: a worker records a frame before anyone sees it
                    self.on_frame(packet)
                for sink in self.sinks:
                    sink.write(frame, dets, message, maps)
                if frame.source_id in self._in_flight:
                    self._in_flight[frame.source_id].release()
                stats.add((time.perf_counter() - t) * 1000.0)
                self.stats.frames += 1
                self._last_seq[frame.source_id] = frame.seq
                self._frames_per_source[frame.source_id] = self._frames_per_source.get(frame.source_id, 0) + 1
            self._publish_status()  # the sources' last words (`ended`) come before their end of stream
            for sid, seq in self._last_seq.items():
                for sink in self.sinks:
                    sink.end_source(sid, seq, self._frames_per_source[sid])
        except Aborted:
            pass
        except BaseException as err:  # noqa: BLE001
            self._fail("publish", err)
        finally:
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as err:  # noqa: BLE001 - closing the rest matters more
                    self._fail("publish", err)
