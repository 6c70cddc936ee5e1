"""Where compiled TensorRT engines live, and when one may be reused.

A TensorRT engine is only valid for the TensorRT version and the GPU it was
built on, and it bakes in the precision and the shape profile. So an engine
is stored under a key made of all of them plus the ONNX file's content hash:
a changed model, another card or an upgraded TensorRT gets a new build, never
a silently reused (and crashing or wrong) engine. Each engine has a JSON
sidecar that says what it was built for, so a miss can be explained in one
line ("built for TensorRT 10.3 on Orin; this is 10.7 on H100: rebuilding").

Pure Python, no TensorRT import: the logic is tested on machines without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from ...stream.errors import ConfigError, OutputError
from ..hub import cache_dir, sha256_of

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class DeviceInfo:
    """What an engine is tied to: the TensorRT version and the GPU."""

    trt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]

    def describe(self) -> str:
        major, minor = self.compute_capability
        return f"TensorRT {self.trt_version} on {self.gpu_name} (sm_{major}{minor})"


@dataclass(frozen=True)
class ShapeProfile:
    """One optimisation profile: min/opt/max batch and input size (H, W).

    A model with a static input has min == opt == max; `batch` > 1 asks for a
    dynamic batch axis (frames of several cameras in one call)."""

    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1
    min_hw: tuple[int, int] = (0, 0)
    opt_hw: tuple[int, int] = (0, 0)
    max_hw: tuple[int, int] = (0, 0)

    def shapes(self, channels: int = 3) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NCHW shapes for `IOptimizationProfile.set_shape`."""
        return (
            (self.min_batch, channels, *self.min_hw),
            (self.opt_batch, channels, *self.opt_hw),
            (self.max_batch, channels, *self.max_hw),
        )


@dataclass(frozen=True)
class BuildOptions:
    """How to compile: precision, shape profile, workspace, INT8 calibration frames."""

    precision: str = "fp16"
    profile: ShapeProfile = field(default_factory=ShapeProfile)
    workspace_mb: int = 1024
    calib: str | None = None  # video file or image folder; only for int8
    calib_frames: int = 256
    calib_input: str | None = None  # int8: fingerprint of how calibration frames are prepared (`calibration.fingerprint`)
    cuda_graph: bool = True  # torch backend on CUDA: replay the model as one CUDA graph where it can be captured
    fp32_tail: bool = True  # fp16/int8: keep the layers after the last convolutions in fp32 (engines.runtimes.precision)
    typed_graph: bool = False  # onnxruntime: run the fp16 or INT8 ONNX graph (engines.runtimes.typed_graph)
    # TensorRT 10 only: precision by builder flags, fp32 layer constraints and TensorRT's entropy
    # calibrator (weak typing, deprecated since 10.12), instead of building the typed graph strongly typed
    weak_typing: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.precision == "int8" and not self.calib:
            raise ConfigError("int8 needs calibration frames: give --calib VIDEO_OR_IMAGE_DIR")
        p = self.profile
        if not (1 <= p.min_batch <= p.opt_batch <= p.max_batch):
            raise ConfigError(f"batch: need 1 <= min <= opt <= max, got {p.min_batch}/{p.opt_batch}/{p.max_batch}")

    def key_fields(self) -> dict:
        """What changes the compiled engine (the calibration source does, its path's spelling does not matter
        beyond that; the workspace does not change correctness, but it can change tactics, so it is kept)."""
        d = asdict(self)
        d.pop("cuda_graph")
        d.pop("typed_graph")
        if self.precision == "fp32":
            d.pop("fp32_tail")  # everything is fp32 already
            d.pop("weak_typing")  # an fp32 network is the same network either way
        d["calib"] = str(Path(self.calib).resolve()) if self.calib else None
        return d


