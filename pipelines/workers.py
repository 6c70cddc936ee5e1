"""One run, its sources shared out among worker processes (`--workers N|auto`).

Everything around inference is Python, and Python threads of one process take
turns on one core at a time (the GIL): a process tops out near 1.5 cores
whatever the machine has. Workers lift that ceiling. Each worker is a process
that runs every stage for its own sources, exactly as a single process would;
the main process only checks the input, forwards messages and watches.

- One endpoint: workers publish to a ZeroMQ XSUB socket of the main process
  (an ipc endpoint in a private temporary folder), which forwards to the
  user's `--publish` endpoint through an XPUB socket (`zmq.proxy`), with the
  same CURVE settings and high-water mark. Subscribers see one publisher.
- Same outputs: per-source files (`--save`, MOTChallenge `--export`) are named
  as in one process and written by the worker of that source; a JSON-lines
  export, which holds every source, is written by the main process from the
  forwarded messages.
- Faults: a worker that dies (killed, crashed) is restarted with the same
  sources. Its files resume after the last frame its predecessor published
  (which the workers record in shared memory), cameras reconnect, and track
  ids carry on after the last one published, so ids never repeat. Other
  workers are not disturbed.
- One `/metrics` and `/healthz`: each worker sends its counters every second
  (`metrics.PipelineSnapshot`), and the main process serves their sum.
- Bad input gives the same one-line error as one process, before any worker
  starts: sources are opened, models loaded (on the CPU) and outputs and the
  endpoint checked in the main process first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import os
import signal
import tempfile
import threading
import time
from types import SimpleNamespace
from typing import Any

import zmq

from ..engines.hub import resolve_model
from ..engines.model import Model
from ..engines.runtimes.registry import choose_backend
from ..stream.errors import SegstreamError
from ..stream.publisher import Publisher
from .config import RunConfig
from .metrics import MetricsServer, PipelineSnapshot
from .run import on_stop_signals, run_config
from .session import Share, open_config_source, unique_source_ids
from .sinks import Sink, export_sink, prepare_output
from .stats import RunStats

log = logging.getLogger(__name__)

REPORT_S = 1.0  # how often a worker sends its counters for /metrics
MAX_RESTARTS = 5  # per worker; then its sources are given up and the run fails
STOP_GRACE_S = 5.0  # after Ctrl-C/SIGTERM: how long workers get to finish their frames in flight
POLL_S = 0.1


def worker_count(requested: int | str, sources: int, gpu: bool, cpus: int | None = None) -> int:
    """Processes for `sources` sources; one source always stays in one process.

    `auto`, from `bench/cpu_side.py` and runs on a 2-core machine: with
    inference on a GPU the CPU side is the limit, and one process uses about
    1.7 cores of it, so one process per core (8 sources of 1080p, inference
    replayed: 126 FPS in one process, 165 in two). With inference on the CPU
    the runtime already uses every core, and more processes only compete
    (`cpu_side.py --real`, 2 sources of 1080p, YOLOv8n-seg on ONNX Runtime:
    46.1 FPS in one process, 43.5 in two), so one process per 8 cores."""
    if requested != "auto":
        return max(1, min(int(requested), sources))
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(sources, cpus if gpu else cpus // 8))


def check_inputs(config: RunConfig) -> dict[str, bool]:
    """Raise the one-line error a single process would give, before any worker
    starts: every source opens, every model loads, every output can be written.
    Returns whether each source (by id) is live."""
    ids = unique_source_ids(config.source)
    live = {}
    for spec, source_id in zip(config.source, ids):
        source = open_config_source(config, spec, source_id, several=len(ids) > 1)
        live[source_id] = source.is_live
        source.close()
    for spec in config.model:
        # On the CPU: the main process holds no GPU context; the workers load for real.
        Model.load(resolve_model(spec), backend="onnxruntime", device="cpu", threads=1).close()
    for path in (config.save, config.export):
        if path:
            prepare_output(path)
    return live


class Forwarder:
    """Workers' messages -> the user's endpoint, and a copy of each to `on_message`."""

    def __init__(self, inner: str, config: RunConfig, on_message: Any = None) -> None:
        self._ctx = zmq.Context()
        self._front = self._ctx.socket(zmq.XSUB)
        self._front.bind(inner)
        self._front.send(b"\x01")  # subscribe to everything: the JSON-lines export needs every message
        try:
            self._publisher = None if not config.publish else Publisher(
                config.publish, config.hwm, curve_secret=config.curve_secret, curve_clients=config.curve_clients,
                socket_type=zmq.XPUB)
        except BaseException:  # the endpoint is taken, a key is missing: nothing is left open
            self._front.close(linger=0)
            self._ctx.term()
            raise
        self._back = self._publisher.socket if self._publisher else self._ctx.socket(zmq.XPUB)
        if self._publisher is None:
            self._back.bind("inproc://nobody")
        self._control = self._ctx.socket(zmq.PAIR)
        self._control.bind("inproc://control")
        control = self._ctx.socket(zmq.PAIR)
        control.connect("inproc://control")
        capture = None
        if on_message is not None:
            capture = self._ctx.socket(zmq.PAIR)
            capture.bind("inproc://capture")
            self._captured = self._ctx.socket(zmq.PAIR)
            self._captured.connect("inproc://capture")
        self.on_message = on_message
        self.last_message = time.monotonic()
        self._stop = threading.Event()
        self._proxy = threading.Thread(target=self._run_proxy, args=(control, capture), name="forward", daemon=True)
        self._proxy.start()
        self._reader = threading.Thread(target=self._read, name="forward-export", daemon=True) if on_message else None
        if self._reader:
            self._reader.start()

    def _run_proxy(self, control: zmq.Socket, capture: zmq.Socket | None) -> None:
        try:
            zmq.proxy_steerable(self._front, self._back, capture, control)
        except zmq.ZMQError:
            pass
        finally:
            control.close(linger=0)
            if capture is not None:
                capture.close(linger=0)

    def _read(self) -> None:
        """The copies, on this thread, which alone uses (and closes) the capture socket."""
        try:
            while not self._stop.is_set():
                if not self._captured.poll(int(POLL_S * 1000)):
                    continue
                parts = self._captured.recv_multipart()
                self.last_message = time.monotonic()
                if len(parts) == 2:
                    self.on_message(json.loads(parts[1]))
        finally:
            self._captured.close(linger=0)

    def drain(self, quiet_s: float = 0.3, limit_s: float = 3.0) -> None:
        """Wait until no message has arrived for `quiet_s` (the workers' last ones are in)."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end and time.monotonic() - self.last_message < quiet_s:
            time.sleep(0.05)

    def close(self) -> None:
        self._control.send(b"TERMINATE")
        self._proxy.join(5)
        self._stop.set()
        if self._reader:
            self._reader.join(5)
        self._control.close(linger=0)
        self._front.close(linger=0)
        if self._publisher is not None:
            self._publisher.close()
        else:
            self._back.close(linger=0)
        self._ctx.term()


class JsonlExport:
    """The JSON-lines export of a run with workers: every forwarded frame
    message, written by the main process (one file for every source)."""

    def __init__(self, config: RunConfig, live: dict[str, bool]) -> None:
        # Frames of cameras are cut on the wall clock, files on their own time: as in one process.
        segment_s = config.segment_minutes * 60 if config.segment_minutes else None
        self.sink: Sink = export_sink(config.export or "", live, segment_s)

    def __call__(self, message: dict[str, Any]) -> None:
        if message.get("type") == "frame":
            frame = SimpleNamespace(t_capture=message["t_capture"], pts=message.get("pts"), source_id=message["source"])
            self.sink.write(frame, None, message)  # type: ignore[arg-type]


def _worker(worker: int, config: RunConfig, share: Share, state: Any, index: dict[str, int], log_level: int,
            results: Any, metrics: bool) -> None:
    """A worker process: the stages for `share`'s sources, publishing to the forwarder."""
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    from .cli import _quiet_native_logs

    if log_level > logging.DEBUG:
        _quiet_native_logs()

    def record(frame: Any, dets: Any) -> None:
        """What a restarted worker needs: the last frame published and the largest track id,
        recorded before the frame reaches a sink, so that a worker killed in between
        loses that frame at worst and never hands one of its ids to its successor."""
        at = 3 * index[frame.source_id]
        state[at] = frame.seq
        if dets is not None and dets.track_ids is not None and len(dets):
            state[at + 1] = max(state[at + 1], int(dets.track_ids.max()))
        state[at + 2] += 1

    done = threading.Event()

    def report(pipeline: Any) -> None:
        """The pipeline's counters to the main process every second, for /metrics and /healthz."""
        def loop() -> None:
            while not done.wait(REPORT_S):
                results.put(("snapshot", worker, PipelineSnapshot.of(pipeline, config.health_stall)))
        threading.Thread(target=loop, name="report", daemon=True).start()

    try:
        stats = run_config(config, record, share, on_pipeline=report if metrics else None)
    except SegstreamError as err:
        results.put(("error", worker, str(err)))
        raise SystemExit(2) from None
    finally:
        done.set()
    results.put(("stats", worker, stats))


def run_workers(config: RunConfig) -> RunStats:
    """Run `config` with its sources shared out among `config.workers` processes."""
    ids = unique_source_ids(config.source)
    count = worker_count(config.workers, len(ids), gpu=choose_backend(config.backend, config.device)[1] != "cpu")
    if count == 1:
        return run_config(config.model_copy(update={"workers": 1}))
    with contextlib.ExitStack() as stack:
        metrics = None
        if config.metrics_port is not None:  # first: a port in use fails before anything is opened
            metrics = MetricsServer(config.metrics_port, config.health_stall, config.metrics_address)
            stack.callback(metrics.close)
        live = check_inputs(config)
        return _run(config, ids, count, live, metrics, stack)


def _run(config: RunConfig, ids: list[str], count: int, live: dict[str, bool], metrics: MetricsServer | None,
         stack: contextlib.ExitStack) -> RunStats:
    log.info("%d worker processes for %d sources", count, len(ids))
    ctx = mp.get_context("spawn")  # a fresh interpreter: no forked locks, threads or GPU contexts
    state = ctx.Array("q", [v for _ in ids for v in (-1, 0, 0)], lock=False)  # per source: last seq, max id, frames
    index = {sid: i for i, sid in enumerate(ids)}
    results = ctx.Queue()
    stats = RunStats()
    snapshots: dict[int, Any] = {}  # each worker's newest, for /metrics
    retired: list[Any] = []  # the last of each worker that died: its counts stay in the totals
    stop = threading.Event()
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="segstream-workers-"))
    inner = f"ipc://{tmp}/forward"
    export = JsonlExport(config, live) if config.export and config.export.endswith(".jsonl") else None
    if export is not None:
        stack.callback(export.sink.close)
    # Messages go to the main process only when someone takes them: the endpoint or the JSON-lines export.
    forwarder = Forwarder(inner, config, export) if config.publish or export is not None else None
    if forwarder is not None:
        stack.callback(forwarder.close)
    worker_config = config.model_copy(update={
        "publish": ">" + inner if forwarder is not None else None, "metrics_port": None, "progress": False,
        "workers": 1,
        "export": None if export is not None else config.export,
    })

    def start(w: int, restart: int) -> Any:
        mine = tuple(ids[w::count])
        share = Share(
            source_ids=mine, run_source_ids=tuple(ids), restart=restart, cpus=max(1, (os.cpu_count() or 1) // count),
            first_track_ids={sid: state[3 * index[sid] + 1] + 1 for sid in mine} if restart else {},
            resume_after={sid: state[3 * index[sid]] for sid in mine if restart and state[3 * index[sid]] >= 0},
        )
        if restart:
            log.warning("worker %d restarted (%d of %d): %s", w, restart, MAX_RESTARTS, "; ".join(
                f"{sid} resumes after frame {share.resume_after.get(sid, -1)}, "
                f"track ids after {share.first_track_ids[sid] - 1}" for sid in mine))
        specs = [config.source[index[sid]] for sid in mine]
        proc = ctx.Process(target=_worker, name=f"segstream-worker-{w}", daemon=True, args=(
            w, worker_config.model_copy(update={"source": specs}), share, state, index,
            logging.getLogger().level, results, metrics is not None))
        proc.start()
        return proc

    stack.enter_context(on_stop_signals(stop.set, "stopping the workers"))
    t0 = time.perf_counter()
    procs = {w: start(w, 0) for w in range(count)}
    restarts = dict.fromkeys(procs, 0)
    running = dict(procs)
    error: str | None = None
    stopping_since: float | None = None
    while running:
        time.sleep(POLL_S)
        error = error or _drain_results(results, stats, snapshots)
        if metrics is not None:
            metrics.attach(PipelineSnapshot.merge(
                [snapshots[w] for w in sorted(snapshots)], retired,
                [f"worker {w}" for w in running if w not in snapshots]))
        if (stop.is_set() or error) and stopping_since is None:
            stopping_since = time.monotonic()
            for proc in running.values():
                if proc.is_alive():
                    os.kill(proc.pid, signal.SIGTERM)
        if stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_S:
            for proc in running.values():
                proc.kill()
        for w, proc in list(running.items()):
            if proc.is_alive():
                continue
            proc.join()
            del running[w]
            if proc.exitcode in (0, 2) or stopping_since is not None:
                continue  # done, or bad input (its error is in the results)
            if w in snapshots:
                retired.append(snapshots.pop(w))
            if restarts[w] >= MAX_RESTARTS:
                error = error or f"worker {w} ({', '.join(ids[w::count])}) died {MAX_RESTARTS + 1} times; giving up"
                continue
            restarts[w] += 1
            log.warning("worker %d (%s) died (exit %s)", w, ", ".join(ids[w::count]), proc.exitcode)
            running[w] = start(w, restarts[w])
    error = error or _drain_results(results, stats, snapshots)
    if forwarder is not None:
        forwarder.drain()
    stats.seconds = time.perf_counter() - t0
    stats.frames = sum(state[3 * i + 2] for i in range(len(ids)))  # killed workers' frames included
    stats.interrupted = stats.interrupted or stop.is_set()
    if error:
        raise SegstreamError(error)
    return stats


def _drain_results(results: Any, stats: RunStats, snapshots: dict[int, Any]) -> str | None:
    """Fold the workers' final statistics into `stats` and keep each one's
    latest snapshot; the first error, if any."""
    error = None
    while True:
        try:
            kind, worker, value = results.get_nowait()
        except Exception:  # noqa: BLE001 - queue.Empty, or a queue closed by a killed worker
            return error
        if kind == "error":
            error = error or value
        elif kind == "snapshot":
            snapshots[worker] = value
        else:
            stats.merge(value)
