"""End to end on real video: detector + tracker on PETS09-S2L1 (vtest.avi), scored with TrackEval.

    python bench/pets_e2e.py [--model M]

Runs `segstream run --source vtest.avi --model M --classes person --export ...`
with each tracker configuration and scores the MOTChallenge export against
`mot/MOT15/PETS09-S2L1/gt` (video frame i = MOT frame i+1) with TrackEval,
and counts how often a person keeps their track id through the video's
crossings (from the ground truth: every time two people overlap).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from segstream.pipelines.cli import _quiet_native_logs
from segstream.pipelines.config import RunConfig
from segstream.pipelines.run import GIL_SWITCH_INTERVAL_S
from segstream.pipelines.session import build_pipeline
from segstream.stream.boxes import box_iou, xywh_to_xyxy
from segstream.tracking.evaluation import evaluate_mot

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
REID = str(ASSETS / "models" / "osnet_x0_25_msmt17.onnx")
CONFIGS = {
    "sort": {"tracker": "sort"},
    "byte, no appearance": {"tracker": "byte", "appearance": "none"},
    "byte + colour": {"tracker": "byte"},
    "byte + re-id": {"tracker": "byte", "appearance": "reid", "reid_model": REID},
    "deepsort + colour (default)": {},
    "deepsort + re-id": {"tracker": "deepsort", "appearance": "reid", "reid_model": REID},
}


def read_boxes(path: Path) -> dict[int, list[tuple[int, list[float]]]]:
    """MOTChallenge rows -> {frame: [(id, xyxy), ...]} (ground truth: only rows marked to evaluate)."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.shape[1] > 6 and path.parent.name == "gt":
        rows = rows[rows[:, 6] != 0]
    out: dict[int, list[tuple[int, list[float]]]] = defaultdict(list)
    frames, ids = rows[:, 0].astype(int).tolist(), rows[:, 1].astype(int).tolist()
    for f, i, box in zip(frames, ids, xywh_to_xyxy(rows[:, 2:6]).tolist()):
        out[f].append((i, box))
    return out


def crossings(gt: dict, min_iou: float = 0.3, gap: int = 10) -> list[tuple[int, int, int, int]]:
    """(person a, person b, first frame, last frame) of every time two ground-truth
    people overlap by more than `min_iou` (overlaps closer than `gap` frames merged)."""
    frames_of: dict[tuple[int, int], list[int]] = defaultdict(list)
    for f, items in gt.items():
        ids, boxes = [i for i, _ in items], np.array([b for _, b in items])
        iou = np.triu(box_iou(boxes, boxes), 1)
        for p, q in zip(*np.nonzero(iou > min_iou)):
            frames_of[(min(ids[p], ids[q]), max(ids[p], ids[q]))].append(f)
    events = []
    for (a, b), frames in frames_of.items():
        frames.sort()
        start = prev = frames[0]
        for f in frames[1:] + [sys.maxsize]:
            if f - prev > gap:
                events.append((a, b, start, prev))
                start = f
            prev = f
    return events


def kept_through_crossings(gt: dict, tracks: dict, events: list, margin: int = 5) -> tuple[int, int]:
    """For each person in each crossing: is the track id on them just before the
    crossing the one on them just after? (A track matches a person at IoU >= 0.5.)"""
    def track_on(f: int, person: int) -> int | None:
        box = dict(gt.get(f, [])).get(person)
        if box is None or not tracks.get(f):
            return None
        iou = box_iou(np.array([box]), np.array([b for _, b in tracks[f]]))[0]
        return tracks[f][int(iou.argmax())][0] if iou.max() >= 0.5 else None

    kept = total = 0
    for a, b, start, end in events:
        for person in (a, b):
            before = [t for t in (track_on(f, person) for f in range(start - margin, start)) if t is not None]
            after = [t for t in (track_on(f, person) for f in range(end + 1, end + 1 + margin)) if t is not None]
            if before and after:
                total += 1
                kept += before[-1] == after[0]
    return kept, total


def run_on_pets(model: str, out: str, **extra) -> tuple[Any, Any]:
    """`segstream run` on the sample video (PETS09-S2L1), persons only, with `extra`
    config keys, its MOTChallenge export in `out`: (TrackEval scores, run stats)."""
    config = RunConfig(source=[str(ASSETS / "video" / "vtest.avi")], model=[model], classes=["person"],
                       progress=False, export=str(Path(out) / "PETS09-S2L1.txt"), **extra)
    pipeline, _ = build_pipeline(config)
    try:
        stats = pipeline.run()
    finally:
        pipeline.models.close()
    return evaluate_mot(ASSETS / "mot" / "MOT15", out, ["PETS09-S2L1"])["PETS09-S2L1"], stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    args = parser.parse_args()
    _quiet_native_logs()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    video, gt = ASSETS / "video" / "vtest.avi", ASSETS / "mot" / "MOT15"
    print(f"PETS09-S2L1 ({video.name}) with {Path(args.model).name}, persons only; TrackEval")
    truth = read_boxes(gt / "PETS09-S2L1" / "gt" / "gt.txt")
    events = crossings(truth)
    print(f"crossings: the {len(events)} times two people overlap (IoU > 0.3); 'kept' = the same track id on a "
          "person before and after")
    print(f"{'tracker':<28}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}{'kept':>11}{'FPS':>8}")
    for name, extra in CONFIGS.items():
        with tempfile.TemporaryDirectory() as out:
            s, stats = run_on_pets(args.model, out, **extra)
            kept, total = kept_through_crossings(truth, read_boxes(Path(out) / "PETS09-S2L1.txt"), events)
        share = f"{kept}/{total} {kept / max(total, 1):.0%}"
        print(f"{name:<28}{s.hota:>7.1f}{s.mota:>7.1f}{s.idf1:>7.1f}{s.id_switches:>6}{share:>11}{stats.fps:>8.1f}")


if __name__ == "__main__":
    main()
