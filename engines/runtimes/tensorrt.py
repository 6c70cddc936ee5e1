"""TensorRT 10 and 11 backend: compile an ONNX file once per device, then run it.

Kept thin on purpose. Building: parse the ONNX file (for fp16 and INT8 its
precision-typed copy, built strongly typed; on TensorRT 10 `weak_typing`
sets precision flags instead, as before), one optimisation profile, a
timing cache shared by all builds on this GPU, and a progress monitor
(builds take minutes on a Jetson). Running: the name-based
tensor API (`set_input_shape`, `set_tensor_address`, `execute_async_v3`) on a
CUDA stream, with device buffers allocated once as torch CUDA tensors at the
profile's largest shapes; outputs are copied out before `infer` returns.

Engines are cached by engines/runtimes/engine_cache.py (model hash, TensorRT version,
GPU, precision, shapes). This module imports `tensorrt` and `torch` only
when used, so the rest of segstream works without them.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ...stream.errors import ModelError
from ...stream.types import Frame
from .base import Backend, TensorSpec
from .engine_cache import BuildOptions, DeviceInfo, EngineCache, ShapeProfile

log = logging.getLogger(__name__)


def import_tensorrt() -> Any:
    """The `tensorrt` module, or a one-line error that says how to get it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise ModelError(
            "TensorRT is not installed: pip install 'segstream[trt]' on a machine with an NVIDIA GPU "
            "(Jetson: use JetPack's python3-libnvinfer)"
        ) from None
    check_version(trt.__version__)
    return trt


def check_version(version: str) -> None:
    """TensorRT 10 and 11 are supported. Both build the precision-typed graph
    strongly typed (`builds_typed`); 10 can still build as it always had
    (builder flags, layer precision, a calibrator: `weak_typing`), which 11
    cannot. JetPack ships 10."""
    major = version.split(".")[0]
    if major not in ("10", "11"):
        raise ModelError(f"TensorRT {version} is installed, and segstream's TensorRT backend supports 10 and 11: "
                         "pip install 'tensorrt>=10,<12'")


def strongly_typed(trt: Any) -> bool:
    """Whether this TensorRT only builds strongly typed networks (11 and later):
    precision then comes from the graph (engines.runtimes.typed_graph), and the
    weak-typing calls (FP16/INT8 flags, layer precision, calibrators) are gone."""
    return int(str(trt.__version__).split(".")[0]) >= 11


def builds_typed(trt: Any, options: BuildOptions) -> bool:
    """Whether this build parses the precision-typed graph (engines.runtimes.typed_graph)
    as a strongly typed network: always on TensorRT 11, on 10 unless `weak_typing`.
    Why by default on 10 too: NVIDIA deprecated weak typing in 10.12, and one graph
    then makes the same engine's precision on Jetson (10) and elsewhere (11), the
    graph whose accuracy bench/precision.py measures on the CPU."""
    if strongly_typed(trt):
        if options.weak_typing:
            raise ModelError(f"--trt-weak-typing: TensorRT {trt.__version__} builds strongly typed networks only; "
                             "drop the flag (precision comes from the typed ONNX graph)")
        return True
    return not options.weak_typing


def device_info(trt: Any, device: str = "cuda") -> DeviceInfo:
    """TensorRT version and GPU of `device`, as the engine cache keys them."""
    import torch

    if not torch.cuda.is_available():
        raise ModelError("TensorRT needs an NVIDIA GPU, and torch sees none (torch.cuda.is_available() is False)")
    index = torch.device(device).index or 0
    return DeviceInfo(trt.__version__, torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index)))


def profile_for(input_shape: tuple[int | None, ...], batch: int, default_hw: tuple[int, int]) -> ShapeProfile:
    """The optimisation profile for an NCHW input whose dims are ints or None
    (dynamic): a dynamic batch axis gets 1..`batch`, a fixed one must fit
    `batch`, dynamic height/width get `default_hw` (the size the model is fed)."""
    if len(input_shape) != 4:
        raise ModelError(f"only models with an [N, 3, H, W] image input are compiled, this one takes {list(input_shape)}")
    n, _, h, w = input_shape
    if n is not None and n != batch:
        raise ModelError(
            f"the model's batch axis is fixed at {n}, so it cannot run batches of {batch}: "
            "export it with a dynamic batch (Ultralytics: dynamic=True) or use --batch 1"
        )
    hw = (h if h is not None else default_hw[0], w if w is not None else default_hw[1])
    return ShapeProfile(1 if n is None else n, batch, batch, hw, hw, hw)


