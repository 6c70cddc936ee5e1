"""Run a whole pipeline from a config, as `segstream run` does and as `segstream.run(...)` offers scripts.

This is the one place that owns a run's life: metrics server, signal
handling (Ctrl-C or SIGTERM finish the frames in flight), and closing the
models and sinks whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from typing import Any, Callable, Iterator

from ..stream.errors import ConfigError
from ..stream.types import Detections, Frame
from .config import RunConfig, load_config
from .metrics import MetricsServer
from .runner import Pipeline
from .session import Share, build_pipeline
from .stats import RunStats

log = logging.getLogger(__name__)

# The inference thread gets the GIL back sooner after each model call
# (default 5 ms); measured +4% FPS on 2 cores.
GIL_SWITCH_INTERVAL_S = 0.001

FrameCallback = Callable[[Frame, Detections], None]


def run(
    source: str | list[str] | None = None,
    model: str | list[str] | None = None,
    *,
    config: str | None = None,
    on_frame: FrameCallback | None = None,
    **options: Any,
) -> RunStats:
    """Run the pipeline on `source` with `model` and return the run's statistics.

    `options` are the keys of `segstream run`'s YAML config (`tracker`,
    `classes`, `publish`, `save`, `export`, `max_frames`, ...); `config` is a
    YAML file with the same keys, and keyword arguments win over it.
    `on_frame(frame, detections)` is called for every published frame, in
    order per source, with the tracked detections (track ids set); it runs on
    the pipeline's publishing thread, so keep it short.

    Bad input raises a `SegstreamError` subclass naming the key or the file.
    """
    overrides: dict[str, Any] = {"source": source, "model": model, **options}
    overrides.setdefault("progress", False)
    return run_config(load_config(config, overrides), on_frame)


def run_config(
    config: RunConfig, on_frame: FrameCallback | None = None, share: Share | None = None,
    on_pipeline: Callable[[Pipeline], None] | None = None,
) -> RunStats:
    """Run a validated config with Ctrl-C/SIGTERM mapped to a graceful stop
    (`share`: this process is one worker of a run, `pipelines.workers`;
    `on_pipeline` sees the pipeline before it starts)."""
    if config.workers != 1 and share is None:
        if on_frame is not None:
            raise ConfigError("workers: on_frame sees frames in this process; with worker processes, read the "
                              "published messages instead (segstream.Subscriber)")
        from .workers import run_workers

        return run_workers(config)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    metrics = None
    if config.metrics_port is not None:
        metrics = MetricsServer(config.metrics_port, config.health_stall, config.metrics_address)
    try:
        pipeline, progress = build_pipeline(config, show_progress=config.progress and sys.stderr.isatty(),
                                            on_frame=on_frame, share=share)
    except BaseException:
        if metrics is not None:
            metrics.close()
        raise
    if metrics is not None:
        metrics.attach(pipeline)
    if on_pipeline is not None:
        on_pipeline(pipeline)
    try:
        with on_stop_signals(pipeline.stop, "finishing frames in flight"):
            return pipeline.run()
    finally:
        pipeline.models.close()
        if metrics is not None:
            metrics.close()
        if progress is not None:
            progress.close()


@contextlib.contextmanager
def on_stop_signals(stop: Callable[[], None], doing: str) -> Iterator[None]:
    """Ctrl-C and SIGTERM call `stop` (a graceful stop, logged as `doing`)
    inside the block; the previous handlers come back after it. Only the main
    thread can handle signals: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        log.warning("signal %d: %s", signum, doing)
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
