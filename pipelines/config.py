"""The one typed configuration of a run, from a YAML file and/or CLI flags.

Validated once, up front; every error names the offending key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..stream.errors import ConfigError
from ..stream.recorded import MCAP_SUFFIX, RecordingError, expand_recordings
from ..stream.sources import local_path
from .view import parse_view


class SortConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_age: int = Field(1, ge=0)
    min_hits: int = Field(3, ge=0)
    iou_threshold: float = Field(0.3, ge=0, le=1)


class ByteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    high_thresh: float = Field(0.5, ge=0, le=1)
    low_thresh: float = Field(0.1, ge=0, le=1)
    new_track_thresh: float = Field(0.6, ge=0, le=1)
    lost_seconds: float = Field(1.0, ge=0)  # at the source's frame rate (30 when it does not say)
    track_buffer: int | None = Field(None, ge=0)  # in frames: overrides lost_seconds
    min_hits: int = Field(2, ge=1)
    distance_weight: float = Field(1.0, ge=0)
    std_velocity: float = Field(1.0 / 80, gt=0)
    state: Literal["xywh", "xyah"] = "xywh"  # the Kalman state: BoT-SORT's, or DeepSORT's


class DeepSortConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_cosine_distance: float = Field(0.2, ge=0, le=2)
    budget: int = Field(100, ge=1)
    max_iou_distance: float = Field(0.7, ge=0, le=1)
    max_age: int = Field(30, ge=0)
    n_init: int = Field(3, ge=1)
    appearance_weight: float = Field(0.9, ge=0, le=1)  # the rest of the cascade's cost is 1 - IoU
    ema: float | None = Field(0.9, ge=0, lt=1)  # null: deep_sort's gallery of `budget` features
    new_track_thresh: float = Field(0.6, ge=0, le=1)  # weaker detections never start a track


class SemanticSettings(BaseModel):
    """For semantic models whose ONNX file does not carry these in its metadata."""

    model_config = ConfigDict(extra="forbid")
    mean: list[float] | None = Field(None, min_length=3, max_length=3)
    std: list[float] | None = Field(None, min_length=3, max_length=3)
    input_size: list[int] | None = Field(None, min_length=2, max_length=2)
    labels: str | None = None  # text file, one class name per line
    threshold: float | None = None  # one-channel (binary) models: foreground above it; default 0.5 after a sigmoid, else 0
    min_stuff_area: int = Field(4096, ge=0)  # panoptic: smaller stuff regions are dropped


class BuildFileConfig(BaseModel):
    """What `segstream build --config` reads of a run's YAML file: how semantic
    models prepare frames, which INT8 calibration must follow. Other keys are
    the run's and are ignored here."""

    model_config = ConfigDict(extra="ignore")
    semantic: SemanticSettings = Field(default_factory=SemanticSettings)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: list[str] = Field(min_length=1)
    model: list[str] = Field(min_length=1)
    # auto: DeepSORT when the tracker gets appearance features (the best on real video),
    # BYTE without them or with camera motion compensation (the best on motion alone).
    tracker: Literal["auto", "sort", "byte", "deepsort", "none"] = "auto"
    sort: SortConfig = SortConfig()
    byte: ByteConfig = ByteConfig()
    deepsort: DeepSortConfig = DeepSortConfig()
    cmc: bool = False
    # Colour inside each mask: the best measured on PETS09-S2L1 (IDF1 52.7 -> 58.7 with BYTE) for 0.3 ms a frame.
    appearance: Literal["none", "color", "reid"] = "color"
    reid_model: str | None = None
    conf: float = Field(0.25, ge=0, le=1)
    iou: float = Field(0.7, ge=0, le=1)
    classes: list[str] | None = None
    semantic: SemanticSettings = SemanticSettings()
    panoptic: bool = False
    publish: str | None = None
    hwm: int = Field(64, ge=1)
    curve_secret: str | None = None
    curve_clients: str | None = None
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_address: str = "127.0.0.1"  # loopback: nothing listens beyond this machine unless asked
    health_stall: float = Field(30.0, gt=0)
    save: str | None = None
    trails: int = Field(0, ge=0)  # --save draws each track's last N positions (0: none)
    export: str | None = None
    record: str | None = None  # an MCAP file: frames, annotations and messages (Foxglove; runs again as a source)
    show: bool = False  # a window with the annotated frames
    view: str | None = None  # [HOST:]PORT of a live view in the browser (loopback unless a host is given)
    segment_minutes: float | None = Field(None, gt=0)  # cut --save and --export into parts this long
    max_frames: int | None = Field(None, ge=1)
    realtime: bool = False
    backend: Literal["auto", "tensorrt", "torch", "onnxruntime"] = "auto"
    device: str = "auto"
    # None: fp16 on GPUs (TensorRT, torch), the file as it is on onnxruntime. Given with
    # backend onnxruntime, it runs the fp16 or INT8 ONNX graph (engines.runtimes.typed_graph).
    precision: Literal["fp32", "fp16", "int8"] | None = None
    batch: int = Field(1, ge=1, le=64)  # frames per inference call, across sources
    batch_wait_ms: float = Field(5.0, ge=0, le=1000)  # how long a call waits for more frames
    calib: str | None = None
    cuda_graph: bool = True  # torch backend on CUDA: one graph launch per frame (a model that cannot be captured runs eagerly)
    trt_weak_typing: bool = False  # TensorRT 10: builder flags and its calibrator instead of the typed graph
    threads: int | None = Field(None, ge=1)
    infer_workers: int | None = Field(None, ge=1)
    # Processes that share out the sources (each runs every stage for its own): a
    # number, or auto (see pipelines.workers.worker_count).
    workers: int | Literal["auto"] = 1
    queue_size: int = Field(2, ge=1)
    # Live frames (batches) inside the pipeline at once, shared by the live sources, each
    # at least one: 2 keeps every stage busy at half the latency of filling the queues;
    # 1 is the lowest latency, fewer FPS.
    live_in_flight: int = Field(2, ge=1)
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    timeout: float = Field(10.0, gt=0)
    open_timeout: float | None = Field(None, gt=0)  # opening a stream (default: timeout)
    reconnect: bool = True
    progress: bool = True

    sources_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_sources_file(cls, data: Any) -> Any:
        """`sources_file`: one source per line (blank lines and # comments skipped), added to `source`."""
        if not isinstance(data, dict) or not data.get("sources_file"):
            return data
        path = Path(data["sources_file"])
        try:
            lines = path.read_text().splitlines()
        except OSError as err:
            raise ValueError(f"sources_file: cannot read {path} ({err.strerror})") from None
        listed = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not listed:
            raise ValueError(f"sources_file: {path} lists no sources (one per line)")
        given = data.get("source") or []
        given = [given] if isinstance(given, str) else list(given)
        return {**data, "source": given + listed}

    @field_validator("source", "model", "classes", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """Accept `model: a.onnx` as well as a list, and `classes: person,car`."""
        if isinstance(value, str):
            return [v.strip() for v in value.split(",")] if "," in value else [value]
        return value

    @field_validator("publish")
    @classmethod
    def _publish_names_an_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an endpoint such as tcp://127.0.0.1:5555; leave it out not to publish")
        return value

    @field_validator("source")
    @classmethod
    def _sources_are_named(cls, value: list[str]) -> list[str]:
        if any(not spec.strip() for spec in value):
            raise ValueError("an empty source; give a video file, image folder, webcam index or stream URL")
        try:
            return expand_recordings(value)  # a recording of several cameras runs each of them again
        except RecordingError as err:
            raise ValueError(str(err)) from None

    @field_validator("record")
    @classmethod
    def _record_format(cls, value: str | None) -> str | None:
        if value is not None and Path(value).suffix.lower() != MCAP_SUFFIX:
            raise ValueError(f"must end in {MCAP_SUFFIX} (an MCAP file, which Foxglove and ROS 2 tools open)")
        return value

    @field_validator("view")
    @classmethod
    def _view_address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_view(value)
        return value

    @model_validator(mode="after")
    def _record_in_one_process(self) -> RunConfig:
        if self.record and self.workers != 1:
            raise ValueError("record: not with workers (each process would need the others' frames); "
                             "record with one process")
        if self.show and self.workers != 1:
            raise ValueError("show: not with workers yet; show with one process, or use --save")
        if self.view and self.workers != 1:
            raise ValueError("view: not with workers yet; view with one process, or use --save")
        return self

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> Any:
        if value == "auto":
            return value
        try:
            count = int(value)
        except (TypeError, ValueError):
            count = 0
        if count < 1 or str(value).strip() != str(count):
            raise ValueError("a number of processes (1 or more) or auto")
        return count

    @model_validator(mode="after")
    def _resolve_auto_tracker(self) -> RunConfig:
        if self.tracker == "auto":
            self.tracker = "byte" if (self.appearance == "none" or self.cmc) else "deepsort"
        return self

    @model_validator(mode="after")
    def _cmc_needs_byte(self) -> RunConfig:
        if self.cmc and self.tracker != "byte":
            raise ValueError("cmc: camera motion compensation needs tracker: byte")
        return self

    @model_validator(mode="after")
    def _labels_exist(self) -> RunConfig:
        if self.semantic.labels and not Path(self.semantic.labels).is_file():
            raise ValueError(f"semantic.labels: file not found: {self.semantic.labels}")
        return self

    @model_validator(mode="after")
    def _int8_needs_calib(self) -> RunConfig:
        if self.precision == "int8" and not self.calib:
            raise ValueError("precision: int8 needs calib (--calib VIDEO_OR_IMAGE_DIR, frames like the deployment's)")
        local = local_path(self.calib) if self.calib else None
        if local is not None and not local.exists():  # checked now, even where TensorRT (its only user) is absent
            raise ValueError(f"calib: no such video file or image folder: {self.calib}")
        return self

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value not in ("auto", "cpu") and not (value == "cuda" or (value.startswith("cuda:") and value[5:].isdigit())):
            raise ValueError(f"device: {value!r} is not auto, cpu, cuda or cuda:N")
        return value

    @model_validator(mode="after")
    def _reid_needs_model(self) -> RunConfig:
        if self.appearance == "reid" and not self.reid_model:
            raise ValueError("appearance: reid needs reid_model (--reid-model PATH.onnx, any [N,3,H,W] -> [N,D] model)")
        return self

    @field_validator("export")
    @classmethod
    def _export_format(cls, value: str | None) -> str | None:
        if value is not None and Path(value).suffix not in (".txt", ".jsonl"):
            raise ValueError("must end in .txt (MOTChallenge) or .jsonl (one JSON message per frame)")
        return value


class TrackerConfig(BaseModel):
    """Settings of `segstream eval`: which tracker and its parameters."""

    model_config = ConfigDict(extra="forbid")
    tracker: Literal["sort", "byte", "deepsort"] = "byte"  # run's auto choice without appearance features
    sort: SortConfig = SortConfig()
    byte: ByteConfig = ByteConfig()
    deepsort: DeepSortConfig = DeepSortConfig()


def _describe(err: ValidationError, origin: str, schema: type[BaseModel] = RunConfig) -> str:
    errors = err.errors()
    # An unknown key first: a misspelt required key also shows up as that key missing.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a rule across keys
        return f"{origin}: {message}"
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        known = list(_section(schema, first["loc"][:-1]).model_fields)
        close = difflib.get_close_matches(str(first["loc"][-1]), known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{origin}: unknown key '{key}' ({hint}known keys: {', '.join(known)})"
    if first["type"] == "missing":
        return f"{origin}: '{key}' is required"
    return f"{origin}: '{key}': {message} (got {first.get('input')!r})"


def _section(schema: type[BaseModel], path: Sequence[Any]) -> type[BaseModel]:
    """The model of the section at `path` ("sort" -> SortConfig), for its key names."""
    for part in path:
        field = schema.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            break
        schema = field.annotation
    return schema


def load_config(
    path: str | None = None, overrides: dict[str, Any] | None = None, schema: type[BaseModel] = RunConfig
) -> Any:
    """YAML file values, then non-None `overrides` (CLI flags) on top, validated as `schema`."""
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config {path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: must be a mapping of key: value, got {type(loaded).__name__}")
        data.update(loaded or {})
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        # A flag inside a section (--labels -> semantic.labels) keeps the section's other YAML keys.
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, f"config {path}" if path else "config", schema)) from None
