"""How much does a semantic model's post-processing cost at frame resolution?

A semantic model's logits are resized to the frame and arg-maxed there
(engines/adapters/semantic.py). This times, on the same logits, four ways to do it:
- "every class": cv2-resize all class planes, then numpy's argmax (the textbook),
- "running max": resize one plane at a time into a running maximum (segstream before),
- "torch": F.interpolate + argmax on the CPU (what the GPU data path runs on a GPU),
- "contending": segstream's `resize_argmax`, which resizes only the classes
  that can win somewhere (exact: the label maps must be identical).
Then the 1080p label map's PNG encoding for the wire (a panoptic map is the
16-bit case): zlib level 1 with libpng's adaptive row filters (segstream
before) against `stream.wire.png_params`.

No trained semantic model can be downloaded here, so the logits are made
from a real scene: the people yolov8n-seg finds in a frame of the sample
video, plus "stuff" bands (sky, building, road, ...), as one-hot maps
shrunk to the logit grid, scaled and given noise. Random-weight networks
would give noise, where every class wins somewhere (the worst case, also
timed). Logits are 520x520 (torchvision's segmentation size), the frame's
part of the letterbox cropped from them, resized to the frame and to 1080p.

    python bench/semantic_post.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from segstream.engines.model import Model
from segstream.engines.ops.label_resize import contending_classes, resize_argmax
from segstream.stream.sources import open_source
from segstream.stream.wire import png_params

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
LOGIT_SIDE = 520


def every_class(logits: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.argmax(np.stack([cv2.resize(p, hw[::-1], interpolation=cv2.INTER_LINEAR) for p in logits]), axis=0)


def running_max(logits: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    labels = np.zeros(hw, np.uint16)
    best = cv2.resize(logits[0], hw[::-1], interpolation=cv2.INTER_LINEAR)
    for k in range(1, len(logits)):
        plane = cv2.resize(logits[k], hw[::-1], interpolation=cv2.INTER_LINEAR)
        labels[plane > best] = k
        np.maximum(best, plane, out=best)
    return labels


def torch_cpu(logits: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    x = torch.from_numpy(logits)[None]
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)[0].argmax(0).numpy()


def scene_logits(people: np.ndarray, classes: int, stuff: list[int], person: int, seed: int = 0) -> np.ndarray:
    """Logits on the frame's part of a 520x520 letterbox: `people` (H, W bool) as
    class `person`, horizontal bands of the `stuff` classes behind them."""
    h, w = people.shape
    gain = LOGIT_SIDE / max(h, w)
    lh, lw = round(h * gain), round(w * gain)
    rng = np.random.default_rng(seed)
    logits = rng.normal(-6.0, 0.5, (classes, lh, lw)).astype(np.float32)
    rows = np.arange(h)[:, None] * len(stuff) // h
    for i, k in enumerate(stuff):
        band = np.broadcast_to(rows == i, (h, w)) & ~people
        logits[k] = 12 * cv2.resize(band.astype(np.float32), (lw, lh), interpolation=cv2.INTER_AREA) - 4
    logits[person] = 12 * cv2.resize(people.astype(np.float32), (lw, lh), interpolation=cv2.INTER_AREA) - 4
    logits[[person, *stuff]] += rng.normal(0, 0.3, (1 + len(stuff), lh, lw)).astype(np.float32)
    return logits


def best_ms(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(ASSETS / "video" / "vtest.avi"))
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    parser.add_argument("--repeat", type=int, default=5, help="best of N timings")
    args = parser.parse_args()
    for path in (args.video, args.model):
        if not Path(path).exists():
            parser.error(f"{path} not found: pass --video/--model, or set SEGSTREAM_ASSETS to the assets folder")
    torch.set_num_threads(os.cpu_count() or 1)

    with open_source(args.video) as source:
        frame = next(iter(source))
    dets = Model.load(args.model)(frame)
    people = np.asarray(dets[dets.class_ids == 0].masks).any(axis=0)
    scenes = [
        ("VOC street: background + person", scene_logits(people, 21, [0], 15)),
        ("ADE20K street: 5 stuff + person", scene_logits(people, 150, [2, 1, 0, 6, 11], 12)),
        ("noise (every class wins)", np.random.default_rng(1).normal(0, 1, (21, 390, 520)).astype(np.float32)),
    ]
    print(f"{len(dets)} objects, {people.mean():.1%} of the frame people; best of {args.repeat}; "
          f"{torch.get_num_threads()} torch threads")
    head = (f"{'logits':34s} {'contend':>8s} {'output':>10s} {'every class':>12s} {'running max':>12s} "
            f"{'torch':>8s} {'contending':>11s} {'vs every':>9s} {'vs running':>11s} {'vs torch':>9s}  same")
    print(head)
    maps = []  # each scene's 1080p label map
    for name, logits in scenes:
        contend = f"{len(contending_classes(logits))}/{len(logits)}"
        for hw in ((frame.height, frame.width), (1080, 1920)):
            t_every, ref = best_ms(lambda: every_class(logits, hw), args.repeat)
            t_run, _ = best_ms(lambda: running_max(logits, hw), args.repeat)
            t_torch, _ = best_ms(lambda: torch_cpu(logits, hw), args.repeat)
            t_ours, ours = best_ms(lambda: resize_argmax(logits, hw), args.repeat)
            print(f"{name:34s} {contend:>8s} {f'{hw[1]}x{hw[0]}':>10s} {t_every:10.1f}ms {t_run:10.1f}ms "
                  f"{t_torch:6.1f}ms {t_ours:9.1f}ms {t_every / t_ours:8.1f}x {t_run / t_ours:10.1f}x "
                  f"{t_torch / t_ours:8.1f}x  {'yes' if np.array_equal(ours, ref) else 'NO'}")
        maps.append((name, ours))

    print(f"\n{'1080p label map, PNG':34s} {'bits':>5s} {'before':>9s} {'KB':>7s} {'segstream':>10s} {'KB':>7s} {'speed-up':>9s}")
    for name, labels in maps:
        for bits in (8, 16):
            image = labels.astype(np.uint8 if bits == 8 else np.uint16)
            t_old, old = best_ms(lambda: cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1], args.repeat)
            t_new, new = best_ms(lambda: cv2.imencode(".png", image, png_params(image.dtype))[1], args.repeat)
            assert np.array_equal(cv2.imdecode(new, cv2.IMREAD_UNCHANGED), image)
            print(f"{name:34s} {bits:5d} {t_old:7.1f}ms {old.size / 1024:7.1f} {t_new:8.1f}ms {new.size / 1024:7.1f} "
                  f"{t_old / t_new:8.1f}x")


if __name__ == "__main__":
    main()
