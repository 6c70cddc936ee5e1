"""Engines on this machine: model-only and pipeline FPS per backend, precision and batch.

For each backend this machine can run (TensorRT and torch need a CUDA GPU
for FP16; ONNX Runtime runs anywhere) and each batch size, prints:
- model-only FPS: the backend's call on preprocessed frames held in memory
  (batch B = B frames per call), the limit the pipeline is measured against;
- pipeline FPS: `segstream run` over B copies of the video as B sources
  (decode, preprocess, batched inference, masks, tracking), with `--batch B`
  and each `--workers` count, in steady state (start-up excluded);
- their ratio.

    python bench/engines.py [--model M] [--batch 1 8] [--frames 96] [--workers 1 8] [--backend torch ...] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from model_timing import model_only_fps  # noqa: E402  (bench/ is on the path: it holds this script)
from segstream.engines.model import Model
from segstream.engines.runtimes.batching import batchable_model
from segstream.engines.runtimes.engine_cache import BuildOptions, ShapeProfile
from segstream.engines.runtimes.registry import Capabilities, choose_backend
from segstream.pipelines.cli import _quiet_native_logs
from segstream.pipelines.config import RunConfig
from segstream.pipelines.run import GIL_SWITCH_INTERVAL_S, run_config
from segstream.pipelines.workers import worker_count
from segstream.stream.errors import SegstreamError

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")


def pipeline_fps(path: str, video: str, backend: str, device: str, precision: str, batch: int, frames: int,
                 graph: bool = False, workers: int = 1) -> float:
    """Steady-state pipeline FPS: runs of `frames` and of twice as many frames
    per source, after a short run that builds and caches what the backend
    compiles; the difference of the two excludes start-up, engine loading,
    CUDA graph capture and cuDNN's autotuning, as model-only excludes its
    warm-up."""
    def seconds(n: int) -> float:
        config = RunConfig(source=[video] * batch, model=[path], backend=backend, device=device, precision=precision,
                           batch=batch, max_frames=n, publish=None, progress=False, cuda_graph=graph, workers=workers)
        return run_config(config).seconds

    seconds(4)  # TensorRT engines, batch-dynamic copies: built once, cached for the measured runs
    return frames * batch / max(seconds(2 * frames) - seconds(frames), 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--backend", nargs="+", default=None, help="default: every backend this machine can run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--frames", type=int, default=96, help="frames per source in the pipeline runs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="worker processes for the pipeline runs (--workers); each count is a row")
    args = parser.parse_args()
    _quiet_native_logs()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    caps = Capabilities()
    gpu = caps.cuda and args.device != "cpu"
    backends = args.backend or [b for b, ok in (("tensorrt", gpu and caps.tensorrt), ("torch", caps.torch_onnx),
                                                 ("onnxruntime", True)) if ok]
    cache = Path(tempfile.mkdtemp(prefix="segstream-bench-"))
    os.environ.setdefault("SEGSTREAM_CACHE", str(cache))

    rows = []
    for backend in backends:
        name, device, _ = choose_backend(backend, args.device if gpu else "cpu", caps)
        if name != backend:
            print(f"skipping {backend}: not available here", file=sys.stderr)
            continue
        graphs = [False, True] if backend == "torch" and device.startswith("cuda") else [False]  # eager, then graphs
        for precision in (["fp32", "fp16"] if device.startswith("cuda") else ["fp32"]):
            for batch, graph in ((b, g) for g in graphs for b in args.batch):
                path = batchable_model(args.model) if batch > 1 else args.model
                build = BuildOptions(precision, ShapeProfile(1, batch, batch), cuda_graph=graph)
                label = precision + (" graph" if graph else "")
                try:
                    model = Model.load(path, backend=backend, device=device, build=build)
                    limit = model_only_fps(model, args.video, batch, max(8 * batch, 64))
                    model.close()
                    for workers in sorted({worker_count(w, batch, gpu) for w in args.workers}):  # at most one per source
                        pipe = pipeline_fps(path, args.video, backend, device, precision, batch, args.frames, graph,
                                            workers)
                        rows.append((backend, device, label, batch, workers, limit, pipe))
                except SegstreamError as err:
                    print(f"{backend} {label} batch {batch}: {err}", file=sys.stderr)
                    continue

    print(f"\nmodel {Path(args.model).name}, video {Path(args.video).name}, {os.cpu_count()} CPUs"
          f"{', GPU' if gpu else ', no GPU'}")
    print("model-only: the backend's call on preprocessed frames in memory, B frames per call")
    print("pipeline: B copies of the video as B sources, --batch B, whole pipeline (no publishing), steady state:")
    print("  the frames between a run of N and one of 2N frames per source, start-up and warm-up excluded on both sides")
    print(f"{'backend':<13}{'device':<8}{'precision':<13}{'batch':>6}{'workers':>8}{'model-only FPS':>16}"
          f"{'pipeline FPS':>14}{'ratio':>8}")
    for backend, device, precision, batch, workers, limit, pipe in rows:
        print(f"{backend:<13}{device:<8}{precision:<13}{batch:>6}{workers:>8}{limit:>16.1f}{pipe:>14.1f}"
              f"{pipe / limit:>7.2f}x")


if __name__ == "__main__":
    main()