def options_for_model(
    path: str, build: BuildOptions | None, preprocess: Callable[[Frame], np.ndarray] | None = None,
) -> tuple[BuildOptions, dict[str, str]]:
    """`build` with its shape profile filled in from the ONNX file's input, and
    the file's metadata for the adapters. Static dims stay as they are; a
    dynamic height/width gets the size `preprocess` (the adapter's own
    preparation, which may follow the run's config) makes of a frame, else the
    export's imgsz: a profile that missed the fed size would fail every call."""
    from .base import imgsz_of
    from .onnx_info import onnx_inputs_and_metadata

    inputs, metadata = onnx_inputs_and_metadata(path)
    options = build or BuildOptions()
    if len(inputs) != 1:
        raise ModelError(f"{path}: expected one image input, got {[i.name for i in inputs]}")
    hw = imgsz_of(metadata)
    shape = inputs[0].shape
    if preprocess is not None and len(shape) == 4 and None in shape[2:]:
        from .calibration import sample_frame

        blob = preprocess(sample_frame())
        hw = (int(blob.shape[-2]), int(blob.shape[-1]))
    profile = profile_for(shape, options.profile.max_batch, hw)
    return replace(options, profile=profile), metadata


def _progress_monitor(trt: Any, write: Callable[[str], None]) -> Any:
    """A `trt.IProgressMonitor` that prints each build phase and its steps."""

    class Progress(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._steps[phase_name] = num_steps
            indent = "  " if parent_phase else ""
            write(f"{indent}{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            total = self._steps.get(phase_name, 0)
            if total >= 10 and (step + 1) % max(total // 10, 1) == 0:
                write(f"    {phase_name}: {step + 1}/{total}")
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            self._steps.pop(phase_name, None)

    return Progress()


def _calibrator(trt: Any, batches: Iterable[np.ndarray], cache_path: Path) -> Any:
    """An entropy calibrator fed with preprocessed frames (N, 3, H, W) float32."""
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches: Iterator[np.ndarray] = iter(batches)
            self._device: Any = None
            self._size = 1

        def get_batch_size(self) -> int:
            return self._size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._size = len(batch)
            self._device = torch.from_numpy(np.ascontiguousarray(batch)).cuda()  # kept alive until the next call
            return [int(self._device.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)  # the first build runs before any engine is stored
            cache_path.write_bytes(bytes(cache))

    return Calibrator()


def keep_tail_fp32(trt: Any, network: Any) -> int:
    """Constrain the layers after the network's last convolutions and matrix
    products (box, keypoint and mask-coefficient decoding; engines.runtimes.precision
    says why) to compute and store fp32. Constants, and layers with a non-float
    output (shape arithmetic, indices), are left alone. Returns how many were
    constrained."""
    from .precision import Layer, output_tail

    heavy = {trt.LayerType.CONVOLUTION, trt.LayerType.DECONVOLUTION, trt.LayerType.MATRIX_MULTIPLY}
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    graph = [
        Layer(
            layer.type in heavy,
            tuple(t.name for t in (layer.get_input(j) for j in range(layer.num_inputs)) if t is not None),
            tuple(layer.get_output(j).name for j in range(layer.num_outputs)),
        )
        for layer in layers
    ]
    kept = 0
    for i in output_tail(graph):
        layer = layers[i]
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if layer.type == trt.LayerType.CONSTANT or not outputs or any(t.dtype != trt.float32 for t in outputs):
            continue  # a constant's fp32 weights reach an fp32 consumer as they are
        layer.precision = trt.float32
        for j in range(len(outputs)):
            layer.set_output_type(j, trt.float32)  # else the result may still be stored in fp16
        kept += 1
    return kept


def build_serialized(
    trt: Any,
    onnx_path: str,
    options: BuildOptions,
    timing_cache: Path,
    calib_batches: Iterable[np.ndarray] | None = None,
    progress: Callable[[str], None] | None = None,
    calib_cache: Path | None = None,
) -> bytes:
    """Compile `onnx_path` to a serialized engine; updates the timing cache file
    (and for INT8 writes the scales to `calib_cache`, which must belong to this
    model and calibration set: `EngineCache.calibration_cache_path`)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    typed = builds_typed(trt, options)
    # Strongly typed: the tensors' types say the precision. Else (TensorRT 10) explicit batch, its only other mode.
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typed else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "unknown error"
        raise ModelError(f"TensorRT cannot parse {onnx_path}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    config.clear_flag(trt.BuilderFlag.TF32)  # on by default; fp32 layers stay fp32 (on an H200 TF32 moved boxes)
    if options.precision in ("fp16", "int8") and not typed:
        config.set_flag(trt.BuilderFlag.FP16)  # int8 falls back to fp16 (not fp32) where a layer cannot quantise
        if options.fp32_tail:
            kept = keep_tail_fp32(trt, network)
            # Prefer, not obey: a layer TensorRT has no fp32 kernel for runs in fp16 with a warning, not a failed build.
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
            (progress or log.info)(f"{kept} layers after the last convolutions kept in fp32 (box and keypoint decoding)")

    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        minimum, optimum, maximum = options.profile.shapes(int(tensor.shape[1]))
        profile.set_shape(tensor.name, minimum, optimum, maximum)
    config.add_optimization_profile(profile)

    if options.precision == "int8" and not typed:
        if calib_batches is None or calib_cache is None:
            raise ModelError("int8 needs calibration frames: give --calib VIDEO_OR_IMAGE_DIR")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, calib_batches, calib_cache)
        config.set_calibration_profile(profile)

    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if progress is not None:
        config.progress_monitor = _progress_monitor(trt, progress)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"TensorRT could not build {onnx_path} ({options.precision}); rerun with --debug for its log")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def ensure_engine(
    onnx_path: str,
    options: BuildOptions,
    device: str = "cuda",
    cache: EngineCache | None = None,
    progress: Callable[[str], None] | None = None,
    calib_preprocess: Callable[[Frame], np.ndarray] | None = None,
) -> Path:
    """The cached engine for this model, device and options, built first if needed.
    INT8 calibration frames come from `options.calib`, prepared by
    `calib_preprocess` (the model adapter's preprocessing; `engines.model.onnx_preprocess`).

    A miss is explained in one line (new model, changed file, other GPU or
    TensorRT version) and rebuilt; nothing is ever reused across devices."""
    trt = import_tensorrt()
    if not Path(onnx_path).is_file():
        raise ModelError(f"model file not found: {onnx_path}")
    typed = builds_typed(trt, options)  # before anything is looked up: weak typing on 11 is one line
    cache = cache or EngineCache()
    info = device_info(trt, device)
    prepare = None
    if options.precision == "int8":
        from .calibration import fingerprint, yolo_preprocess

        prepare = calib_preprocess or yolo_preprocess(options.profile)
        options = replace(options, calib_input=fingerprint(prepare))  # the engine is keyed by the preparation too
    found, why = cache.lookup(onnx_path, info, options)
    if found is not None:
        log.info("using cached TensorRT engine %s", found)
        return found
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    say(f"{why} ({options.precision}, {info.describe()}); this can take minutes")
    batches, calib_cache = None, None
    if typed and options.precision in ("fp16", "int8"):
        from .typed_graph import ensure_typed_graph

        # Strongly typed, the precision is read from the graph: build from its fp16 or QDQ INT8 copy.
        graph = str(ensure_typed_graph(onnx_path, options, prepare, say=say))
        data = build_serialized(trt, graph, options, cache.timing_cache_path(info), None, say, None)
        path = cache.store(onnx_path, info, options, data)
        say(f"engine saved to {path}")
        return path
    if prepare is not None:
        batches, calib_cache = calibration_input(cache, onnx_path, info, options, prepare, say)
    data = build_serialized(trt, onnx_path, options, cache.timing_cache_path(info), batches, say, calib_cache)
    path = cache.store(onnx_path, info, options, data)
    say(f"engine saved to {path}")
    return path


def calibration_input(
    cache: EngineCache,
    onnx_path: str,
    device: DeviceInfo,
    options: BuildOptions,
    prepare: Callable[[Frame], np.ndarray],
    say: Callable[[str], None],
) -> tuple[Iterator[np.ndarray], Path]:
    """(batches of prepared frames, calibration cache file) for an INT8 build.

    The cache file belongs to this model, device and calibration set only; when
    it exists TensorRT reads its scales and no frame is decoded. Otherwise a
    calibration source without a single batch of frames (an empty folder, a
    video shorter than the batch) fails here in one line, before the build,
    rather than inside TensorRT's calibration callback."""
    from .calibration import calibration_batches

    calib_cache = cache.calibration_cache_path(onnx_path, device, options)
    batches = calibration_batches(options.calib or "", options.profile, options.calib_frames, prepare)
    if calib_cache.is_file():
        say(f"reusing the INT8 scales in {calib_cache}")
        return batches, calib_cache
    first = next(batches, None)
    if first is None:
        raise ModelError(f"calib: {options.calib} has fewer than {options.profile.opt_batch} frame(s) to calibrate "
                         "with; give a video file or image folder from the deployment's camera")
    return itertools.chain([first], batches), calib_cache


class TensorRTBackend(Backend):
    """Runs a serialized TensorRT engine on one GPU.

    `infer` takes and returns numpy arrays (one host-to-device copy per input
    from pinned memory, outputs copied back); `infer_device` takes torch CUDA
    tensors and returns torch CUDA tensors, for the GPU data path that
    letterboxes and assembles masks on the GPU."""

    name = "tensorrt"
    serial = True

    def __init__(self, engine_path: Path, device: str = "cuda", metadata: dict[str, str] | None = None) -> None:
        import torch

        trt = import_tensorrt()
        self._torch = torch
        self.device = torch.device(device)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise ModelError(f"cannot load TensorRT engine {engine_path}: delete it and it will be rebuilt")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(self.device)
        self.metadata = metadata or {}
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}

        def spec(n: str) -> TensorSpec:
            shape = tuple(int(d) if d >= 0 else None for d in self.engine.get_tensor_shape(n))
            return TensorSpec(n, shape, dtypes[n].name)

        self.inputs = [spec(n) for n in names if is_input[n]]
        self.outputs = [spec(n) for n in names if not is_input[n]]
        # Allocate once, at the largest shapes of profile 0: set every input to its max, read the outputs' shapes.
        self._buffers: dict[str, Any] = {}
        for s in self.inputs:
            biggest = tuple(self.engine.get_tensor_profile_shape(s.name, 0)[2])
            self.context.set_input_shape(s.name, biggest)
            self._buffers[s.name] = torch.empty(int(np.prod(biggest)), dtype=_torch_dtype(torch, dtypes[s.name]),
                                                device=self.device)
        for s in self.outputs:
            biggest = tuple(self.context.get_tensor_shape(s.name))
            self._buffers[s.name] = torch.empty(int(np.prod(biggest)), dtype=_torch_dtype(torch, dtypes[s.name]),
                                                device=self.device)
        self._pinned: dict[str, Any] = {}
        self._lock = threading.Lock()  # one context, one set of buffers: one call at a time

    def _bind(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
        """Set input shapes and tensor addresses; -> views of the buffers with this call's shapes."""
        views = {}
        for name, shape in shapes.items():
            if not self.context.set_input_shape(name, shape):
                low, _, high = self.engine.get_tensor_profile_shape(name, 0)
                raise ModelError(f"input {name} of shape {list(shape)} is outside the engine's profile "
                                 f"({list(low)} to {list(high)}): rebuild it with a larger --batch")
            views[name] = self._buffers[name][: int(np.prod(shape))].view(shape)
        for s in self.outputs:
            shape = tuple(self.context.get_tensor_shape(s.name))
            views[s.name] = self._buffers[s.name][: int(np.prod(shape))].view(shape)
        for name, view in views.items():
            self.context.set_tensor_address(name, view.data_ptr())
        return views

    def _run(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ModelError("TensorRT execution failed")

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with self._lock, torch.cuda.stream(self.stream):
            views = self._bind({n: tuple(a.shape) for n, a in feed.items()})
            for name, array in feed.items():
                pinned = self._pinned.get(name)
                if pinned is None or pinned.numel() < array.size:
                    pinned = self._pinned[name] = torch.empty(self._buffers[name].numel(),
                                                              dtype=self._buffers[name].dtype).pin_memory()
                host = pinned[: array.size].view(array.shape)
                host.numpy()[...] = array
                views[name].copy_(host, non_blocking=True)
            self._run()
            out = {s.name: views[s.name].to("cpu", non_blocking=False) for s in self.outputs}
        return {name: t.numpy() for name, t in out.items()}

    def infer_device(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Torch CUDA tensors in, torch CUDA tensors out (cloned: the buffers are reused next call)."""
        torch = self._torch
        caller = torch.cuda.current_stream(self.device)
        with self._lock:
            views = self._bind({n: tuple(t.shape) for n, t in feed.items()})
            # The inputs were made on the caller's stream (letterbox kernels): wait for them.
            self.stream.wait_stream(caller)
            with torch.cuda.stream(self.stream):
                for name, tensor in feed.items():
                    views[name].copy_(tensor, non_blocking=True)
                self._run()
                out = {s.name: views[s.name].clone() for s in self.outputs}
            self.stream.synchronize()
        for tensor in out.values():  # allocated on our stream, used on the caller's: keep the allocator from
            tensor.record_stream(caller)  # handing their memory to our next call while the caller still reads it
        return out

    def close(self) -> None:
        for attr in ("context", "engine", "_buffers", "_pinned"):
            self.__dict__.pop(attr, None)


def _torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
