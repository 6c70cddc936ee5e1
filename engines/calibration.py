"""INT8 calibration frames: a user's video or image folder, preprocessed the
way the model sees frames (its adapter's letterbox, RGB, scaling and
mean/std: `engines.model.onnx_preprocess`), in batches.

Calibration should look like deployment: frames from the user's own camera
give scales that fit their scenes, which a generic image set does not.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from stream.errors import ModelError
from stream.sources import open_source
from stream.types import Frame

from .engine_cache import ShapeProfile
from .letterbox import letterbox, to_blob


def calibration_batches(
    spec: str, profile: ShapeProfile, frames: int = 256, preprocess: Callable[[Frame], np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """Up to `frames` frames of `spec` as (opt_batch, 3, H, W) float32 batches,
    spread over the whole file rather than its first seconds (a last,
    incomplete batch is dropped). Without `preprocess`, YOLO's: a letterbox to
    the profile's size, RGB in [0, 1]."""
    batch = profile.opt_batch
    prepare = preprocess or (lambda frame: to_blob(letterbox(frame.image, profile.opt_hw)[0]))
    with open_source(spec, "calib") as source:
        total = source.frame_count or frames
        step = max(total // frames, 1)
        blobs = []
        for i, frame in enumerate(source):
            if i % step:
                continue
            blob = prepare(frame)
            if blob.ndim != 4 or tuple(blob.shape[2:]) != tuple(profile.opt_hw):
                raise ModelError(f"calibration frames are prepared as {list(blob.shape)} but the engine's profile "
                                 f"expects [N, 3, {profile.opt_hw[0]}, {profile.opt_hw[1]}]: set the model's input size "
                                 "to the profile's (or export it with a fixed input)")
            blobs.append(blob)
            if len(blobs) == batch:
                yield np.concatenate(blobs)
                blobs = []
            if (i // step) + 1 >= frames:
                break
