"""Which appearance helps? Trackers with and without embeddings on PETS09-S2L1.

    python bench/appearance.py [--reid M] [--det det.txt]

PETS09-S2L1 is the one MOT15 sequence whose frames we have (`vtest.avi`,
video frame i = MOT frame i+1), so appearance can be measured on it: the
MOTChallenge detections (`det/det.txt`, default) get embeddings from the
video frames, from a re-id ONNX model on the crops and from the colours in
each box, and every tracker runs on exactly the same detections. TrackEval
scores; the time column is the embedding cost per frame.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from segstream.engines.adapters.reid import ReidEmbedder
from segstream.engines.ops.appearance import color_embeddings
from segstream.stream.sources import open_source
from segstream.tracking.byte import ByteTracker
from segstream.tracking.deepsort import DeepSort
from segstream.tracking.evaluation import evaluate_mot
from segstream.tracking.mot import format_tracks, read_detections, read_seqinfo
from segstream.tracking.sort import Sort

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
SEQ = "PETS09-S2L1"

TRACKERS: dict[str, tuple[Callable[[], Any], str | None]] = {
    "SORT": (Sort, None),
    "BYTE": (ByteTracker, None),
    "BYTE + colour": (ByteTracker, "color"),
    "BYTE + re-id": (ByteTracker, "reid"),
    "DeepSORT (no appearance)": (DeepSort, None),
    "DeepSORT + colour": (DeepSort, "color"),
    "DeepSORT + re-id": (DeepSort, "reid"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reid", default=str(ASSETS / "models" / "osnet_x0_25_msmt17.onnx"))
    parser.add_argument("--det", default=str(ASSETS / "mot" / "MOT15" / SEQ / "det" / "det.txt"))
    args = parser.parse_args()
    gt = ASSETS / "mot" / "MOT15"
    info = read_seqinfo(gt / SEQ)
    frames = read_detections(args.det, info.length)
    reid = ReidEmbedder.load(args.reid)
    features: dict[str, list] = {"color": [], "reid": []}
    cost = {"color": 0.0, "reid": 0.0}
    with open_source(str(ASSETS / "video" / "vtest.avi")) as video:
        for frame, dets in zip(video, frames):
            for name, fn in (("color", color_embeddings), ("reid", reid)):
                t = time.perf_counter()
                features[name].append(fn(frame.image, dets))
                cost[name] += time.perf_counter() - t
    print(f"{SEQ}: {len(frames)} frames, detections {Path(args.det).name}, re-id {Path(args.reid).name}; TrackEval")
    print(f"{'tracker':<28}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}{'embed ms/frame':>16}")
    for name, (make, appearance) in TRACKERS.items():
        tracker, lines = make(), []
        for i, dets in enumerate(frames):
            if appearance:
                dets = dets.with_(embeddings=features[appearance][i])
            lines.append(format_tracks(i + 1, tracker.update(dets)))
        with tempfile.TemporaryDirectory() as out:
            (Path(out) / f"{SEQ}.txt").write_text("".join(lines))
            s = evaluate_mot(gt, out, [SEQ])[SEQ]
        ms = f"{cost[appearance] / len(frames) * 1000:.1f}" if appearance else "-"
        print(f"{name:<28}{s.hota:>7.1f}{s.mota:>7.1f}{s.idf1:>7.1f}{s.id_switches:>6}{ms:>16}")


if __name__ == "__main__":
    main()
