"""segstream's SORT against the original SORT, on the same MOT15 detections,
scored with TrackEval.

    python bench/sort_mot15.py [--mot DIR] [--out DIR] [--original sort/sort.py]

Runs `segstream.Sort()` with its defaults over every `<seq>/det/det.txt` in
the MOTChallenge-layout folder, prints HOTA / MOTA / IDF1 / ID switches per
sequence and combined, the MOTA of the original SORT where its README gives
one, and the association time per frame. Given `--original`, the path of
sort.py from a clone of abewley/sort (GPL-3.0, so not copied here), it runs
that file's `Sort` too, on the same detections, and scores it the same way.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
from segstream.tracking.evaluation import evaluate_mot
from segstream.tracking.mot import track_sequences
from segstream.tracking.sort import Sort

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
# MOTA of the original SORT (abewley/sort README, MOT devkit) on these detections.
ORIGINAL_SORT_MOTA = {"TUD-Campus": 62.7, "ETH-Sunnyday": 59.1, "KITTI-17": 60.2}


def load_original(path: str) -> Any:
    """abewley/sort's `Sort` class. Its module imports matplotlib and scikit-image
    for its display mode only; they are stood in for when not installed."""
    for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.patches", "skimage"):
        if importlib.util.find_spec(name.split(".")[0]) is None:
            sys.modules.setdefault(name, types.SimpleNamespace(use=lambda *a, **k: None, io=None))
    spec = importlib.util.spec_from_file_location("original_sort", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Sort


def run_original(sort_class: Any, root: Path, sequences: list[str], out: Path) -> None:
    """The original's own loop (sort.py's __main__), writing MOTChallenge rows."""
    out.mkdir(parents=True, exist_ok=True)
    for seq in sequences:
        dets_all = np.loadtxt(root / seq / "det" / "det.txt", delimiter=",")
        tracker = sort_class(max_age=1, min_hits=3, iou_threshold=0.3)
        with open(out / f"{seq}.txt", "w") as f:
            for frame in range(1, int(dets_all[:, 0].max()) + 1):
                dets = dets_all[dets_all[:, 0] == frame, 2:7].copy()
                dets[:, 2:4] += dets[:, 0:2]
                for d in tracker.update(dets):
                    f.write(f"{frame},{int(d[4])},{d[0]:.2f},{d[1]:.2f},{d[2] - d[0]:.2f},{d[3] - d[1]:.2f},1,-1,-1,-1\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mot", default=str(ASSETS / "mot" / "MOT15"))
    parser.add_argument("--out", default=None, help="keep result files here")
    parser.add_argument("--original", help="sort.py of a clone of abewley/sort: run and score it too")
    args = parser.parse_args()
    root = Path(args.mot)
    out = Path(args.out or tempfile.mkdtemp(prefix="sort_mot15_"))
    sequences, seconds, frames = track_sequences(root, lambda frame_rate: Sort(), out)
    scores = evaluate_mot(root, out, sequences)
    original = None
    if args.original:
        run_original(load_original(args.original), root, sequences, out / "original")
        original = evaluate_mot(root, out / "original", sequences)

    print(f"{'sequence':<18}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}   original SORT: README MOTA"
          + ("   | run here: HOTA  MOTA  IDF1  IDSW" if original else ""))
    for seq in [*sequences, "COMBINED"]:
        s = scores[seq]
        ref = ORIGINAL_SORT_MOTA.get(seq)
        note = f"{ref:.1f} (diff {s.mota - ref:+.1f})" if ref is not None else "-"
        line = f"{seq:<18}{s.hota:>7.1f}{s.mota:>7.1f}{s.idf1:>7.1f}{s.id_switches:>6}   {note:<17}"
        if original:
            o = original[seq]
            line += f"   | {o.hota:>14.1f}{o.mota:>6.1f}{o.idf1:>6.1f}{o.id_switches:>6}"
        print(line)
    print(f"association: {seconds / frames * 1000:.3f} ms per frame over {frames} frames")


if __name__ == "__main__":
    main()
