"""segstream's SORT against the original SORT's published results, on the same
MOT15 detections, scored with TrackEval.

    python bench/sort_mot15.py [--mot DIR] [--out DIR]

Runs `tracking.Sort()` with its defaults over every `<seq>/det/det.txt` in
the MOTChallenge-layout folder, prints HOTA / MOTA / IDF1 / ID switches per
sequence and combined, the MOTA of the original SORT where its README gives
one, and the association time per frame.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from segstream.tracking.evaluation import evaluate_mot
from segstream.tracking.mot import track_sequences
from segstream.tracking.sort import Sort

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
# MOTA of the original SORT (abewley/sort README, MOT devkit) on these detections.
ORIGINAL_SORT_MOTA = {"TUD-Campus": 62.7, "ETH-Sunnyday": 59.1, "KITTI-17": 60.2}
# TrackEval COMBINED for the original SORT on the eight MOT15 sequences shipped in assets.
ORIGINAL_SORT_COMBINED = {"HOTA": 40.9, "MOTA": 49.7, "IDF1": 52.2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mot", default=str(ASSETS / "mot" / "MOT15"))
    parser.add_argument("--out", default=None, help="keep result files here")
    args = parser.parse_args()
    root = Path(args.mot)
    out = Path(args.out or tempfile.mkdtemp(prefix="sort_mot15_"))
    sequences, seconds, frames = track_sequences(root, Sort, out)
    scores = evaluate_mot(root, out, sequences)

    print(f"{'sequence':<18}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}   original SORT MOTA")
    for seq in [*sequences, "COMBINED"]:
        s = scores[seq]
        ref = ORIGINAL_SORT_MOTA.get(seq)
        if seq == "COMBINED":
            note = "HOTA {HOTA} MOTA {MOTA} IDF1 {IDF1}".format(**ORIGINAL_SORT_COMBINED)
        else:
            note = f"{ref:.1f} (diff {s.mota - ref:+.1f})" if ref is not None else "-"
        print(f"{seq:<18}{s.hota:>7.1f}{s.mota:>7.1f}{s.idf1:>7.1f}{s.id_switches:>6}   {note}")
    print(f"association: {seconds / frames * 1000:.3f} ms per frame over {frames} frames")


if __name__ == "__main__":
    main()
