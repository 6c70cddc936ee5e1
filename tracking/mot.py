"""MOTChallenge text formats: detections in, tracks out, and sequence info."""

from __future__ import annotations

import configparser
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..stream.boxes import xywh_to_xyxy
from ..stream.types import Detections


@dataclass(frozen=True)
class SequenceInfo:
    name: str
    length: int
    width: int | None = None
    height: int | None = None
    fps: float | None = None


def read_seqinfo(seq_dir: str | Path) -> SequenceInfo:
    """Read `<seq>/seqinfo.ini`."""
    parser = configparser.ConfigParser()
    path = Path(seq_dir) / "seqinfo.ini"
    if not parser.read(path):
        raise FileNotFoundError(f"no seqinfo.ini in {seq_dir}")
    s = parser["Sequence"]
    return SequenceInfo(
        s.get("name", Path(seq_dir).name),
        s.getint("seqLength"),
        s.getint("imWidth", fallback=None),
        s.getint("imHeight", fallback=None),
        s.getfloat("frameRate", fallback=None),
    )


def read_detections(path: str | Path, length: int | None = None) -> list[Detections]:
    """`det.txt` rows (frame, id, left, top, w, h, conf, ...) -> one Detections per
    frame (index 0 = MOT frame 1), class 0."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    frames = rows[:, 0].astype(np.int64)
    length = length or int(frames.max(initial=0))
    order = np.argsort(frames, kind="stable")
    rows, frames = rows[order], frames[order]
    bounds = np.searchsorted(frames, np.arange(1, length + 2))
    out = []
    for f in range(length):
        r = rows[bounds[f] : bounds[f + 1]]
        out.append(Detections(xywh_to_xyxy(r[:, 2:6]), r[:, 6], np.zeros(len(r), np.int32)))
    return out


def format_tracks(frame_number: int, dets: Detections) -> str:
    """MOTChallenge result lines `frame,id,left,top,w,h,score,-1,-1,-1` for tracked detections."""
    if dets.track_ids is None or len(dets) == 0:
        return ""
    xywh = dets.xyxy.astype(np.float64).copy()
    xywh[:, 2:] -= xywh[:, :2]
    return "".join(
        f"{frame_number},{tid},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1\n"
        for tid, (x, y, w, h), s in zip(dets.track_ids.tolist(), xywh.tolist(), dets.scores.tolist())
    )


def mot_sequences(root: str | Path) -> list[str]:
    """Sequence folders under a MOTChallenge-layout root that have `det/det.txt`."""
    return sorted(p.name for p in Path(root).iterdir() if (p / "det" / "det.txt").is_file())


def track_sequences(
    root: str | Path, make_tracker: Callable[[], Any], out_dir: str | Path, sequences: list[str] | None = None
) -> tuple[list[str], float, int]:
    """Run a fresh tracker over each sequence's detections and write
    `<out_dir>/<seq>.txt`. `make_tracker(frame_rate=...)` gets the frame rate
    of `seqinfo.ini` (None where it has none). Returns (sequences, seconds
    spent in `update`, frames)."""
    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sequences = sequences or mot_sequences(root)
    seconds, frames = 0.0, 0
    for seq in sequences:
        info = read_seqinfo(root / seq)
        tracker, lines = make_tracker(frame_rate=info.fps), []
        for i, dets in enumerate(read_detections(root / seq / "det" / "det.txt", info.length)):
            t = time.perf_counter()
            tracked = tracker.update(dets)
            seconds += time.perf_counter() - t
            lines.append(format_tracks(i + 1, tracked))
        frames += info.length
        (out_dir / f"{seq}.txt").write_text("".join(lines))
    return sequences, seconds, frames
