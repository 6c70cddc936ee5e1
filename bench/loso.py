"""Tracker parameters chosen leave-one-sequence-out, and scored where they were not chosen.

    python bench/loso.py [--mot DIR]

A default that was picked by its score on the same sequences it is then
scored on says little about a camera nobody tuned it for. Here every
parameter in the grid below is chosen on all sequences but one (by the mean
of their per-sequence HOTA) and scored on the one left out, once for each
sequence. The held-out results together are scored by TrackEval as one
COMBINED set: that is the honest figure for the chosen parameters, set
beside the current defaults and beside the in-sample best, the figure a
tuner would be tempted to report.

The grid covers the choices BYTE's defaults made on these sequences
(`min_hits`, DIoU's centre term, twice DeepSORT's velocity noise), a lost
track's lifetime in frames or in seconds of the sequence's own frame rate
(MOT15's cameras run at 7 to 30 fps), and the Kalman state: DeepSORT's
(x, y, a, h) or BoT-SORT's (x, y, w, h).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from segstream.tracking.byte import ByteTracker  # noqa: E402
from segstream.tracking.evaluation import Scores, evaluate_mot  # noqa: E402
from segstream.tracking.mot import mot_sequences, read_seqinfo, track_sequences  # noqa: E402

ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")

# Whether the camera moves, from MOT15's sequence table (Leal-Taixe et al., "MOTChallenge 2015").
MOVING_CAMERA = {
    "ADL-Rundle-6": False, "ADL-Rundle-8": True, "ETH-Bahnhof": True, "ETH-Pedcross2": True,
    "ETH-Sunnyday": True, "KITTI-13": True, "KITTI-17": False, "PETS09-S2L1": False,
    "TUD-Campus": False, "TUD-Stadtmitte": False, "Venice-2": False,
}

GRID: dict[str, list[Any]] = {
    "min_hits": [1, 2, 3],
    "distance_weight": [0.0, 1.0],  # DIoU's centre-distance term, off or on
    "std_velocity": [1 / 160, 1 / 80],  # DeepSORT's velocity noise, or twice it
    "track_buffer": ["30 frames", "1 s", "2 s"],
    "state": ["xyah", "xywh"],  # DeepSORT's Kalman state, or BoT-SORT's
}
DEFAULTS = {"min_hits": 2, "distance_weight": 1.0, "std_velocity": 1 / 80, "track_buffer": "1 s", "state": "xywh"}


def tracker_options(config: dict[str, Any], fps: float) -> dict[str, Any]:
    """A grid point as ByteTracker's arguments at a sequence's frame rate."""
    options = dict(config)
    buffer = options.pop("track_buffer")
    options["track_buffer"] = int(buffer.split()[0]) if buffer.endswith("frames") else round(float(buffer[:-2]) * fps)
    return options


def describe(config: dict[str, Any]) -> str:
    velocity = "1/160" if config["std_velocity"] == 1 / 160 else "1/80"
    return (f"min_hits {config['min_hits']}, centre {'on' if config['distance_weight'] else 'off'}, "
            f"velocity {velocity}, lost {config['track_buffer']}, {config['state']}")


def run(root: Path, config: dict[str, Any], sequences: list[str], out: Path) -> dict[str, Scores]:
    """Track every sequence with `config` into `out` and score each (and COMBINED)."""
    for seq in sequences:
        fps = read_seqinfo(root / seq).fps or 30.0
        track_sequences(root, lambda frame_rate: ByteTracker(**tracker_options(config, fps)), out, [seq])
    return evaluate_mot(root, out, sequences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mot", default=str(ASSETS / "mot" / "MOT15"))
    args = parser.parse_args()
    root = Path(args.mot)
    sequences = mot_sequences(root)
    if len(sequences) < 3:
        sys.exit(f"{root}: {len(sequences)} sequences with det/det.txt; leave-one-out needs at least 3")
    configs = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    print(f"{len(sequences)} sequences in {root}; BYTE on their public detections; {len(configs)} grid points")

    with tempfile.TemporaryDirectory() as tmp:
        # per grid point: {sequence: Scores, "COMBINED": Scores}; one process per core
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            scores = list(pool.map(run, *zip(*[(root, c, sequences, Path(tmp) / f"grid{i}")
                                              for i, c in enumerate(configs)])))
        hota = np.array([[s[seq].hota for seq in sequences] for s in scores])  # (configs, sequences)

        held_out = Path(tmp) / "held-out"
        held_out.mkdir()
        chosen = {}
        for j, seq in enumerate(sequences):
            others = [k for k in range(len(sequences)) if k != j]
            best = int(np.argmax(hota[:, others].mean(axis=1)))  # first best on ties: grid order
            chosen[seq] = best
            (held_out / f"{seq}.txt").write_text((Path(tmp) / f"grid{best}" / f"{seq}.txt").read_text())
        loso = evaluate_mot(root, held_out, sequences)
        default = configs.index(DEFAULTS)
        in_sample = int(np.argmax([s["COMBINED"].hota for s in scores]))

    print(f"\n{'held-out sequence':<18}{'fps':>5}{'camera':>8}  {'chosen on the other sequences':<52}"
          f"{'HOTA':>6}{'IDF1':>6}{'IDSW':>6}  {'defaults HOTA/IDF1':>18}")
    for seq in sequences:
        info, c, d = read_seqinfo(root / seq), loso[seq], scores[default][seq]
        camera = {True: "moving", False: "static"}.get(MOVING_CAMERA.get(seq), "?")
        print(f"{seq:<18}{info.fps or 0:>5.0f}{camera:>8}  {describe(configs[chosen[seq]]):<52}"
              f"{c.hota:>6.1f}{c.idf1:>6.1f}{c.id_switches:>6}  {d.hota:>10.1f} / {d.idf1:.1f}")

    print(f"\n{'COMBINED':<58}{'HOTA':>6}{'MOTA':>6}{'IDF1':>6}{'IDSW':>6}")
    rows = [
        ("leave-one-sequence-out (each chosen without its sequence)", loso["COMBINED"]),
        (f"defaults ({describe(DEFAULTS)})", scores[default]["COMBINED"]),
        (f"in-sample best ({describe(configs[in_sample])})", scores[in_sample]["COMBINED"]),
    ]
    for name, c in rows:
        print(f"{name:<58}{c.hota:>6.1f}{c.mota:>6.1f}{c.idf1:>6.1f}{c.id_switches:>6}")
    print("(the in-sample best is chosen and scored on the same sequences: an upper bound, not a result)")

    print("\nhow often each value was chosen, over the folds:")
    for name in GRID:
        counts = Counter(configs[b][name] for b in chosen.values())
        shown = ", ".join(f"{'1/160' if v == 1 / 160 else '1/80' if v == 1 / 80 else v}: {n}"
                          for v, n in counts.most_common())
        print(f"  {name:<16}{shown}")


if __name__ == "__main__":
    main()
