"""The ceiling the CPU side puts on any accelerator: the pipeline with inference replayed.

    python bench/cpu_side.py [--sources 1 4 8] [--frames 200] [--compare ../old-checkout]

First the real model runs once over the video's frames as each checkout
prepares them, and its outputs are recorded on disk, keyed by a hash of the
exact input blob (shape, dtype and bytes). Then, for each number of sources, the whole pipeline runs in a fresh
process (capture, decoding, letterbox, mask assembly and colour features,
the default tracker, JSON messages published over ZeroMQ) with the runtime
answering from the recording. An input that was not recorded runs the real
model and is counted as a miss: a preprocessing change that alters the blob
shows up there instead of going unnoticed.

The video is the sample video scaled to 1920x1080 and encoded as H.264 (the
load of a real camera), made once and cached. Printed per run: FPS, CPU
milliseconds per frame of the pipeline's threads by name, the process's CPU milliseconds per frame outside inference (all
its threads, FFmpeg's decoding threads and ZeroMQ's I/O thread included,
less the inference thread's), the cores used (process CPU time over wall
time), and misses.
`--compare DIR` runs the same table on another checkout of segstream (its
code, this script's recording and video) in the same invocation, so that
before and after are measured side by side on the same machine and load.
Each measured process checks that it runs the checkout it was given (an
installed segstream imported first would otherwise win, silently).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
STAGES = ("capture", "preprocess", "infer", "postprocess", "track", "publish", "output")  # thread names


def blob_key(feed: dict[str, np.ndarray]) -> str:
    """The recording's key of one model input: names, shapes, dtypes and bytes.
    XXH3 (128 bits; no adversary here) for speed: 0.03 ms for a 320x320 blob
    where BLAKE2b took 2 ms of the replayed inference's CPU on every frame,
    which no accelerator spends and which both checkouts paid alike."""
    h = xxhash.xxh3_128()
    for name in sorted(feed):
        array = np.ascontiguousarray(feed[name])
        h.update(f"{name}{array.shape}{array.dtype}".encode())
        h.update(memoryview(array).cast("B"))
    return h.hexdigest()


class Recorder:
    """Wraps a backend: runs it, and keeps each output under its input's key."""

    def __init__(self, backend: Any, folder: Path) -> None:
        self.backend, self.folder = backend, folder
        self.inputs, self.outputs = backend.inputs, backend.outputs

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.backend.infer(feed)
        path = self.folder / f"{blob_key(feed)}.npz"
        if not path.exists():
            with open(path.with_suffix(".part"), "wb") as f:  # whole or absent, if the run is killed
                np.savez(f, **outputs)
            os.replace(path.with_suffix(".part"), path)
        return outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


class Replayer:
    """Wraps a backend: answers from the recording, runs the real one on a miss."""

    def __init__(self, backend: Any, recording: dict[str, dict[str, np.ndarray]]) -> None:
        self.backend, self.recording, self.misses = backend, recording, 0
        self.inputs, self.outputs = backend.inputs, backend.outputs

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        found = self.recording.get(blob_key(feed))
        if found is None:
            self.misses += 1
            return self.backend.infer(feed)
        return {name: array.copy() for name, array in found.items()}  # outputs belong to the caller

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


def make_video(source: Path, out: Path, frames: int) -> None:
    """`frames` frames of `source` scaled to 1920x1080, H.264 (libx264), 10 fps."""
    import av
    import cv2

    cap = cv2.VideoCapture(str(source))
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for _ in range(frames):
            ok, image = cap.read()
            if not ok:
                break
            big = cv2.resize(image, (1920, 1080), interpolation=cv2.INTER_LINEAR)
            for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(out)


def decode_cost_ms(video: Path) -> tuple[float, float]:
    """CPU milliseconds per frame to decode `video` alone as the sources of this
    checkout do (the decoded planes, not converted), and with the BGR
    conversion of every frame that OpenCV's decoder does."""
    import av

    def run(convert: bool) -> float:
        usage, frames = resource.getrusage(resource.RUSAGE_SELF), 0
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            for frame in container.decode(stream):
                if convert:
                    frame.to_ndarray(format="bgr24")
                frames += 1
        after = resource.getrusage(resource.RUSAGE_SELF)
        return ((after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)) / max(frames, 1) * 1000

    return run(False), run(True)


