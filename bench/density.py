"""What crowds cost the trackers: `update` time per frame at 10, 50, 100 and 200 objects.

    python bench/density.py [--objects 10 50 100 200] [--frames 300] [--repeat 3]

Synthetic scenes, the same for every tracker: people of 40 to 160 px height
walking across a 1920x1080 frame at 0.5 to 4 px a frame, each detected with
probability 0.9, boxes jittered by 2 px, scores uniform in 0.3 to 1.0, and
for DeepSORT 128-d unit embeddings (a fixed random vector per person plus
noise). The time is `update` alone (no detector, no I/O), the best of
`--repeat` runs, and the last column compares it with issue 18's target of
2 ms a frame at 100 objects. ID switches against the synthetic truth are
printed too, to show the trackers were tracking, not only timed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np
from segstream.stream.types import Detections
from segstream.tracking.byte import ByteTracker
from segstream.tracking.deepsort import DeepSort
from segstream.tracking.sort import Sort

TARGET_MS_AT_100 = 2.0


def scene(objects: int, frames: int, seed: int = 0) -> list[tuple[Detections, np.ndarray]]:
    """Per frame: the detections and, for each, the true person it belongs to."""
    rng = np.random.default_rng(seed)
    height = rng.uniform(40, 160, objects)
    width = height * rng.uniform(0.35, 0.45, objects)
    xy = np.stack([rng.uniform(0, 1920, objects), rng.uniform(0, 1080, objects)], 1)
    velocity = rng.uniform(0.5, 4, (objects, 1)) * np.stack(
        [np.cos(a := rng.uniform(0, 2 * np.pi, objects)), np.sin(a)], 1)
    looks = rng.normal(size=(objects, 128))
    out = []
    for _ in range(frames):
        xy = (xy + velocity) % [1920, 1080]  # wrap around: the crowd stays as dense
        seen = rng.random(objects) < 0.9
        boxes = np.concatenate([xy - np.stack([width, height], 1) / 2, xy + np.stack([width, height], 1) / 2], 1)
        boxes = boxes[seen] + rng.normal(0, 2, (int(seen.sum()), 4))
        feats = looks[seen] + rng.normal(0, 0.3, (int(seen.sum()), 128))
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        dets = Detections(boxes, rng.uniform(0.3, 1.0, len(boxes)), np.zeros(len(boxes), np.int32),
                          embeddings=feats.astype(np.float32))
        out.append((dets, np.flatnonzero(seen)))
    return out


def id_switches(frames: list[tuple[Detections, np.ndarray]], tracked: list[Detections]) -> int:
    """Times a true person's track id changes from one tracked frame to the next.
    Each tracked row is given to the person of the nearest input box (the
    trackers report their filtered box, a few pixels from the detection's)."""
    last: dict[int, int] = {}
    switches = 0
    for (dets, people), out in zip(frames, tracked):
        if not len(out):
            continue
        rows = np.argmin(np.abs(dets.xyxy[None, :, :] - out.xyxy[:, None, :]).sum(-1), axis=1)
        for person, track in zip(people[rows].tolist(), out.track_ids.tolist()):
            switches += person in last and last[person] != track
            last[person] = track
    return switches


def time_tracker(make: Callable[[], Any], frames: list[tuple[Detections, np.ndarray]], repeat: int) -> tuple[float, int]:
    """(best ms per frame of `update`, ID switches of the last run)."""
    best = float("inf")
    for _ in range(repeat):
        tracker, tracked = make(), []
        t = time.perf_counter()
        for dets, _ in frames:
            tracked.append(tracker.update(dets))
        best = min(best, (time.perf_counter() - t) / len(frames) * 1000)
    return best, id_switches(frames, tracked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    trackers = {"SORT": Sort, "BYTE": ByteTracker, "DeepSORT (embeddings)": DeepSort}
    print(f"synthetic 1920x1080 crowds, {args.frames} frames, update() alone, best of {args.repeat}")
    print(f"{'tracker':<24}{'objects':>8}{'ms/frame':>10}{'ID switches':>13}{'vs 2 ms at 100':>16}")
    for n in args.objects:
        frames = scene(n, args.frames)
        for name, make in trackers.items():
            ms, switches = time_tracker(make, frames, args.repeat)
            vs = f"{ms / TARGET_MS_AT_100:.2f}x" if n == 100 else ""
            print(f"{name:<24}{n:>8}{ms:>10.3f}{switches:>13}{vs:>16}")


if __name__ == "__main__":
    main()
