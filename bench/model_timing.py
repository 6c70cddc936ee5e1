"""Model-only FPS, as the benchmarks measure it: the backend's call on
preprocessed frames held in memory, B frames per call, after a warm-up (CUDA
graph capture, cuDNN autotuning, the allocator), the GPU drained before the
clock stops. The limit a pipeline's FPS is compared against."""

from __future__ import annotations

import time

from segstream.engines.model import Model
from segstream.engines.runtimes.batching import stack_feeds
from segstream.stream.sources import open_source


def model_only_fps(model: Model, video: str, batch: int, frames: int) -> float:
    with open_source(video) as source:
        prepared = [model.preprocess(f) for _, f in zip(range(frames), source)]
    feeds = [stack_feeds([p.feed for p in prepared[i:i + batch]]) for i in range(0, len(prepared) - batch + 1, batch)]
    for feed in feeds[:3]:
        model.run_feed(feed)  # warm-up (CUDA graphs, cuDNN autotuning, allocator)
    sync = _synchronizer(model)
    sync()  # the warm-up is not timed
    t = time.perf_counter()
    for feed in feeds:
        model.run_feed(feed)
    sync()
    return len(feeds) * batch / (time.perf_counter() - t)


def _synchronizer(model: Model):
    device = getattr(model.backend, "device", None)
    if getattr(device, "type", None) == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None