def import_code(root: Path) -> tuple[Any, Any]:
    """(RunConfig, build_pipeline) from the segstream checkout at `root`: the
    `segstream` package mapped from its folders, or a checkout from before
    that, whose packages are top-level."""
    if (root / "api" / "__init__.py").is_file():
        package = Path(tempfile.mkdtemp(prefix="segstream-code-")) / "segstream"
        package.mkdir()
        for item in (root / "api").iterdir():
            (package / item.name).symlink_to(item)
        for name in ("stream", "engines", "tracking", "pipelines"):
            (package / name).symlink_to(root / name)
        sys.path.insert(0, str(package.parent))
        prefix = "segstream."
    else:
        sys.path.insert(0, str(root))
        prefix = ""
    import importlib

    config = importlib.import_module(prefix + "pipelines.config")
    session = importlib.import_module(prefix + "pipelines.session")
    runner = importlib.import_module(prefix + "pipelines.runner")
    if not Path(runner.__file__).resolve().is_relative_to(root.resolve()):  # an earlier import would win
        sys.exit(f"measuring {root} would run the code in {Path(runner.__file__).resolve().parents[1]}")
    return config.RunConfig, session.build_pipeline


def child(args: argparse.Namespace) -> None:
    """One measured run in this process; prints its figures as one JSON line."""
    sys.path.insert(0, str(REPO / "bench"))
    from thread_cpu import ThreadCpu

    RunConfig, build_pipeline = import_code(Path(args.code))
    sys.setswitchinterval(0.001)  # as `segstream run` does
    recording = {}
    if not args.record and not args.real:
        recording = {p.stem: dict(np.load(p)) for p in Path(args.recording).glob("*.npz")}
    config = RunConfig(source=[args.video] * args.n, model=[args.model], classes=["person"],
                       publish=f"tcp://127.0.0.1:{args.port}", max_frames=args.frames, progress=False)
    pipeline, _ = build_pipeline(config)
    wrapped = []
    for model in ([] if args.real else pipeline.models.models):
        model.backend = Recorder(model.backend, Path(args.recording)) if args.record else Replayer(model.backend, recording)
        wrapped.append(model.backend)
    usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    try:
        with ThreadCpu(period_s=0.05) as cpu:
            stats = pipeline.run()
    finally:
        pipeline.models.close()
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    per_stage = cpu.per_stage()
    print(json.dumps({
        "frames": stats.frames, "wall": wall, "cpu_s": cpu_s, "fps": stats.frames / wall, "cores": cpu_s / wall,
        "stage_ms": {k: v / max(stats.frames, 1) * 1000 for k, v in per_stage.items()},
        "misses": sum(getattr(b, "misses", 0) for b in wrapped),
    }))


