"""Prometheus metrics and a health check for a running pipeline (`--metrics-port`).

`GET /metrics` is the Prometheus text format, built at scrape time from the
counters the pipeline keeps anyway (nothing extra runs per frame): per-stage
and end-to-end latency histograms, frames published, FPS, drops, reconnects,
queue depths and each live source's state. `GET /healthz` answers 200 with a
JSON body, or 503 once a stage has failed or a live source has been stalled
or reconnecting for longer than `stall_s` seconds, so an orchestrator can
restart the process or page someone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ..stream.errors import PublishError
from .runner import Pipeline
from .stats import LATENCY_BUCKETS_MS, RunStats, StageStats

log = logging.getLogger(__name__)

SOURCE_STATES = ("connected", "stalled", "reconnecting", "ended")


def _histogram(family: HistogramMetricFamily, labels: list[str], stats: StageStats) -> None:
    """Add one StageStats as a histogram in seconds (cumulative buckets, as Prometheus wants)."""
    counts, total = stats.snapshot()
    cumulative, buckets = 0, []
    for bound, count in zip([*LATENCY_BUCKETS_MS, float("inf")], counts):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else str(bound / 1000.0), cumulative))
    family.add_metric(labels, buckets, total / 1000.0)


class PipelineCollector:
    """A Prometheus collector that reads a `Pipeline`'s counters when scraped
    (nothing before the pipeline is attached)."""

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self._t0 = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        p = self.pipeline
        if p is None:
            return
        stages = HistogramMetricFamily("segstream_stage_seconds", "Time per frame in each stage", labels=["stage"])
        for name, stats in p.stats.stages.items():
            _histogram(stages, [name], stats)
        yield stages
        e2e = HistogramMetricFamily("segstream_latency_seconds", "Capture to publish, per frame", labels=[])
        _histogram(e2e, [], p.stats.end_to_end)
        yield e2e
        frames = CounterMetricFamily("segstream_frames", "Frames published", labels=["source"])
        for source, n in p.frames_per_source.items():
            frames.add_metric([source], n)
        yield frames
        fps = GaugeMetricFamily("segstream_fps", "Frames published per second since the start")
        fps.add_metric([], p.stats.frames / max(time.monotonic() - self._t0, 1e-9))
        yield fps
        dropped = CounterMetricFamily("segstream_dropped_frames", "Frames dropped to keep latency bounded",
                                      labels=["where"])
        for source in p.sources:
            dropped.add_metric([f"source:{source.source_id}"], source.dropped)
        for name, queue in p.queues.items():
            dropped.add_metric([f"queue:{name}"], queue.dropped)
        yield dropped
        reconnects = CounterMetricFamily("segstream_reconnects", "Successful reconnections", labels=["source"])
        state = GaugeMetricFamily("segstream_source_state", "1 for the live source's current state",
                                  labels=["source", "state"])
        for source in p.sources:
            if source.is_live:
                reconnects.add_metric([source.source_id], source.reconnects)
                for s in SOURCE_STATES:
                    state.add_metric([source.source_id, s], float(source.status == s))
        yield reconnects
        yield state
        depth = GaugeMetricFamily("segstream_queue_depth", "Items waiting between stages", labels=["queue"])
        for name, queue in p.queues.items():
            depth.add_metric([name], len(queue))
        yield depth


@dataclass
class SourceSnapshot:
    """What the metrics read of one source, copied out of a worker process."""

    source_id: str
    is_live: bool
    dropped: int
    reconnects: int
    status: str


@dataclass
class QueueSnapshot:
    dropped: int
    depth: int

    def __len__(self) -> int:
        return self.depth


@dataclass
class PipelineSnapshot:
    """A pipeline's counters, as `PipelineCollector` and /healthz read them,
    picklable: each worker process sends one every second, and the main
    process serves the merged figures of all (`pipelines.workers`)."""

    stats: RunStats
    frames_per_source: dict[str, int]
    sources: list[SourceSnapshot]
    queues: dict[str, QueueSnapshot]
    healthy: tuple[bool, dict[str, Any]]

    @classmethod
    def of(cls, pipeline: Pipeline, stall_s: float) -> PipelineSnapshot:
        stats = pipeline.stats
        return cls(
            RunStats(frames=stats.frames, stages={k: v.copy() for k, v in stats.stages.items()},
                     end_to_end=stats.end_to_end.copy()),
            pipeline.frames_per_source,
            [SourceSnapshot(s.source_id, s.is_live, s.dropped, s.reconnects, s.status) for s in pipeline.sources],
            {name: QueueSnapshot(q.dropped, len(q)) for name, q in pipeline.queues.items()},
            pipeline.health(stall_s),
        )

    @classmethod
    def merge(
        cls, latest: list[PipelineSnapshot], retired: list[PipelineSnapshot], missing: list[str],
    ) -> PipelineSnapshot:
        """One view of the workers: `latest` holds each worker's newest snapshot,
        `retired` the last ones of workers that died and were replaced (their
        counts stay in the totals, so counters never go down), and `missing`
        names the workers that have none yet (starting or restarting: unhealthy)."""
        every = latest + retired
        stats = RunStats(frames=sum(p.stats.frames for p in every))
        for part in every:
            stats.merge(part.stats)
        frames: dict[str, int] = {}
        dropped: dict[str, int] = {}
        reconnects: dict[str, int] = {}
        queues: dict[str, QueueSnapshot] = {}
        for part, current in [(p, True) for p in latest] + [(p, False) for p in retired]:
            for sid, n in part.frames_per_source.items():
                frames[sid] = frames.get(sid, 0) + n
            for src in part.sources:
                dropped[src.source_id] = dropped.get(src.source_id, 0) + src.dropped
                reconnects[src.source_id] = reconnects.get(src.source_id, 0) + src.reconnects
            for name, q in part.queues.items():
                total = queues.setdefault(name, QueueSnapshot(0, 0))
                total.dropped += q.dropped
                total.depth += q.depth if current else 0
        sources = [SourceSnapshot(s.source_id, s.is_live, dropped[s.source_id], reconnects[s.source_id], s.status)
                   for p in latest for s in p.sources]
        ok = not missing and all(p.healthy[0] for p in latest)
        body = {"healthy": ok, "sources": {k: v for p in latest for k, v in p.healthy[1]["sources"].items()},
                "errors": [e for p in latest for e in p.healthy[1]["errors"]], "workers_down": missing}
        return cls(stats, frames, sources, queues, (ok, body))

    def health(self, stall_s: float) -> tuple[bool, dict[str, Any]]:
        return self.healthy


class _QuietHandler(WSGIRequestHandler):
    # `timeout` (MetricsServer's idle_timeout_s): a connection that sends
    # nothing for that long is closed, so half-open clients cannot hold the
    # server's threads for ever.

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("metrics: " + format, *args)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class MetricsServer:
    """Serves /metrics and /healthz on `host`:`port` in a daemon thread until `close()`.

    `host` is loopback unless asked otherwise (`--metrics-address 0.0.0.0`
    for a Prometheus on another machine). Started before the pipeline is built, so a port in use fails before any
    camera or model is opened; `attach(pipeline)` then makes it report."""

    def __init__(self, port: int, stall_s: float = 30.0, host: str = "127.0.0.1", idle_timeout_s: float = 10.0) -> None:
        self._collector = PipelineCollector()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._collector)
        metrics_app = make_wsgi_app(registry)

        def app(environ: dict, start_response: Any) -> list[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                pipeline = self._collector.pipeline
                ok, body = pipeline.health(stall_s) if pipeline is not None else (False, {"healthy": False,
                                                                                         "starting": True})
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
                return [json.dumps(body).encode()]
            return metrics_app(environ, start_response)

        try:
            handler = type("Handler", (_QuietHandler,), {"timeout": idle_timeout_s})
            self._server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=handler)
        except OSError as err:
            raise PublishError(f"cannot serve metrics on {host}:{port}: {err.strerror}; pick a free port "
                               "or an address of this machine") from None
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics, health on /healthz", host, self.port)

    def attach(self, pipeline: Pipeline | PipelineSnapshot | Any) -> None:
        """What to report: a pipeline, or anything with its counters (a `PipelineSnapshot`)."""
        self._collector.pipeline = pipeline

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
