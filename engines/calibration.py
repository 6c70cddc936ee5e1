"""INT8 calibration frames: a user's video or image folder, preprocessed the
way the model sees frames (letterbox, RGB, [0, 1]), in batches.

Calibration should look like deployment: frames from the user's own camera
give scales that fit their scenes, which a generic image set does not.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from stream.sources import open_source

from .engine_cache import ShapeProfile
from .letterbox import letterbox, to_blob


def calibration_batches(spec: str, profile: ShapeProfile, frames: int = 256) -> Iterator[np.ndarray]:
    """Up to `frames` frames of `spec` as (opt_batch, 3, H, W) float32 batches,
    spread over the whole file rather than its first seconds (a last,
    incomplete batch is dropped)."""
    batch = profile.opt_batch
    with open_source(spec, "calib") as source:
        total = source.frame_count or frames
        step = max(total // frames, 1)
        blobs = []
        for i, frame in enumerate(source):
            if i % step:
                continue
            blobs.append(to_blob(letterbox(frame.image, profile.opt_hw)[0]))
            if len(blobs) == batch:
                yield np.concatenate(blobs)
                blobs = []
            if (i // step) + 1 >= frames:
                break
