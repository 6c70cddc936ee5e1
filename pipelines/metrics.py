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
from socketserver import ThreadingMixIn
from typing import Any, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ..stream.errors import PublishError
from .runner import Pipeline
from .stats import LATENCY_BUCKETS_MS, StageStats

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


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("metrics: " + format, *args)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class MetricsServer:
    """Serves /metrics and /healthz on `port` in a daemon thread until `close()`.

    Started before the pipeline is built, so a port in use fails before any
    camera or model is opened; `attach(pipeline)` then makes it report."""

    def __init__(self, port: int, stall_s: float = 30.0, host: str = "0.0.0.0") -> None:
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
            self._server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
        except OSError as err:
            raise PublishError(f"cannot serve metrics on port {port}: {err.strerror}; pick a free port") from None
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics, health on /healthz", host, self.port)

    def attach(self, pipeline: Pipeline) -> None:
        self._collector.pipeline = pipeline

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
