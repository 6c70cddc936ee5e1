"""Which runtime runs a model on this machine, and why: the one place that
knows every runtime (each is imported only when chosen, since importing torch
or TensorRT costs seconds)."""

from __future__ import annotations

import importlib.util
import logging
import sys
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

from ...stream.errors import ModelError
from .base import Backend

log = logging.getLogger(__name__)


BackendFactory = Callable[..., Backend]

ORDER = ("tensorrt", "torch", "onnxruntime")  # what `auto` tries on a GPU, best first


def _onnxruntime(path: str, device: str, threads: int | None, build: Any, preprocess: Any = None) -> Backend:
    from .onnxruntime import OnnxRuntimeBackend

    if build is not None and build.typed_graph and build.precision in ("fp16", "int8"):
        from .typed_graph import ensure_typed_graph

        path = str(ensure_typed_graph(path, build, preprocess))
    elif build is not None and build.precision == "int8":
        log.warning("%s: int8 is for TensorRT engines; onnxruntime runs the file as it is", Path(path).name)
    return OnnxRuntimeBackend(path, device=device, threads=threads)


def _tensorrt(path: str, device: str, threads: int | None, build: Any, preprocess: Any = None) -> Backend:
    from .tensorrt import TensorRTBackend, ensure_engine, options_for_model

    options, metadata = options_for_model(path, build, preprocess)
    return TensorRTBackend(ensure_engine(path, options, device, calib_preprocess=preprocess), device, metadata)


def _torch(path: str, device: str, threads: int | None, build: Any, preprocess: Any = None) -> Backend:
    from .torch import TorchBackend

    half = build is not None and build.precision != "fp32" and device != "cpu"
    if build is not None and build.precision == "int8":
        log.warning("%s: int8 is for TensorRT engines; torch runs it in %s", Path(path).name, "fp16" if half else "fp32")
    graph = build is None or build.cuda_graph  # BuildOptions' default: on
    return TorchBackend(path, device=device, half=half, cuda_graph=graph)


BACKENDS: dict[str, BackendFactory] = {"tensorrt": _tensorrt, "torch": _torch, "onnxruntime": _onnxruntime}


class Capabilities:
    """What this machine can run, probed lazily (importing torch or TensorRT
    costs seconds, so a CPU-only run never does)."""

    @cached_property
    def cuda(self) -> bool:
        # Without any sign of an NVIDIA driver, do not import torch just to hear "no".
        # Linux driver, container device, Jetson, WSL2 (whose GPU has no /dev/nvidia*).
        hints = ("/proc/driver/nvidia/version", "/dev/nvidia0", "/etc/nv_tegra_release", "/usr/lib/wsl/lib/libcuda.so")
        hinted = sys.platform == "win32" or any(Path(h).exists() for h in hints)  # Windows: no paths to look at
        if not hinted or importlib.util.find_spec("torch") is None:
            return False
        import torch

        return bool(torch.cuda.is_available())

    @cached_property
    def tensorrt(self) -> bool:
        return importlib.util.find_spec("tensorrt") is not None

    @cached_property
    def torch_onnx(self) -> bool:
        """onnx2torch imports, which also needs a torchvision that matches torch."""
        try:
            import onnx2torch  # noqa: F401
        except Exception:  # noqa: BLE001 - a broken torchvision raises RuntimeError, not ImportError
            return False
        return True

    @cached_property
    def onnxruntime_cuda(self) -> bool:
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()


GPU_UNUSED = "a GPU is there but no backend here can use it: "
MISSING = {
    "tensorrt": "TensorRT is not installed (pip install 'segstream[trt]')",
    "torch": "onnx2torch with a matching torchvision is not installed (pip install 'segstream[torch]')",
}


def choose_backend(
    backend: str, device: str, caps: Any = None, failed: Sequence[tuple[str, str]] = (),
) -> tuple[str, str, str]:
    """(backend, device, why) for a request. `auto` on a GPU takes TensorRT,
    then torch, then ONNX Runtime's CUDA provider; without a GPU, ONNX Runtime
    on the CPU. An explicit backend or device this machine cannot serve falls
    back the same way, with the reason in `why` (logged as a warning).
    `failed` lists (backend, reason) pairs already tried for this model
    (TensorRT cannot parse it, say): they are skipped the same way."""
    if backend != "auto" and backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}: choose auto or one of {', '.join(BACKENDS)}")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ModelError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    caps = caps or Capabilities()
    tried = dict(failed)
    notes: list[str] = []
    if device == "cpu":
        if backend == "torch" and caps.torch_onnx and "torch" not in tried:
            return "torch", "cpu", "asked for torch on cpu"
        if backend in ("tensorrt", "torch"):
            notes.append("tensorrt on cpu is not possible" if backend == "tensorrt" else tried.get("torch", MISSING["torch"]))
        return "onnxruntime", "cpu", "; ".join(notes) or ("asked for" if backend != "auto" else "device cpu")
    gpu = device if device.startswith("cuda") else "cuda"
    if not caps.cuda:
        return "onnxruntime", "cpu", "no NVIDIA GPU found (no driver, or torch.cuda.is_available() is False)"
    wanted = list(ORDER) if backend == "auto" else [backend] + [b for b in ORDER if b != backend]
    for name in wanted:
        if name in tried:
            notes.append(f"{name} failed: {tried[name]}")
        elif name == "tensorrt" and not caps.tensorrt:
            notes.append(MISSING["tensorrt"])
        elif name == "torch" and not caps.torch_onnx:
            notes.append(MISSING["torch"])
        elif name == "onnxruntime" and not caps.onnxruntime_cuda:
            notes.append("onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
        else:
            chosen = "asked for" if name == backend else "best available"
            return name, gpu, "; ".join(notes + [chosen]) if notes else chosen
    return "onnxruntime", "cpu", GPU_UNUSED + "; ".join(notes)


def load_backend(
    path: str, backend: str = "auto", device: str = "auto", threads: int | None = None, build: Any = None,
    preprocess: Any = None, caps: Any = None,
) -> Backend:
    """Load `path` with the backend `choose_backend` picks; `build` (BuildOptions)
    sets TensorRT's precision and batch profile and torch's fp16;
    `preprocess` (Frame -> input blob) is how the model's adapter will prepare
    frames: TensorRT sizes a dynamic input's profile by it and prepares INT8
    calibration frames with it.

    A GPU backend that cannot take this model (TensorRT does not compile
    two-stage models or some operators, onnx2torch does not convert every
    graph) is skipped with a one-line warning and the next one tried, as when
    it is not installed; ONNX Runtime's own error is final."""
    caps = caps or Capabilities()
    failed: list[tuple[str, str]] = []
    while True:
        name, dev, why = choose_backend(backend, device, caps, failed)
        # Warn when the run is not what was asked for, or a GPU sits unused; `auto` on a CPU machine is silent.
        off_gpu = dev == "cpu" and (device.startswith("cuda") or (device == "auto" and caps.cuda))
        if failed:
            log.warning("%s: %s cannot run it (%s): using %s on %s", Path(path).name, *failed[-1], name, dev)
        elif (backend != "auto" and name != backend) or off_gpu:
            log.warning("%s: using %s on %s instead of %s on %s: %s", Path(path).name, name, dev, backend, device, why)
        try:
            loaded = BACKENDS[name](path, dev, threads, build, preprocess)
        except ModelError as err:
            if name == "onnxruntime":
                raise
            failed.append((name, str(err)))
            continue
        log.info("%s: %s on %s (%s)", Path(path).name, loaded.name, dev, why)
        return loaded
