"""The one small interface every inference runtime implements, and the model
metadata readers the runtimes and adapters share.

A backend knows how to run a model file and nothing about what its outputs
mean; model adapters (engines/adapters/) know what the outputs mean and nothing
about the runtime. This module knows no runtime: registry.py is the one place
that knows them all.
"""

from __future__ import annotations

import ast
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


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
    # True when calls must not overlap (one GPU execution context and its reused
    # buffers); such a backend serialises them, and the pipeline keeps one frame in it.
    serial: bool = False
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


def metadata_list(metadata: dict[str, str], key: str) -> list[float] | None:
    """A JSON list from the model's metadata (Ultralytics' `imgsz`, `kpt_shape`;
    `mean`, `std`), or None when absent or unreadable."""
    try:
        value = json.loads(metadata[key])
    except (KeyError, ValueError, TypeError):
        return None
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
        return None
    return [float(v) for v in value]


def imgsz_of(metadata: dict[str, str], default: tuple[int, int] = (640, 640)) -> tuple[int, int]:
    """The export's image size from its metadata ('[640, 640]'), else `default` (Ultralytics' 640x640)."""
    size = metadata_list(metadata, "imgsz")
    return (int(size[0]), int(size[-1])) if size else default


def metadata_literal(metadata: dict[str, str], key: str) -> Any:
    """A Python literal from the model's metadata (Ultralytics writes `names`
    and `args` as Python dicts), or None when absent or unreadable."""
    try:
        return ast.literal_eval(metadata[key])
    except (KeyError, ValueError, SyntaxError, TypeError):
        return None


def names_count(metadata: dict[str, str]) -> int | None:
    """How many class names the `names` metadata holds, or None without any."""
    names = metadata_literal(metadata, "names")
    return len(names) if isinstance(names, (dict, list, tuple)) and names else None
