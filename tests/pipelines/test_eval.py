"""`segstream eval` tracks a MOTChallenge folder and scores it with TrackEval."""

import subprocess
import sys

from conftest import REPO


def eval_cli(*args):
    return subprocess.run([sys.executable, "-m", "segstream", "eval", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def test_eval_scores_each_sequence_and_writes_results(mot_root, tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    for seq in ("TUD-Campus", "KITTI-17"):
        (gt / seq).symlink_to(mot_root / seq)
    run = eval_cli("--gt", gt, "--out", tmp_path / "res", "--tracker", "sort")
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines()[2:]}
    assert set(rows) == {"TUD-Campus", "KITTI-17", "COMBINED"}
    assert abs(float(rows["TUD-Campus"][1]) - 62.7) <= 1.0  # original SORT's MOTA
    assert (tmp_path / "res" / "TUD-Campus.txt").stat().st_size > 0


def test_eval_config_errors_and_missing_data(mot_root, tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("sort: {max_agee: 3}\n")
    run = eval_cli("--gt", mot_root, "--config", bad)
    assert run.returncode == 2 and "unknown key 'sort.max_agee'" in run.stderr
    run = eval_cli("--gt", tmp_path)
    assert run.returncode == 2 and "no MOTChallenge sequences" in run.stderr


def test_eval_defaults_to_the_run_default_tracker(mot_root, tmp_path):
    """Without --tracker, eval scores what `segstream run` would track with (BYTE)."""
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "TUD-Stadtmitte").symlink_to(mot_root / "TUD-Stadtmitte")
    run = eval_cli("--gt", gt)
    assert run.returncode == 0, run.stderr
    assert "byte" in run.stdout.splitlines()[0].lower()
