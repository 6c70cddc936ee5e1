"""End to end on real video: detector + tracker on PETS09-S2L1 (vtest.avi), scored with TrackEval.

    python bench/pets_e2e.py [--model M]

Runs `segstream run --source vtest.avi --model M --classes person --export ...`
with each tracker configuration and scores the MOTChallenge export against
`mot/MOT15/PETS09-S2L1/gt` (video frame i = MOT frame i+1).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.cli import GIL_SWITCH_INTERVAL_S, _quiet_native_logs  # noqa: E402
from pipelines.config import RunConfig  # noqa: E402
from pipelines.session import build_pipeline  # noqa: E402
from tracking.evaluation import evaluate_mot  # noqa: E402

ASSETS = Path(os.environ.get("SEGSTREAM_ASSETS") or REPO.parent / "shared" / "assets")
REID = str(ASSETS / "models" / "osnet_x0_25_msmt17.onnx")
CONFIGS = {
    "sort": {"tracker": "sort"},
    "byte, no appearance": {"tracker": "byte", "appearance": "none"},
    "byte + colour (default)": {},
    "byte + re-id": {"tracker": "byte", "appearance": "reid", "reid_model": REID},
    "deepsort + colour": {"tracker": "deepsort", "appearance": "color"},
    "deepsort + re-id": {"tracker": "deepsort", "appearance": "reid", "reid_model": REID},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ASSETS / "models" / "yolov8n-seg_320_fp32.onnx"))
    args = parser.parse_args()
    _quiet_native_logs()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    video, gt = ASSETS / "video" / "vtest.avi", ASSETS / "mot" / "MOT15"
    print(f"PETS09-S2L1 ({video.name}) with {Path(args.model).name}, persons only; TrackEval")
    print(f"{'tracker':<28}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}{'FPS':>8}")
    for name, extra in CONFIGS.items():
        with tempfile.TemporaryDirectory() as out:
            config = RunConfig(source=[str(video)], model=[args.model], classes=["person"],
                               export=str(Path(out) / "PETS09-S2L1.txt"), **extra)
            pipeline, _ = build_pipeline(config)
            try:
                stats = pipeline.run()
            finally:
                pipeline.models.close()
            s = evaluate_mot(gt, out, ["PETS09-S2L1"])["PETS09-S2L1"]
        print(f"{name:<28}{s.hota:>7.1f}{s.mota:>7.1f}{s.idf1:>7.1f}{s.id_switches:>6}{stats.fps:>8.1f}")


if __name__ == "__main__":
    main()
