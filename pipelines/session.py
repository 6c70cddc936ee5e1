"""Turn a validated `RunConfig` into a ready `Pipeline`: models, sources, tracker, sinks.

Everything that can fail on bad input (model files, sources, endpoints,
output paths) is opened here, before any thread starts, and whatever was
opened is closed again if a later step fails.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from typing import Any

from engines.hub import resolve_model
from engines.model import load_models
from stream.publisher import Publisher
from stream.sources import default_source_id, open_source
from tracking.sort import Sort

from .config import RunConfig
from .runner import Pipeline
from .sinks import PublishSink, Sink, VideoSink, export_sink

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0


def make_tracker_factory(config: RunConfig) -> Any:
    if config.tracker == "none":
        return None
    s = config.sort
    return partial(Sort, max_age=s.max_age, min_hits=s.min_hits, iou_threshold=s.iou_threshold)


def build_pipeline(config: RunConfig, show_progress: bool = False) -> tuple[Pipeline, Any]:
    with contextlib.ExitStack() as undo:
        models = load_models(
            [resolve_model(m) for m in config.model], config.conf, config.iou, config.classes,
            config.backend, config.device, config.threads,
        )
        undo.callback(models.close)
        sources = []
        for spec, source_id in zip(config.source, unique_source_ids(config.source)):
            src = open_source(spec, source_id, config.realtime, config.rtsp_transport, config.timeout)
            undo.callback(src.close)
            sources.append(src)
        sinks: list[Sink] = []
        if config.publish:
            sinks.append(PublishSink(Publisher(config.publish, hwm=config.hwm)))
            undo.callback(sinks[-1].close)
        if config.export:
            sinks.append(export_sink(config.export))
            undo.callback(sinks[-1].close)
        if config.save:
            sinks.append(VideoSink(config.save, sources[0].fps or DEFAULT_FPS, models.class_names))
        progress = None
        if show_progress:
            progress = _progress_bar(sources, config.max_frames)
        pipeline = Pipeline(
            sources, models, make_tracker_factory(config), sinks, config.queue_size, config.max_frames,
            on_frame=(lambda _p: progress.update(1)) if progress is not None else None,
        )
        undo.pop_all()
    return pipeline, progress


def unique_source_ids(specs: list[str]) -> list[str]:
    """Default ids (file stem, camN, host+path), suffixed -2, -3... where two collide,
    so every source keeps its own topic and track ids."""
    ids: list[str] = []
    for spec in specs:
        base = default_source_id(spec)
        candidate, n = base, 1
        while candidate in ids:
            n += 1
            candidate = f"{base}-{n}"
        ids.append(candidate)
    return ids


def _progress_bar(sources: list, max_frames: int | None) -> Any:
    from tqdm import tqdm

    counts = [s.frame_count if max_frames is None else min(s.frame_count or max_frames, max_frames) for s in sources]
    total = sum(counts) if all(c is not None for c in counts) else None
    return tqdm(total=total, unit="frame", desc="segstream", dynamic_ncols=True)

