"""HOTA / CLEAR (MOTA) / Identity (IDF1) scores with TrackEval.

TrackEval is an optional dependency (`pip install 'segstream[eval]'`), imported
only when an evaluation runs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..stream.errors import SegstreamError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scores:
    hota: float
    mota: float
    idf1: float
    id_switches: int
    recall: float
    precision: float


def evaluate_mot(gt_root: str | Path, results_dir: str | Path, sequences: list[str]) -> dict[str, Scores]:
    """Score `results_dir/<seq>.txt` against `gt_root/<seq>/gt/gt.txt` for each
    sequence; the extra key "COMBINED" holds TrackEval's combined scores."""
    try:
        import trackeval
    except ImportError:
        raise SegstreamError("evaluation needs TrackEval: pip install 'segstream[eval]'") from None

    results_dir = Path(results_dir)
    with tempfile.TemporaryDirectory() as tmp:
        # TrackEval expects TRACKERS_FOLDER/<tracker>/<seq>.txt.
        trackers = Path(tmp) / "trackers"
        (trackers / "segstream").mkdir(parents=True)
        for seq in sequences:
            (trackers / "segstream" / f"{seq}.txt").symlink_to((results_dir / f"{seq}.txt").resolve())
        eval_config = trackeval.Evaluator.get_default_eval_config()
        eval_config.update(
            USE_PARALLEL=False, PRINT_RESULTS=False, PRINT_CONFIG=False, TIME_PROGRESS=False,
            OUTPUT_SUMMARY=False, OUTPUT_DETAILED=False, PLOT_CURVES=False, DISPLAY_LESS_PROGRESS=True,
            OUTPUT_EMPTY_CLASSES=False, PRINT_ONLY_COMBINED=True,
        )
        dataset_config = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
        dataset_config.update(
            GT_FOLDER=str(gt_root), TRACKERS_FOLDER=str(trackers), OUTPUT_FOLDER=str(Path(tmp) / "out"),
            TRACKERS_TO_EVAL=["segstream"], TRACKER_SUB_FOLDER="", SKIP_SPLIT_FOL=True, BENCHMARK="MOT15",
            SEQ_INFO={seq: None for seq in sequences}, PRINT_CONFIG=False,
        )
        evaluator = trackeval.Evaluator(eval_config)
        dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
        quiet = {"PRINT_CONFIG": False}
        metrics = [trackeval.metrics.HOTA(quiet), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]
        # TrackEval prints progress on stdout; keep it out of the caller's output.
        with contextlib.redirect_stdout(io.StringIO()) as chatter:
            results, _ = evaluator.evaluate([dataset], metrics)
        log.debug("trackeval: %s", chatter.getvalue())
    per_seq = results["MotChallenge2DBox"]["segstream"]
    out = {}
    for seq, res in per_seq.items():
        r = res["pedestrian"]
        out["COMBINED" if seq == "COMBINED_SEQ" else seq] = Scores(
            hota=100 * float(r["HOTA"]["HOTA"].mean()),
            mota=100 * float(r["CLEAR"]["MOTA"]),
            idf1=100 * float(r["Identity"]["IDF1"]),
            id_switches=int(r["CLEAR"]["IDSW"]),
            recall=100 * float(r["CLEAR"]["CLR_Re"]),
            precision=100 * float(r["CLEAR"]["CLR_Pr"]),
        )
    return out
