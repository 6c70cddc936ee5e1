"""Turn a validated `RunConfig` into a ready `Pipeline`: models, sources, tracker, sinks.

Everything that can fail on bad input (model files, sources, endpoints,
output paths) is opened here, before any thread starts, and whatever was
opened is closed again if a later step fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ..engines.adapters.reid import ReidEmbedder
from ..engines.adapters.semantic import SemanticConfig
from ..engines.fusion.panoptic import fuse_panoptic, stuff_class_ids
from ..engines.hub import resolve_model
from ..engines.model import ModelSet, load_models
from ..engines.ops.appearance import color_embeddings
from ..engines.runtimes.batching import batchable_model
from ..engines.runtimes.engine_cache import BuildOptions, ShapeProfile
from ..stream.errors import ConfigError
from ..stream.publisher import Publisher
from ..stream.sources import default_source_id, open_source
from ..stream.types import Detections, Frame, LabelMap, PanopticMap
from ..tracking.byte import ByteTracker
from ..tracking.cmc import CameraMotion
from ..tracking.deepsort import DeepSort
from ..tracking.sort import Sort
from .config import BuildFileConfig, RunConfig, TrackerConfig
from .recording import McapSink
from .runner import Pipeline
from .show import ShowSink, check_display
from .sinks import PublishSink, Sink, VideoSink, export_sink, per_source, segmented
from .view import ViewServer

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0
TASKS = {"detect": "detection", "segment": "instance segmentation", "pose": "detection with 17 keypoints",
         "semantic": "semantic segmentation"}  # model.task, as the summary says it


@dataclass(frozen=True)
class InferenceLayout:
    """How inference uses the CPU: `workers` frames in flight, `threads` per call."""

    workers: int
    threads: int | None


def inference_layout(config: RunConfig, live: bool, cpus: int | None = None) -> InferenceLayout:
    """Explicit values win. Otherwise files favour throughput: one runtime
    thread per call and one frame in flight per core plus one, so the cores
    stay busy while another frame is decoded or post-processed (measured on
    2 cores: +18% to +38% FPS over one call on all cores). Live sources favour
    latency: one frame at a time, all cores on it. A batch (`batch` > 1) is
    one call over frames of several sources, also on all cores."""
    cpus = cpus or os.cpu_count() or 1
    if config.infer_workers is not None or config.threads is not None:
        return InferenceLayout(config.infer_workers or 1, config.threads)
    if live or cpus == 1 or config.batch > 1:  # a batch is one call: give it every core
        return InferenceLayout(1, None)
    return InferenceLayout(cpus + 1, 1)


def serial_layout(layout: InferenceLayout, serial: bool, asked_workers: int | None) -> InferenceLayout:
    """One frame in flight when a backend takes one call at a time (TensorRT,
    torch on a GPU): more would only queue at its lock, holding frames back."""
    if not serial or layout.workers == 1:
        return layout
    if asked_workers:
        log.warning("infer_workers: %d ignored, the GPU backend runs one call at a time (use --batch to fill it)",
                    asked_workers)
    return InferenceLayout(1, layout.threads)


def build_options(config: RunConfig) -> BuildOptions:
    """What GPU backends compile for: precision and a batch profile (TensorRT
    reads the input size from the model)."""
    typed = config.backend == "onnxruntime" and config.precision in ("fp16", "int8")
    return BuildOptions(config.precision or "fp16", ShapeProfile(1, config.batch, config.batch), calib=config.calib,
                        cuda_graph=config.cuda_graph, typed_graph=typed, weak_typing=config.trt_weak_typing)


def semantic_config(config: RunConfig | BuildFileConfig) -> SemanticConfig:
    s = config.semantic
    return SemanticConfig(
        tuple(s.mean) if s.mean else None, tuple(s.std) if s.std else None,  # type: ignore[arg-type]
        tuple(s.input_size) if s.input_size else None, s.labels, s.threshold,  # type: ignore[arg-type]
    )


def make_panoptic(config: RunConfig, models: ModelSet) -> Callable[[LabelMap, Detections], PanopticMap] | None:
    """The panoptic fusion step, checked against the models that were loaded."""
    if not config.panoptic:
        return None
    if models.semantic_model is None or models.primary is None or models.primary.task != "segment":
        raise ConfigError("panoptic: needs a semantic model and an instance segmentation model (two --model flags)")
    things = models.class_names
    stuff = stuff_class_ids(models.semantic_model.class_names, things)
    min_area = config.semantic.min_stuff_area
    return lambda semantic, dets: fuse_panoptic(semantic, dets, things, stuff, min_stuff_area=min_area)


def make_tracker_factory(config: RunConfig | TrackerConfig) -> Callable[..., Any] | None:
    """One tracker per stream: `factory(first_id=1, frame_rate=None)`, the
    stream's frame rate when it states one. BYTE counts a lost track's
    lifetime in seconds of it; SORT and DeepSORT count in frames."""
    if config.tracker == "none":
        return None
    if config.tracker == "byte":
        return partial(ByteTracker, **config.byte.model_dump())
    cls, params = (DeepSort, config.deepsort) if config.tracker == "deepsort" else (Sort, config.sort)

    def make(first_id: int = 1, frame_rate: float | None = None) -> Any:
        return cls(**params.model_dump(), first_id=first_id)

    return make


def make_embedder(config: RunConfig, threads: int | None) -> Any:
    """The appearance source for the tracker: None, colours in each mask, or a re-id
    model on crops. SORT and raw detections use no appearance: nothing is computed."""
    if config.tracker in ("sort", "none"):
        return None
    if config.appearance == "color":
        return color_embeddings
    if config.appearance == "reid":
        precision = "fp32" if config.precision == "fp32" else "fp16"  # no calibration for crops: int8 is fp16 here
        return ReidEmbedder.load(resolve_model(config.reid_model), config.device, threads, precision)
    return None


@dataclass(frozen=True)
class Share:
    """A worker process's share of a run whose sources are split among several
    processes (`pipelines.workers`): which sources, under the ids they have in
    the whole run, and where a restarted worker takes over."""

    source_ids: tuple[str, ...]  # the ids of `config.source`, in order
    run_source_ids: tuple[str, ...]  # every source id of the run: per-source files are named as in one process
    first_track_ids: dict[str, int] = field(default_factory=dict)  # after the ids a killed worker published
    resume_after: dict[str, int] = field(default_factory=dict)  # files: the last frame a killed worker published
    restart: int = 0  # how many workers ran these sources before this one
    cpus: int | None = None  # this worker's share of the cores, for the inference layout


def build_pipeline(
    config: RunConfig, show_progress: bool = False, on_frame: Callable[[Frame, Detections], None] | None = None,
    share: Share | None = None,
) -> tuple[Pipeline, Any]:
    """The pipeline for `config`, and its progress bar (or None). `on_frame(frame,
    detections)` sees every published frame; `share` is given in a worker process."""
    if config.show:
        check_display()  # before anything starts: without a display Qt would abort at the first frame
    ids = list(share.source_ids) if share else unique_source_ids(config.source)
    names = list(share.run_source_ids) if share else ids
    restart = share.restart if share else 0
    with contextlib.ExitStack() as undo:
        sources: list[Any] = []
        for spec, source_id in zip(config.source, ids):
            # With several sources a camera that is down at start is retried, not fatal to the others.
            src = open_config_source(config, spec, source_id, several=len(names) > 1)
            undo.callback(src.close)
            after = share.resume_after.get(source_id) if share else None
            resumed = after is not None and not src.is_live
            sources.append(ResumedSource(src, after, config.max_frames) if resumed else src)
        layout = inference_layout(config, live=any(s.is_live or config.realtime for s in sources),
                                  cpus=share.cpus if share else None)
        paths = [resolve_model(m) for m in config.model]
        if config.batch > 1:
            paths = [batchable_model(p) for p in paths]
        models = load_models(
            paths, config.conf, config.iou, config.classes,
            config.backend, config.device, layout.threads, build_options(config), semantic_config(config),
        )
        undo.callback(models.close)
        layout = serial_layout(layout, models.serial, config.infer_workers)
        log.info("inference: %d frame(s) in flight, %s runtime thread(s) each", layout.workers, layout.threads or "default")
        places = config.live_in_flight * config.batch
        if layout.workers > places and any(s.paced for s in sources):
            log.warning("--infer-workers %d with live sources: only %d live frame(s) are inside at once; "
                        "give --live-in-flight %d to keep every worker busy", layout.workers, places, layout.workers + 1)
        sinks: list[Sink] = []
        if config.publish:
            publisher = Publisher(config.publish, hwm=config.hwm, curve_secret=config.curve_secret,
                                  curve_clients=config.curve_clients)
            sinks.append(PublishSink(publisher))
            undo.callback(sinks[-1].close)
        live = {s.source_id: s.is_live for s in sources}
        segment_s = config.segment_minutes * 60 if config.segment_minutes else None
        if config.export:
            sinks.append(export_sink(config.export, live, segment_s, names, append=restart > 0))
            undo.callback(sinks[-1].close)
        if config.save:
            fps = {s.source_id: s.fps or DEFAULT_FPS for s in sources}

            def video(path: str, sid: str) -> Sink:
                return segmented(restarted_path(path, restart), segment_s, live[sid], lambda part: VideoSink(
                    part, fps[sid], models.class_names, live=live[sid], trails=config.trails))

            sinks.append(per_source(config.save, list(live), video, names))
        if config.record:
            sinks.append(segmented(config.record, segment_s, any(live.values()),
                                   lambda part: McapSink(part, names, models.class_names)))
            undo.callback(sinks[-1].close)
        if config.view:
            sinks.append(ViewServer(config.view, ids, models.class_names, config.trails))
            undo.callback(sinks[-1].close)
        window = ShowSink(ids, models.class_names, config.trails) if config.show else None
        if window is not None:
            sinks.append(window)
            undo.callback(window.close)
        progress = _progress_bar(sources, config.max_frames) if show_progress else None
        pipeline = Pipeline(
            sources, models, make_tracker_factory(config), sinks, config.queue_size, config.max_frames,
            on_frame=_frame_callback(progress, on_frame),
            infer_workers=layout.workers,
            make_camera_motion=CameraMotion if config.cmc else None,
            embed=make_embedder(config, layout.threads),
            panoptic=make_panoptic(config, models),
            batch=config.batch,
            batch_wait_ms=config.batch_wait_ms,
            live_in_flight=config.live_in_flight,
            first_track_ids=share.first_track_ids if share else None,
        )
        if window is not None:
            window.on_quit = pipeline.stop  # `q` or closing the window ends the run as Ctrl-C does
        pipeline.stats.setup = describe_run(config, models, layout.workers, layout.threads)
        undo.pop_all()
    return pipeline, progress


def describe_run(config: RunConfig, models: Any, in_flight: int, threads: int | None) -> list[str]:
    """The summary's first lines: each model and what it is, where it runs, and the tracker."""
    lines = []
    for model in models.models:
        names = model.class_names
        kept = f", {len(config.classes)} kept ({', '.join(config.classes)})" if config.classes else ""
        device = getattr(model.backend, "device", "cpu")
        where = f"{model.backend.name} on {device}" + (", pre/post-processing there too" if model.device_path else "")
        if config.backend == "onnxruntime" and config.precision in ("fp16", "int8"):
            where += f", its {config.precision} graph" + (f" (calibrated on {Path(config.calib).name})"
                                                          if config.precision == "int8" and config.calib else "")
        task = TASKS.get(model.task, model.task)
        lines.append(f"model {Path(model.path).name}: {task}, {len(names)} classes{kept}; {where}")
    lines.append(f"inference: {in_flight} frame(s) at once, {threads or 'default'} runtime thread(s) each"
                 + (f", batches of up to {config.batch}" if config.batch > 1 else ""))
    appearance = {"color": "colour features", "reid": f"re-id ({Path(str(config.reid_model)).name})",
                  "none": "no appearance"}.get(config.appearance, config.appearance)
    tracker = {"none": "none (detections only)", "sort": "SORT (motion only)"}.get(
        config.tracker, f"{'BYTE' if config.tracker == 'byte' else 'DeepSORT'} with {appearance}")
    lines.append(f"tracker: {tracker}" + (", camera motion compensated" if config.cmc else ""))
    return lines


