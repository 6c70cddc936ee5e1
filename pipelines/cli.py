"""`segstream` command line: run, subscribe, eval, demo.

Errors a user can fix are printed as one line (`segstream: error: ...`) with
exit status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..engines.adapters.reid import ReidEmbedder
from ..engines.hub import resolve_model
from ..engines.model import Model, onnx_preprocess
from ..engines.runtimes.batching import batchable_model
from ..engines.runtimes.engine_cache import BuildOptions, ShapeProfile
from ..engines.runtimes.registry import choose_backend, load_backend
from ..engines.runtimes.tensorrt import ensure_engine, options_for_model
from ..engines.runtimes.typed_graph import ensure_typed_graph
from ..stream.errors import ModelError, SegstreamError, SourceError
from ..stream.publisher import Publisher
from ..stream.security import create_keys
from ..stream.subscriber import Subscriber
from ..stream.wire import WireError
from ..tracking.evaluation import evaluate_mot
from ..tracking.mot import mot_sequences, track_sequences
from .config import BuildFileConfig, RunConfig, TrackerConfig, load_config
from .replay import replay
from .run import on_stop_signals, run_config
from .session import make_tracker_factory, semantic_config

log = logging.getLogger("segstream")

DEMO_VIDEO = "video/vtest.avi"
DEMO_MODELS = ("models/yolov8n-seg_320_fp32.onnx", "models/yolo11n-pose.onnx")
DEMO_VIDEO_URL = "https://github.com/opencv/opencv/raw/4.x/samples/data/vtest.avi"


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", action="append", help="video file, image folder/glob, webcam index or /dev/video* path, or rtsp/http URL")
    p.add_argument("--sources-file", dest="sources_file", help="a text file with one source per line (many cameras)")
    p.add_argument("--model", action="append", help="ONNX model (repeat to run a segmentation and a pose model)")
    p.add_argument("--tracker", choices=["auto", "sort", "byte", "deepsort", "none"],
                   help="auto (default): deepsort with appearance features (the best on real video), byte "
                        "without them or with --cmc (the best on motion alone); sort (the original) or none")
    p.add_argument("--appearance", choices=["none", "color", "reid"],
                   help="appearance embeddings for the tracker: color = HSV histogram inside each mask, "
                        "reid = a re-identification ONNX model on crops (--reid-model)")
    p.add_argument("--reid-model", dest="reid_model", help="re-id ONNX model, [N,3,H,W] crops -> [N,D] features")
    p.add_argument("--cmc", action="store_true", default=None,
                   help="camera motion compensation for moving cameras (with --tracker byte)")
    p.add_argument("--conf", type=float, help="confidence threshold (default 0.25)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--classes", help="comma-separated class names or ids to keep, e.g. person,car")
    p.add_argument("--labels", help="class names of a semantic model, one per line (default: from the model)")
    p.add_argument("--panoptic", action="store_true", default=None,
                   help="fuse a semantic model's stuff with the instance model's tracked things into a panoptic map")
    p.add_argument("--publish", help="ZeroMQ endpoint, e.g. tcp://127.0.0.1:5555 (prefix > to connect)")
    p.add_argument("--save", help="write an annotated video (.mp4)")
    p.add_argument("--trails", type=int, help="in --save, draw each track's path over its last N frames (default 0: none)")
    p.add_argument("--export", help="write tracks: .txt (MOTChallenge) or .jsonl (one message per frame)")
    p.add_argument("--record", help="record the run to an MCAP file (.mcap): frames, annotations and messages, "
                   "for Foxglove, for `--source FILE.mcap` (run again) and `segstream replay`")
    p.add_argument("--show", action="store_true", default=None,
                   help="show the annotated frames in a window (sources tiled; q or closing it ends the run)")
    p.add_argument("--view", metavar="[HOST:]PORT",
                   help="a live view in the browser at http://HOST:PORT/ (loopback unless HOST is given): each "
                        "source's annotated picture, FPS, latency, counts and state")
    p.add_argument("--segment-minutes", type=float, dest="segment_minutes",
                   help="cut --save, --export and --record into parts of this many minutes (live: named by UTC start time)")
    p.add_argument("--max-frames", type=int, dest="max_frames", help="stop each source after N frames")
    p.add_argument("--realtime", action="store_true", default=None, help="pace files at their FPS, dropping when behind")
    p.add_argument("--rtsp-transport", choices=["tcp", "udp"], dest="rtsp_transport", help="RTSP transport (default tcp)")
    p.add_argument("--timeout", type=float,
                   help="seconds to wait when opening a stream, and without a frame before it counts as stalled (default 10)")
    p.add_argument("--open-timeout", type=float, dest="open_timeout",
                   help="seconds to wait when opening a stream, if not --timeout (a camera slow to answer)")
    p.add_argument("--no-reconnect", dest="reconnect", action="store_false", default=None,
                   help="end a live source when its connection is lost instead of reconnecting with backoff")
    p.add_argument("--live-in-flight", type=int, dest="live_in_flight",
                   help="live frames in the pipeline at once, shared by live sources (default 2; 1: lowest latency, fewer FPS)")
    p.add_argument("--backend", choices=["auto", "tensorrt", "torch", "onnxruntime"],
                   help="auto (default): TensorRT, then torch on CUDA, then onnxruntime (CUDA, then CPU)")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], help="on GPUs: fp16 (default), fp32, int8 (--calib)")
    p.add_argument("--batch", type=int, help="frames per inference call, across sources (default 1)")
    p.add_argument("--batch-wait-ms", type=float, dest="batch_wait_ms",
                   help="how long a batched call waits for more frames (default 5 ms)")
    p.add_argument("--calib", help="INT8 calibration frames: a video file or an image folder")
    p.add_argument("--no-cuda-graph", action="store_false", default=None, dest="cuda_graph",
                   help="torch backend on CUDA: launch the model layer by layer instead of replaying it as one "
                        "CUDA graph (the default, about 2x FPS on an H200)")
    p.add_argument("--cuda-graph", action="store_true", default=None, dest="cuda_graph", help=argparse.SUPPRESS)
    p.add_argument("--trt-weak-typing", action="store_true", default=None, dest="trt_weak_typing",
                   help="TensorRT 10: set precision with builder flags and TensorRT's calibrator (the old way) "
                        "instead of building the fp16/INT8 ONNX graph strongly typed")
    p.add_argument("--threads", type=int, help="inference threads per model call (default: one per core)")
    p.add_argument("--infer-workers", type=int, dest="infer_workers",
                   help="frames in inference at once (default 1); e.g. 2 with --threads 1 on 2 cores")
    p.add_argument("--workers", help="processes that share out the sources, each running every stage for its own "
                   "(default 1; auto: one per source, at most one per core with GPU inference)")
    p.add_argument("--no-progress", action="store_false", dest="progress", default=None,
                   help="no progress bar (shown by default when stderr is a terminal)")
    p.add_argument("--metrics-port", type=int, dest="metrics_port",
                   help="serve Prometheus metrics on /metrics and a health check on /healthz at this port")
    p.add_argument("--metrics-address", dest="metrics_address",
                   help="address the metrics server listens on (default 127.0.0.1, this machine only; "
                        "0.0.0.0 for every interface)")
    p.add_argument("--health-stall", type=float, dest="health_stall",
                   help="/healthz turns unhealthy when a live source is stalled or reconnecting this long (default 30 s)")
    p.add_argument("--curve-secret", dest="curve_secret",
                   help="publish CURVE-encrypted with this secret key (NAME.key_secret from `segstream keys`)")
    p.add_argument("--curve-clients", dest="curve_clients",
                   help="folder of the public keys (NAME.key) of the subscribers allowed to connect")
    p.add_argument("--config", help="YAML file with the same keys as these flags")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="how much to log (default WARNING; INFO says which backend runs each model and why)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segstream", description="Real-time segmentation, keypoints and tracking")
    parser.add_argument("--version", action="version", version=f"segstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline on a source")
    _add_run_flags(run)
    _common(run)
    run.set_defaults(func=cmd_run)

    subscribe = sub.add_parser("subscribe", help="print published messages as JSON lines")
    subscribe.add_argument("endpoint", help="e.g. tcp://127.0.0.1:5555")
    subscribe.add_argument("--count", type=int, help="exit after N messages")
    subscribe.add_argument("--source", action="append", help="only these source ids")
    subscribe.add_argument("--timeout", type=float, help="exit with status 1 after this many seconds without a message")
    subscribe.add_argument("--latest", action="store_true",
                           help="a slow reader gets each source's newest frame, skipping older ones (never status/eos)")
    subscribe.add_argument("--curve-server-key", dest="curve_server_key", help="the publisher's public key (NAME.key)")
    subscribe.add_argument("--curve-secret", dest="curve_secret", help="this subscriber's secret key (NAME.key_secret)")
    _common(subscribe)

    keys = sub.add_parser("keys", help="create a CURVE key pair for encrypted, authenticated publishing")
    keys.add_argument("folder", help="where NAME.key (public) and NAME.key_secret (secret) are written")
    keys.add_argument("--name", default="segstream", help="file name stem (default segstream)")
    keys.add_argument("--force", action="store_true", help="replace an existing key pair of that name")
    _common(keys)
    keys.set_defaults(func=cmd_keys)
    subscribe.set_defaults(func=cmd_subscribe)

    replay_cmd = sub.add_parser("replay", help="publish a recorded run's messages again (segstream run --record)")
    replay_cmd.add_argument("recording", help="an MCAP file written by `segstream run --record`")
    replay_cmd.add_argument("--publish", required=True, help="ZeroMQ endpoint, e.g. tcp://127.0.0.1:5555")
    replay_cmd.add_argument("--fast", action="store_true", help="as fast as possible, not at the recorded pace")
    replay_cmd.add_argument("--wait", type=float, default=0.0,
                            help="first wait up to this many seconds for a subscriber (what is published before "
                                 "one joins is lost)")
    _common(replay_cmd)
    replay_cmd.set_defaults(func=cmd_replay)

    evaluate = sub.add_parser("eval", help="track MOTChallenge detections and score them with TrackEval")
    evaluate.add_argument("--gt", required=True, help="MOTChallenge-layout folder: <seq>/det/det.txt, gt/gt.txt, seqinfo.ini")
    evaluate.add_argument("--tracker", choices=["sort", "byte", "deepsort"], help="tracker (default: byte, what `segstream run` picks without appearance features)")
    evaluate.add_argument("--config", help="YAML with tracker parameters, e.g. `sort: {max_age: 1, min_hits: 3}`")
    evaluate.add_argument("--out", help="folder for <seq>.txt results (default: a temporary folder)")
    evaluate.add_argument("--tracks", help="score these results instead of tracking: a folder of <seq>.txt files, "
                          "e.g. from `run --export DIR/<seq>.txt` (also on a recording: `--source run.mcap`)")
    _common(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    build = sub.add_parser("build", help="compile a model to a TensorRT engine for this GPU (cached; run uses it)")
    build.add_argument("model", help="ONNX model")
    precision = build.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_const", const="fp16", dest="precision", help="FP16 (default)")
    precision.add_argument("--fp32", action="store_const", const="fp32", dest="precision", help="FP32 (IEEE, no TF32)")
    precision.add_argument("--int8", action="store_const", const="int8", dest="precision", help="INT8, with --calib")
    build.add_argument("--calib", help="INT8 calibration frames: a video file or an image folder")
    build.add_argument("--batch", type=int, default=1, help="largest batch the engine accepts (default 1)")
    build.add_argument("--device", default="cuda", help="cuda (default) or cuda:N")
    build.add_argument("--trt-weak-typing", action="store_true", dest="trt_weak_typing",
                       help="TensorRT 10: builder flags and TensorRT's calibrator instead of the typed graph")
    build.add_argument("--config", help="the run's YAML file: its `semantic` mean/std/input_size apply as in `run`")
    _common(build)
    build.set_defaults(func=cmd_build)

    info = sub.add_parser("info", help="say how segstream reads models (task, classes, input, outputs) and what runs them")
    info.add_argument("model", nargs="+", help="ONNX models or registered names")
    info.add_argument("--config", help="the run's YAML file: its `semantic` section applies as in `run`")
    _common(info)
    info.set_defaults(func=cmd_info)

    export = sub.add_parser("export", help="export torchvision:NAME (Mask/Keypoint R-CNN, FCN, LRASPP, DeepLabV3) to ONNX")
    export.add_argument("model", help="e.g. torchvision:maskrcnn_resnet50_fpn_v2, torchvision:lraspp_mobilenet_v3_large")
    export.add_argument("-o", "--out", help="output .onnx (default: NAME.onnx)")
    export.add_argument("--imgsz", type=int, nargs=2, metavar=("H", "W"),
                        help="input size of semantic models (default 520 520)")
    export.add_argument("--random-weights", action="store_true", dest="random_weights",
                        help="random weights: checks shapes and plumbing only, no download")
    _common(export)
    export.set_defaults(func=cmd_export)

    demo = sub.add_parser("demo", help="run on the sample video with the sample seg + pose models")
    demo.add_argument("--assets", default=None, help="assets folder (default $SEGSTREAM_ASSETS or ../shared/assets)")
    demo.add_argument("--publish", default="tcp://127.0.0.1:5555",
                      help="ZeroMQ endpoint to publish on (default tcp://127.0.0.1:5555, this machine only)")
    demo.add_argument("--max-frames", type=int, dest="max_frames", help="stop after N frames")
    demo.add_argument("--save", help="also write an annotated video")
    _common(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else getattr(logging, args.log_level),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        _quiet_native_logs()
    try:
        return int(args.func(args) or 0)
    except SegstreamError as err:
        if args.debug:
            raise
        print(f"segstream: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout closed early (e.g. piped into `head`)
        sys.stderr.close()
        return 0


def _quiet_native_logs() -> None:
    """OpenCV and FFmpeg write their own warnings to stderr; segstream reports
    those failures itself, in one line."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("source", "sources_file", "model", "tracker", "appearance", "reid_model", "cmc", "conf", "iou", "classes", "publish", "save", "trails", "export", "record", "show", "view", "segment_minutes",
            "max_frames", "realtime", "rtsp_transport", "timeout", "open_timeout", "reconnect", "live_in_flight", "curve_secret", "curve_clients", "metrics_port", "metrics_address", "health_stall", "backend", "device", "precision", "batch", "batch_wait_ms", "calib", "cuda_graph", "trt_weak_typing", "threads", "infer_workers", "workers",
            "progress", "panoptic")
    out = {k: getattr(args, k, None) for k in keys}
    if getattr(args, "labels", None):
        out["semantic"] = {"labels": args.labels}
    return out


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config, _overrides(args))
    stats = run_config(config)
    print(stats.table())
    return 130 if stats.interrupted else 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    received = 0
    with Subscriber(args.endpoint, args.source, curve_server_key=args.curve_server_key,
                    curve_secret=args.curve_secret, latest=args.latest) as sub:
        while args.count is None or received < args.count:
            try:
                message = sub.recv(timeout=args.timeout)
            except WireError as err:
                log.warning("skipping malformed message: %s", err)
                continue
            if message is None:
                print(f"segstream: error: no message on {args.endpoint} for {args.timeout:g} s", file=sys.stderr)
                return 1
            sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
            sys.stdout.flush()
            received += 1
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    if not Path(args.recording).is_file():
        raise SourceError(f"no such file: {args.recording} (record one with `segstream run --record FILE.mcap`)")
    stop = threading.Event()
    with Publisher(args.publish) as publisher, on_stop_signals(stop.set, "stopping"):
        count = replay(args.recording, publisher, fast=args.fast, wait_s=args.wait, stop=stop)
    print(f"replayed {count} messages from {args.recording} on {args.publish}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    public, secret = create_keys(args.folder, args.name, args.force)
    print(f"public key {public} (give to the other side), secret key {secret} (keep private)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    config = load_config(args.config, {"tracker": args.tracker}, TrackerConfig)
    root = Path(args.gt)
    sequences = mot_sequences(root) if root.is_dir() else []
    if not sequences:
        raise SourceError(f"no MOTChallenge sequences in {root}: expected <seq>/det/det.txt, <seq>/gt/gt.txt, <seq>/seqinfo.ini")
    if args.tracks:
        tracks = Path(args.tracks)
        sequences = [seq for seq in sequences if (tracks / f"{seq}.txt").is_file()]
        if not sequences:
            raise SourceError(f"no results in {tracks} for the sequences of {root}: name each file <seq>.txt")
        scores = evaluate_mot(root, tracks, sequences)
        print(f"results in {tracks}: {len(sequences)} sequence(s)")
    else:
        with contextlib.ExitStack() as stack:
            out = args.out or stack.enter_context(tempfile.TemporaryDirectory(prefix="segstream-eval-"))
            _, seconds, frames = track_sequences(root, make_tracker_factory(config), out, sequences)
            scores = evaluate_mot(root, out, sequences)
        print(f"tracker {config.tracker}: {seconds / frames * 1000:.3f} ms per frame (association only), "
              f"{frames} frames")
    print(f"{'sequence':<24}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}")
    for seq in [*sequences, "COMBINED"]:
        s = scores[seq]
        print(f"{seq:<24}{s.hota:>7.1f}{s.mota:>7.1f}{s.idf1:>7.1f}{s.id_switches:>6}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Write the precision-typed ONNX graph (fp16, INT8), then prebuild the
    engine `run` would build, with visible progress; without TensorRT or a
    GPU, say so in one line and how the graph runs instead."""
    semantic = semantic_config(load_config(args.config, schema=BuildFileConfig)) if args.config else None
    options = BuildOptions(args.precision or "fp16", ShapeProfile(1, args.batch, args.batch), calib=args.calib,
                           weak_typing=args.trt_weak_typing)
    path = resolve_model(args.model)
    if options.precision != "fp32":
        prepare = onnx_preprocess(path, semantic)
        graph = ensure_typed_graph(path, options, prepare, say=print)
        print(f"{options.precision} graph ready: {graph}")
    name, device, why = choose_backend("tensorrt", args.device)
    if name != "tensorrt":
        if options.precision != "fp32":
            calib = f" --calib {shlex.quote(args.calib)}" if options.precision == "int8" else ""  # the same graph
            print(f"no TensorRT engine built here ({why}); the graph runs with `segstream run --model "
                  f"{shlex.quote(args.model)} --backend onnxruntime --precision {options.precision}{calib} --source ...`")
            return 0
        raise ModelError(f"cannot build a TensorRT engine here: {why}; `segstream run` will use {name} on {device}")
    if args.batch > 1:
        path = batchable_model(path)  # what `run --batch` compiles: a static export's batch-dynamic copy
    prepare = onnx_preprocess(path, semantic)  # as `run` will prepare frames: the profile and INT8 follow it
    options, _ = options_for_model(path, options, prepare)
    engine = ensure_engine(path, options, device, calib_preprocess=prepare)
    print(f"engine ready: {engine}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Each model as segstream reads it (on ONNX Runtime, CPU: no engine is
    built), then the backend `run` would choose on this machine."""
    semantic = semantic_config(load_config(args.config, schema=BuildFileConfig)) if args.config else None
    for spec in args.model:
        print(describe_model(resolve_model(spec), semantic))
    backend, device, why = choose_backend("auto", "auto")
    print(f"run would use {backend} on {device}: {why}")
    return 0


def describe_model(path: str, semantic: Any = None) -> str:
    """How segstream reads `path`: as a detection, segmentation or pose model,
    else as a re-id model for the tracker's appearance features."""
    try:
        model = Model.load(path, backend="onnxruntime", device="cpu", semantic=semantic)
    except ModelError as err:
        try:
            embedder = ReidEmbedder(load_backend(path, "onnxruntime", "cpu"))
        except ModelError:
            raise err from None
        with contextlib.closing(embedder):
            return embedder.describe(path)
    with contextlib.closing(model):
        return model.describe()


def cmd_export(args: argparse.Namespace) -> int:
    from ..engines.torchvision_export import export_torchvision

    path = export_torchvision(args.model, args.out, args.random_weights, tuple(args.imgsz) if args.imgsz else None)
    note = " (random weights: for shapes and plumbing only)" if args.random_weights else ""
    print(f"exported {args.model} to {path}{note}")
    return 0


def demo_assets(assets: str | None) -> tuple[str, list[str]]:
    root = Path(assets or os.environ.get("SEGSTREAM_ASSETS") or "../shared/assets")
    video = root / DEMO_VIDEO
    models = [root / m for m in DEMO_MODELS]
    missing = [str(p) for p in [video, *models] if not p.is_file()]
    if missing:
        raise SourceError(
            f"demo assets missing: {', '.join(missing)}. Set SEGSTREAM_ASSETS to a folder holding {DEMO_VIDEO} and "
            f"{' and '.join(DEMO_MODELS)}. The video is OpenCV's sample {DEMO_VIDEO_URL} (also in Debian's "
            "opencv-doc package); export the models with Ultralytics (pip install ultralytics): "
            "`yolo export model=yolov8n-seg.pt format=onnx imgsz=320` and `yolo export model=yolo11n-pose.pt format=onnx`"
        )
    return str(video), [str(m) for m in models]


def cmd_demo(args: argparse.Namespace) -> int:
    video, models = demo_assets(args.assets)
    config = RunConfig(source=[video], model=models, publish=args.publish, max_frames=args.max_frames, save=args.save)
    received = {"n": 0}
    done = threading.Event()

    def listen() -> None:
        with Subscriber(config.publish or "") as sub:
            while not done.is_set():
                msg = sub.recv(timeout=0.2)
                if msg is not None and msg["type"] == "frame":
                    received["n"] += 1

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    print(f"segstream demo: {video} with {', '.join(Path(m).name for m in models)}, publishing on {config.publish}")
    try:
        stats = run_config(config)
    finally:
        time.sleep(0.3)  # let the last messages arrive
        done.set()
        listener.join(2)
    print(stats.table())
    print(f"a subscriber on {config.publish} received {received['n']} frame messages")
    return 130 if stats.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
