"""The multi-stage pipeline: capture -> preprocess -> infer -> postprocess -> track -> publish.

Three kinds of threads share the stages, joined by small bounded queues:
one per source decodes and prepares its frames (capture, preprocess), one
(or `infer_workers`, or a batching one) runs the model, and one output
thread puts frames back in stream order and runs postprocess, track and
publish. Decoding, resizing and inference release the GIL, so they overlap
each other and the output thread; the Python-heavy stages share one thread
because the GIL would run them one at a time anyway, and every hand-off
between threads costs CPU (bench/cpu_side.py: 1.2 ms a frame less at 1080p
than with a thread per stage). Only the entry of a live source drops frames
(keeping the freshest), and a live source takes a new frame only while it
has one of its share of the `live_in_flight` places inside free, so none
waits behind a queue-full of older ones; after that every queue applies
back-pressure. A failing stage sets the abort event, every other thread
leaves its wait within `POLL_S`, and `run()` raises `StageError` naming the
stage. `stop()` (Ctrl-C, SIGTERM) ends capture and lets the frames already
inside drain, so outputs are complete up to the last frame.
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
        self.batch, self.batch_wait_s = batch, batch_wait_ms / 1000.0
        # Into inference (it must be able to hold a whole batch), and out of it to the output thread.
        self._queues = {"infer": StageQueue(max(queue_size, batch), self._abort, "infer"),
                        "postprocess": StageQueue(queue_size, self._abort, "postprocess")}
        self.infer_workers = infer_workers
        self.stats.in_flight = infer_workers if batch == 1 else batch
        self._workers_left = {"infer": infer_workers}
        self._workers_lock = threading.Lock()
        self._next_index = 0
        self._index_lock = threading.Lock()  # frames are numbered as they enter inference (see `_take`)
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
        if self.batch > 1:
            self._workers_left["infer"] = 1
            threads.append(threading.Thread(target=self._infer_batch_loop, name="infer", daemon=True))
        else:
            threads += [threading.Thread(target=self._infer_loop, name="infer", daemon=True)
                        for _ in range(self.infer_workers)]
        threads.append(threading.Thread(target=self._output_loop, name="output", daemon=True))
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
            self.stats.dropped.update({f"source {s.source_id} (did not decode)": s.lost for s in self.sources if s.lost})
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
        """Reads and prepares one source's frames; the last capture thread to finish ends the stream."""
        out = self._queues["infer"]
        policy = "latest" if source.is_live else "block"
        slots = self._in_flight.get(source.source_id)
        stats, prepare = self.stats.stages["capture"], self.stats.stages["preprocess"]
        step = "capture"
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
                step, t = f"preprocess {source.source_id}", time.perf_counter()
                packet = Packet(frame, prepared=self.models.preprocess(frame))
                ms = (time.perf_counter() - t) * 1000.0
                packet.timings["preprocess"] = ms
                prepare.add(ms)
                step = "capture"
                replaced = out.put(packet, policy, frame.source_id)
                if replaced:
                    slots.release(replaced)  # live frames replaced in the queue are out
                taken += 1
                if self.max_frames is not None and taken >= self.max_frames:
                    break
        except Aborted:
            pass
        except BaseException as err:  # noqa: BLE001 - reported, never swallowed
            self._fail(step if step != "capture" else f"capture {source.source_id}", err)
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

    def _take(self, inq: StageQueue, timeout: float | None = None) -> Any:
        """The next packet into inference, numbered: the output thread restores
        this order. Numbered here, where no frame is dropped any more (a live
        source's frame may still be replaced in the queue before)."""
        with self._index_lock:
            item = inq.get(timeout)
            if isinstance(item, Packet):
                item.index = self._next_index
                self._next_index += 1
            return item

    def _infer_loop(self) -> None:
        inq, outq = self._queues["infer"], self._queues["postprocess"]
        stats = self.stats.stages["infer"]
        try:
            while True:
                packet = self._take(inq)
                if packet is END:
                    if self._last_worker("infer"):
                        outq.put(END)
                    else:
                        inq.put(END)  # let the sibling workers see it too
                    return
                t = time.perf_counter()
                packet.outputs = self.models.infer(packet.prepared)
                ms = (time.perf_counter() - t) * 1000.0
                packet.timings["infer"] = ms
                stats.add(ms)
                outq.put(packet)
        except Aborted:
            pass
        except BaseException as err:  # noqa: BLE001
            self._fail("infer", err)

    def _infer_batch_loop(self) -> None:
        """Inference of up to `batch` frames per call, from any sources: waits at
        most `batch_wait_ms` after the first frame for the others, so a lone
        camera is never held back long. Each frame keeps its own packet."""
        inq, outq = self._queues["infer"], self._queues["postprocess"]
        stats = self.stats.stages["infer"]
        ended = False
        try:
            while not ended:
                first = self._take(inq)
                if first is END:
                    break
                batch = [first]
                deadline = time.monotonic() + self.batch_wait_s
                while len(batch) < self.batch:
                    item = self._take(inq, timeout=max(deadline - time.monotonic(), 0.0))
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

    def _postprocess(self, p: Packet) -> None:
        p.detections = self.models.postprocess(p.outputs, p.prepared)
        if self.models.semantic_model is not None:
            p.semantic = self.models.semantic(p.outputs, p.prepared)
        if self.embed is not None:
            p.detections = p.detections.with_(embeddings=self.embed(p.frame, p.detections))
        p.prepared = p.outputs = None  # free the input blobs and raw outputs early

    def _output_loop(self) -> None:
        """Postprocess, track and publish, frame after frame in stream order
        (early arrivals wait); between frames, live sources' states go out."""
        inq = self._queues["postprocess"]
        steps = [("postprocess", self._postprocess), ("track", self._track), ("publish", self._publish)]
        expected, name = 0, "postprocess"
        try:
            while True:
                packet = inq.get(timeout=POLL_S)  # wakes up to report source states while no frame flows
                name = "publish"
                if packet is EMPTY:
                    self._publish_status()  # with frames, `_publish` sends them first
                    continue
                if packet is END:
                    break
                self._reorder[packet.index] = packet
                while expected in self._reorder:
                    ready = self._reorder.pop(expected)
                    expected += 1
                    for name, step in steps:
                        t = time.perf_counter()
                        step(ready)
                        ms = (time.perf_counter() - t) * 1000.0
                        ready.timings[name] = ms
                        self.stats.stages[name].add(ms)
                    self._published(ready)
            name = "publish"
            self._publish_status()  # the sources' last words (`ended`) come before their end of stream
            for sid, seq in self._last_seq.items():
                for sink in self.sinks:
                    sink.end_source(sid, seq, self._frames_per_source[sid])
        except Aborted:
            pass
        except BaseException as err:  # noqa: BLE001
            self._fail(name, err)
        finally:
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as err:  # noqa: BLE001 - closing the rest matters more
                    self._fail("publish", err)

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
            rate = next((s.fps for s in self.sources if s.source_id == sid), None)
            tracker = self._trackers[sid] = self.make_tracker(first_id=1 if first is None else first, frame_rate=rate)
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
        ids = p.detections.track_ids.tolist()
        known = self.stats.track_ids.setdefault(sid, set())
        if not known.issuperset(ids):  # a new track: note its class, once
            names, classes = self.models.class_names, self.stats.track_classes.setdefault(sid, {})
            for track_id, class_id in zip(ids, p.detections.class_ids.tolist()):
                if track_id not in known:
                    classes[track_id] = names[class_id] if 0 <= class_id < len(names) else str(class_id)
            known.update(ids)

    def _publish_status(self) -> None:
        """Send the live sources' state changes (connected, stalled, reconnecting,
        ended), and each live source's current state again every
        `STATUS_REPEAT_S` and whenever a subscriber joins: one that joins late
        (most do: the first `connected` goes out before anyone can have
        connected) learns it before its second frame."""
        now = time.monotonic()
        joined = any([sink.joined() for sink in self.sinks])  # every sink asked: each forgets what it told
        for source in self.sources:
            events = source.pop_status()
            last = events[-1] if events else None
            if last is not None:
                self._status[source.source_id] = (last, now)
            elif source.source_id in self._status:
                last, sent = self._status[source.source_id]
                if (now - sent < STATUS_REPEAT_S and not joined) or last.status == "ended":
                    continue
                events = [last]
                self._status[source.source_id] = (last, now)
            for event in events:
                message = status_message(event.source_id, event.status, event.detail, event.seq, event.t, event.reconnects)
                for sink in self.sinks:
                    sink.status(message)

    def _publish(self, packet: Packet) -> None:
        self._publish_status()  # a subscriber that has just joined hears the sources' states first
        frame, dets = packet.frame, packet.detections
        message = frame_message(frame, dets, self.models.class_names, packet.timings,
                                semantic=packet.semantic, panoptic=packet.panoptic)
        self.stats.end_to_end.add(message["latency_ms"]["total"])
        maps = packet.panoptic.segment_ids if packet.panoptic else packet.semantic.labels if packet.semantic else None
        if self.on_frame is not None:  # before the sinks: a worker records a frame before anyone sees it
            self.on_frame(packet)
        for sink in self.sinks:
            sink.write(frame, dets, message, maps)

    def _published(self, packet: Packet) -> None:
        frame = packet.frame
        if frame.source_id in self._in_flight:
            self._in_flight[frame.source_id].release()
        self.stats.frames += 1
        self._last_seq[frame.source_id] = frame.seq
        self._frames_per_source[frame.source_id] = self._frames_per_source.get(frame.source_id, 0) + 1
