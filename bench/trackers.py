"""segstream's trackers against the trackers people use, on the same detections.

    python bench/trackers.py [--mot DIR]

Every tracker runs over every `<seq>/det/det.txt` of a MOTChallenge-layout
folder (default: the MOT15 sequences in the shared assets); results are
scored with TrackEval (COMBINED over all sequences). Peers are optional bench
dependencies and are skipped, with a note, when not installed:
`pip install trackers` (roboflow: ByteTrack, OC-SORT, SORT) and
`pip install --no-deps norfair rich` (norfair pins numpy<2 in its metadata but
runs with numpy 2), and `pip install --no-deps boxmot && pip install lap`
(BoxMOT: BoT-SORT motion only, ByteTrack, OC-SORT; its full dependency list
pulls a CUDA torch). BoxMOT's trackers take the frame too: MOT15 has no
frames here, so they get a black image of the sequence's size, and BoT-SORT
runs without camera motion compensation and re-id, as BoxMOT's motion-only
setting.
The time column is the tracker's `update` alone (no detector, no I/O), the
best of `--repeat` runs; `vs peer` divides it by the fastest peer's time in
the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# This file is named like roboflow's `trackers` package: keep its folder off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from segstream.stream.types import Detections
from segstream.tracking.byte import ByteTracker
from segstream.tracking.deepsort import DeepSort
from segstream.tracking.evaluation import evaluate_mot
from segstream.tracking.mot import SequenceInfo, mot_sequences, read_seqinfo, track_sequences
from segstream.tracking.sort import Sort

ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")


class RoboflowTracker:
    """A tracker of roboflow's `trackers` package (ByteTrack, OC-SORT, ...) with its defaults."""

    def __init__(self, name: str, frame_rate: float) -> None:
        import supervision as sv
        import trackers

        self._sv = sv
        cls = getattr(trackers, name)
        try:
            self._tracker = cls(frame_rate=frame_rate)
        except TypeError:  # trackers without a frame-rate setting
            self._tracker = cls()

    def update(self, dets: Detections) -> Detections:
        sv_dets = self._sv.Detections(xyxy=dets.xyxy.astype(np.float32), confidence=dets.scores, class_id=dets.class_ids)
        out = self._tracker.update(sv_dets)
        keep = out.tracker_id >= 0 if out.tracker_id is not None else np.zeros(len(out), bool)
        out = out[keep]
        return Detections(out.xyxy, out.confidence, out.class_id, track_ids=out.tracker_id)


class NorfairIoU:
    """tryolabs/norfair with its IoU distance on boxes (its documented box setup)."""

    def __init__(self, frame_rate: float) -> None:
        from norfair import Detection, Tracker

        self._detection = Detection
        self._tracker = Tracker(distance_function="iou", distance_threshold=0.7)

    def update(self, dets: Detections) -> Detections:
        objs = [self._detection(points=box.reshape(2, 2), scores=np.array([s, s])) for box, s in zip(dets.xyxy, dets.scores)]
        tracked = self._tracker.update(detections=objs)
        if not tracked:
            return Detections.empty().with_(track_ids=np.zeros(0, np.int64))
        boxes = np.stack([t.estimate.reshape(4) for t in tracked])
        return Detections(boxes, np.ones(len(tracked)), np.zeros(len(tracked)), track_ids=[t.id for t in tracked])


class BoxmotTracker:
    """A tracker of BoxMOT (`boxmot`), fed (N, 6) [x1, y1, x2, y2, score, class] arrays."""

    def __init__(self, name: str, info: SequenceInfo, **options: Any) -> None:
        import boxmot

        cls = getattr(boxmot, name)
        try:
            self._tracker = cls(frame_rate=int(round(info.fps or 30)), **options)
        except TypeError:  # trackers without a frame-rate setting
            self._tracker = cls(**options)
        self._image = np.zeros((info.height or 1080, info.width or 1920, 3), np.uint8)

    def update(self, dets: Detections) -> Detections:
        rows = np.concatenate([dets.xyxy, dets.scores[:, None], dets.class_ids[:, None]], axis=1).astype(np.float32)
        out = np.asarray(self._tracker.update(rows, self._image))
        if len(out) == 0:
            return Detections.empty().with_(track_ids=np.zeros(0, np.int64))
        return Detections(out[:, :4], out[:, 5], out[:, 6], track_ids=out[:, 4].astype(np.int64))


def peers() -> dict[str, Callable[[SequenceInfo], Any] | str]:
    """Tracker name -> factory(sequence info), or the reason it cannot run."""
    out: dict[str, Callable[[SequenceInfo], Any] | str] = {
        "segstream SORT": lambda info: Sort(),
        "segstream BYTE": lambda info: ByteTracker(frame_rate=info.fps),
        "segstream DeepSORT": lambda info: DeepSort(),  # motion only here: MOT15 has no frames to embed
    }
    try:
        import trackers  # noqa: F401

        for label, cls_name in (("trackers ByteTrack", "ByteTrackTracker"), ("trackers OC-SORT", "OCSORTTracker"),
                                ("trackers SORT", "SORTTracker")):
            out[label] = lambda info, c=cls_name: RoboflowTracker(c, info.fps or 30.0)
    except ImportError:
        out["trackers (roboflow)"] = "not installed (pip install trackers)"
    try:
        import norfair  # noqa: F401

        out["norfair (IoU)"] = lambda info: NorfairIoU(info.fps or 30.0)
    except ImportError:
        out["norfair (IoU)"] = "not installed (pip install --no-deps norfair)"
    try:
        import boxmot  # noqa: F401

        out["boxmot BoT-SORT"] = lambda info: BoxmotTracker("BotSort", info, use_embeddings=False, use_cmc=False)
        out["boxmot ByteTrack"] = lambda info: BoxmotTracker("ByteTrack", info)
        out["boxmot OC-SORT"] = lambda info: BoxmotTracker("OcSort", info)
    except ImportError:
        out["boxmot"] = "not installed (pip install --no-deps boxmot && pip install lap)"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mot", default=str(ASSETS / "mot" / "MOT15"))
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per tracker (the best counts)")
    args = parser.parse_args()
    root = Path(args.mot)
    sequences = mot_sequences(root)
    print(f"{len(sequences)} sequences in {root}; TrackEval COMBINED")
    rows = []
    for name, factory in peers().items():
        if isinstance(factory, str):
            rows.append((name, factory))
            continue
        best_ms = float("inf")
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as out:
                seconds, frames = 0.0, 0
                for seq in sequences:  # a fresh tracker per sequence, at the sequence's frame rate
                    info = read_seqinfo(root / seq)
                    _, s, f = track_sequences(root, lambda frame_rate, info=info: factory(info), out, [seq])
                    seconds, frames = seconds + s, frames + f
                best_ms = min(best_ms, seconds / frames * 1000)
                c = evaluate_mot(root, out, sequences)["COMBINED"]
        rows.append((name, c, best_ms))
    peer_ms = [r[2] for r in rows if len(r) == 3 and not r[0].startswith("segstream")]
    fastest = min(peer_ms) if peer_ms else None
    print(f"{'tracker':<24}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>7}{'ms/frame':>10}{'vs peer':>9}")
    for row in rows:
        if len(row) == 2:
            print(f"{row[0]:<24}{row[1]}")
            continue
        name, c, ms = row
        ratio = f"{ms / fastest:>8.2f}x" if fastest else f"{'-':>9}"
        print(f"{name:<24}{c.hota:>7.1f}{c.mota:>7.1f}{c.idf1:>7.1f}{c.id_switches:>7}{ms:>10.3f}{ratio}")


if __name__ == "__main__":
    main()