def open_config_source(config: RunConfig, spec: str, source_id: str, several: bool) -> Any:
    """A source as the run's config opens it (`several`: one of several sources,
    so a camera that is down at start is retried instead of fatal)."""
    return open_source(spec, source_id, config.realtime, config.rtsp_transport, config.timeout, config.reconnect,
                       wait_for_live=several, open_timeout=config.open_timeout)


def restarted_path(path: str, restart: int) -> str:
    """Where a restarted worker writes a video its predecessor left playable:
    `out.mp4` -> `out.restart1.mp4`."""
    if not restart:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}.restart{restart}{p.suffix}"))


class ResumedSource:
    """A file source that a restarted worker takes over: the frames up to
    `after`, which its predecessor published, are read and skipped, and with
    `max_frames` the source still ends where it would have."""

    def __init__(self, source: Any, after: int, max_frames: int | None = None) -> None:
        self._source, self.after, self.max_frames = source, after, max_frames

    def __iter__(self) -> Any:
        for frame in self._source:
            if self.max_frames is not None and frame.seq >= self.max_frames:
                return
            if frame.seq > self.after:
                yield frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


def _frame_callback(progress: Any, on_frame: Callable[[Frame, Detections], None] | None) -> Any:
    """What the pipeline calls with each published packet: the progress bar, then the user's callback."""
    if progress is None and on_frame is None:
        return None

    def call(packet: Any) -> None:
        if progress is not None:
            progress.update(1)
        if on_frame is not None:
            on_frame(packet.frame, packet.detections)
    return call


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

