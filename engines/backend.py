"""The one small interface every inference runtime implements, and the registry that picks one.

A backend knows how to run a model file and nothing about what its outputs
mean; model adapters (engines/yolo.py) know what the outputs mean and nothing
about the runtime.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

from stream.errors import ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (ints, or None for a dynamic axis) and numpy dtype of a model input/output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


class Backend(ABC):
    """A loaded model that maps named input arrays to named output arrays.

    Output arrays belong to the caller: backends must not reuse them for the
    next call (copy out of device or pinned buffers before returning).
    """

    name: str = "backend"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: dict[str, str]

    @abstractmethod
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one forward pass."""

    def close(self) -> None:
        """Release the runtime's resources."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BackendFactory = Callable[..., Backend]


def _onnxruntime(path: str, device: str, threads: int | None) -> Backend:
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, device=device, threads=threads)


# Name -> factory. `auto` takes the first of PREFERENCE (TensorRT and torch join it later).
BACKENDS: dict[str, BackendFactory] = {"onnxruntime": _onnxruntime}
PREFERENCE = ["onnxruntime"]


def load_backend(path: str, backend: str = "auto", device: str = "cpu", threads: int | None = None) -> Backend:
    """Load `path` with the named backend (or the first available one for `auto`)."""
    if backend != "auto" and backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}: choose auto or one of {', '.join(BACKENDS)}")
    names = PREFERENCE if backend == "auto" else [backend]
    loaded = BACKENDS[names[0]](path, device, threads)
    log.info("loaded %s with %s on %s", path, loaded.name, device)
    return loaded