def engine_key(onnx_sha256: str, device: DeviceInfo, options: BuildOptions) -> str:
    """A short, stable hash of everything an engine depends on."""
    payload = json.dumps(
        {"onnx": onnx_sha256, "device": asdict(device), "options": options.key_fields()}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CacheEntry:
    engine: Path
    sidecar: Path


class EngineCache:
    """Engines under `root` (default `$SEGSTREAM_CACHE/engines`), one file per key.

    `lookup` returns a usable engine or None, logging why an engine built
    from the same ONNX file could not be reused; `store` writes atomically,
    so a build killed half way never leaves an engine that looks valid."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else cache_dir() / "engines"
        self._hashes: dict[tuple[str, int, int], str] = {}

    def onnx_hash(self, onnx_path: str) -> str:
        """sha256 of the model file, read once per version of the file (a lookup
        and the store after a build would otherwise read a large model twice)."""
        path = Path(onnx_path).resolve()
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._hashes:
            self._hashes[key] = sha256_of(path)
        return self._hashes[key]

    def entry(self, onnx_path: str, key: str) -> CacheEntry:
        stem = Path(onnx_path).stem
        return CacheEntry(self.root / f"{stem}.{key}.engine", self.root / f"{stem}.{key}.json")

    def timing_cache_path(self, device: DeviceInfo) -> Path:
        """One timing cache per TensorRT version and GPU, shared by all models (it speeds rebuilds up)."""
        tag = hashlib.sha256(json.dumps(asdict(device), sort_keys=True).encode()).hexdigest()[:16]
        return self.root / f"timing.{tag}.cache"

    def calibration_cache_path(self, onnx_path: str, device: DeviceInfo, options: BuildOptions) -> Path:
        """Where INT8 scales for this model, device and calibration set (frames, their
        count and preparation) are kept. TensorRT takes a calibration cache it is
        given without recalibrating, so one shared by models or calibration sets
        would silently quantise with another network's or another video's ranges
        (TensorRT leaves that check to the application). Not keyed by the shape
        profile: a `--batch` rebuild reuses the scales."""
        fields = {k: v for k, v in options.key_fields().items() if k in ("calib", "calib_frames", "calib_input")}
        payload = json.dumps({"onnx": self.onnx_hash(onnx_path), "device": asdict(device), **fields}, sort_keys=True)
        tag = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return self.root / f"{Path(onnx_path).stem}.calib.{tag}.cache"

    def lookup(self, onnx_path: str, device: DeviceInfo, options: BuildOptions) -> tuple[Path | None, str]:
        """(engine path or None, why): the cached engine for exactly this model,
        device and options, or None with the reason a rebuild is needed."""
        onnx_hash = self.onnx_hash(onnx_path)
        e = self.entry(onnx_path, engine_key(onnx_hash, device, options))
        if e.engine.is_file() and e.sidecar.is_file():
            return e.engine, "cached"
        return None, self._explain_miss(onnx_path, onnx_hash, device, options)

    def _explain_miss(self, onnx_path: str, onnx_hash: str, device: DeviceInfo, options: BuildOptions) -> str:
        name = Path(onnx_path).name
        others = list(self._sidecars_for(onnx_path))
        if not others:
            return f"no engine for {name} yet: building"
        same_model = [meta for meta in others if meta.get("onnx_sha256") == onnx_hash]
        if not same_model:
            return f"{name} changed since its engine was built: rebuilding"
        same_device = []
        for meta in same_model:
            built = DeviceInfo(**{**meta["device"], "compute_capability": tuple(meta["device"]["compute_capability"])})
            if built != device:
                return f"engine for {name} was built for {built.describe()}; this is {device.describe()}: rebuilding"
            same_device.append(meta.get("options", {}))
        wanted = json.loads(json.dumps(options.key_fields()))  # as the sidecars hold them: tuples are lists
        changes = min(([k for k in sorted(set(wanted) | set(had)) if had.get(k) != wanted.get(k)]
                       for had in same_device), key=len)  # the options of the closest engine
        if not changes:
            return f"the engine file of {name} is missing: rebuilding"
        if "precision" in changes or "profile" in changes:
            return f"no engine for {name} with {options.precision} and this shape profile yet: building"
        return f"engine for {name} was built with other options ({', '.join(changes)}): rebuilding"

    def _sidecars_for(self, onnx_path: str) -> Iterable[dict]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob(f"{Path(onnx_path).stem}.*.json")):
            try:
                yield json.loads(path.read_text())
            except (OSError, ValueError):
                log.warning("ignoring unreadable engine sidecar %s", path)

    def store(self, onnx_path: str, device: DeviceInfo, options: BuildOptions, engine_bytes: bytes) -> Path:
        onnx_hash = self.onnx_hash(onnx_path)
        e = self.entry(onnx_path, engine_key(onnx_hash, device, options))
        meta = {"onnx": str(Path(onnx_path).resolve()), "onnx_sha256": onnx_hash, "device": asdict(device),
                "options": options.key_fields()}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _write_atomic(e.engine, engine_bytes)
            _write_atomic(e.sidecar, json.dumps(meta, indent=2).encode())  # last: its presence marks a complete engine
        except OSError as err:
            raise OutputError(f"cannot write the engine cache in {self.root} ({err.strerror}); "
                              "set SEGSTREAM_CACHE to a writable folder") from None
        return e.engine


def _write_atomic(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)
