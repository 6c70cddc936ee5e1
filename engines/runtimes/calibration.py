"""INT8 calibration frames: a user's video or image folder, preprocessed the
way the model sees frames (its adapter's letterbox, RGB, scaling and
mean/std: `engines.model.onnx_preprocess`), in batches.

Calibration should look like deployment: frames from the user's own camera
give scales that fit their scenes, which a generic image set does not.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable, Iterator

import numpy as np

from ...stream.errors import ModelError
from ...stream.sources import open_source
from ...stream.types import Frame
from ..ops.letterbox import letterbox_frame, to_blob
from .engine_cache import ShapeProfile


def yolo_preprocess(profile: ShapeProfile) -> Callable[[Frame], np.ndarray]:
    """The preparation without a model at hand: YOLO's letterbox to the profile's size, RGB in [0, 1]."""
    return lambda frame: to_blob(letterbox_frame(frame, profile.opt_hw)[0])


def sample_frame() -> Frame:
    """A fixed 640x480 noise frame: what a preparation makes of it shows its input size and scaling."""
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return Frame(image, "sample", 0, time.time(), time.monotonic())


def fingerprint(preprocess: Callable[[Frame], np.ndarray]) -> str:
    """A short hash of what `preprocess` makes of a fixed synthetic frame: an
    INT8 engine is calibrated for one preparation (size, letterbox, mean/std),
    so the engine cache keys it and a changed preparation rebuilds."""
    blob = np.ascontiguousarray(preprocess(sample_frame()))
    digest = hashlib.sha256(str((blob.shape, blob.dtype.str)).encode())
    digest.update(blob.tobytes())
    return digest.hexdigest()[:16]


def calibration_batches(
    spec: str, profile: ShapeProfile, frames: int = 256, preprocess: Callable[[Frame], np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """Up to `frames` frames of `spec` as (opt_batch, 3, H, W) float32 batches,
    spread over the whole file rather than its first seconds (a last,
    incomplete batch is dropped). Without `preprocess`, YOLO's: a letterbox to
    the profile's size, RGB in [0, 1]."""
    batch = profile.opt_batch
    prepare = preprocess or yolo_preprocess(profile)
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
