"""The struct-of-arrays base that every tracker keeps its tracks in."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

import numpy as np

T = TypeVar("T", bound="TrackArrays")


class TrackArrays:
    """Mixin for a dataclass whose fields are parallel arrays, one row per track
    (`ids` among them): selecting and appending rows touches every field."""

    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self: T, index: np.ndarray) -> T:
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})  # type: ignore[arg-type]

    def append(self: T, other: T) -> T:
        return type(self)(**{f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                             for f in fields(self)})  # type: ignore[arg-type]