def measure(code: Path, n: int, args: argparse.Namespace, video: Path, recording: Path, record: bool = False,
            processes: int = 1) -> dict:
    """n sources shared out among `processes` processes run at once (as `--workers`
    shares them, less the forwarder); their figures added up."""
    shares = [len(range(i, n, processes)) for i in range(min(processes, n))]
    procs = []
    for i, count in enumerate(shares):
        cmd = [sys.executable, __file__, "--child", "--code", str(code), "--n", str(count), "--video", str(video),
               "--model", args.model, "--frames", str(args.frames), "--recording", str(recording),
               "--port", str(args.port + i)] + (["--real"] if args.real else [])
        procs.append(subprocess.Popen(cmd + (["--record"] if record else []), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    parts = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"run with {n} source(s) on {code} failed:\n{err[-3000:]}")
        parts.append(json.loads(out.strip().splitlines()[-1]))
    frames, wall = sum(p["frames"] for p in parts), max(p["wall"] for p in parts)
    return {
        "frames": frames, "fps": frames / wall, "cores": sum(p["cpu_s"] for p in parts) / wall,
        "stage_ms": {k: sum(p["stage_ms"][k] * p["frames"] for p in parts) / frames for k in STAGES},
        "misses": sum(p["misses"] for p in parts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"), help="scaled to 1080p H.264 first")
    parser.add_argument("--sources", type=int, nargs="+", default=[1, 4, 8], help="copies of the video run at once")
    parser.add_argument("--frames", type=int, default=200, help="frames per source")
    parser.add_argument("--compare", help="another segstream checkout to measure the same way")
    parser.add_argument("--processes", nargs="+", default=["1", "auto"],
                        help="processes sharing the sources (as --workers; auto: what --workers auto picks "
                             "with inference on a GPU, which the replay stands for)")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "segstream-cpu-side"),
                        help="where the 1080p video and the recording are kept")
    parser.add_argument("--port", type=int, default=5593)
    parser.add_argument("--real", action="store_true",
                        help="run the real model instead of the recording: what processes give with CPU inference")
    # A measured run, in a process of its own (internal).
    for flag in ("--child", "--record"):
        parser.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    for flag in ("--code", "--recording"):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    from segstream.pipelines.workers import worker_count  # after the child's turn: it imports its own checkout

    for path in (args.model, args.video):
        if not Path(path).is_file():
            parser.error(f"{path} not found: pass --model/--video, or set SEGSTREAM_ASSETS to the assets folder")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    video = cache / f"{Path(args.video).stem}-1080p-{args.frames}.mp4"
    if not video.exists():
        print(f"making {video} (1920x1080 H.264, {args.frames} frames) ...", flush=True)
        make_video(Path(args.video), video, args.frames)
    model_id = hashlib.sha256(Path(args.model).read_bytes()).hexdigest()[:16]
    recording = cache / f"recording-{model_id}-{video.stem}"
    codes = [("this", REPO)] + ([("compare", Path(args.compare).resolve())] if args.compare else [])
    if not args.real:
        # Each checkout's own inputs are recorded (one pass of the real model each): one that
        # prepares frames differently must not be charged for misses. Known inputs are kept.
        recording.mkdir(exist_ok=True)
        for label, code in codes:
            print(f"recording the model's outputs for {code} in {recording} ...", flush=True)
            measure(code, 1, args, video, recording, record=True)
    rows = []
    for n in args.sources:
        counts = sorted({worker_count(p if p == "auto" else int(p), n, gpu=not args.real) for p in args.processes})
        for processes in counts:
            for label, code in codes:  # side by side: the two checkouts alternate
                rows.append((label, n, processes, measure(code, n, args, video, recording, processes=processes)))

    cpus = os.cpu_count()
    inference = "run on the CPU" if args.real else "replayed"
    print(f"\n{video.name}: 1920x1080 H.264, {args.frames} frames per source; {Path(args.model).name} {inference}; "
          f"default tracker; publishing; {cpus} CPUs")
    print("thread columns: CPU ms per frame of the pipeline's Python threads of that name ('-': the code has none);")
    print("'outside inference': the whole process's, less the inference thread's")
    shown = [s for s in STAGES if any(r["stage_ms"][s] > 0 for *_, r in rows)]
    print(f"{'code':<8}{'sources':>8}{'procs':>6}{'FPS':>8}" + "".join(f"{s:>12}" for s in shown)
          + f"{'outside inference':>19}{'cores':>7}{'misses':>8}")
    for label, n, processes, r in rows:
        ms = r["stage_ms"]
        print(f"{label:<8}{n:>8}{processes:>6}{r['fps']:>8.1f}"
              + "".join(f"{ms[s]:>12.2f}" if ms[s] > 0 else f"{'-':>12}" for s in shown)
              + f"{outside_inference(r):>19.2f}{r['cores']:>7.2f}{r['misses']:>8}")
    planes, bgr = decode_cost_ms(video)
    print(f"decoding alone, this process: {planes:.2f} CPU ms per frame ({bgr:.2f} converting each frame to BGR)")
    if args.compare:
        by = {(label, n, p): r for label, n, p, r in rows}
        print("\nthis / compare:")
        for label, n, processes, this in rows:
            other = by.get(("compare", n, processes))
            if label == "this" and other:
                print(f"{n} source(s), {processes} process(es): FPS {this['fps'] / other['fps']:.2f}x, CPU ms per "
                      f"frame outside inference {outside_inference(this) / outside_inference(other):.2f}x")


def outside_inference(result: dict) -> float:
    """The process's CPU milliseconds per frame, less the inference thread's."""
    return result["cores"] / result["fps"] * 1000 - result["stage_ms"]["infer"]


if __name__ == "__main__":
    main()
