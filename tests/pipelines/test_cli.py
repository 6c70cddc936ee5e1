"""What a user runs: `segstream run` end to end on the sample video and models,
`segstream subscribe` on real sockets, and one-line errors for bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import av
import cv2
import numpy as np
import pytest
from conftest import REPO, free_port
from segstream.stream.sources import open_source
from segstream.stream.wire import detections_from_message, rle_to_mask

SEGSTREAM = [sys.executable, "-m", "segstream"]


def segstream(*args, timeout=300, **kw):
    return subprocess.run([*SEGSTREAM, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=REPO, **kw)


@pytest.mark.slow
def test_run_publishes_tracked_masks_and_keypoints(video, seg_model, pose_model, tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sub = subprocess.Popen([*SEGSTREAM, "subscribe", endpoint, "--count", "100", "--timeout", "120"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    time.sleep(1.0)
    run = segstream("run", "--source", video, "--model", seg_model, "--model", pose_model, "--publish", endpoint,
                    "--max-frames", 150, "--export", tmp_path / "tracks.jsonl", "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "frames 150" in run.stdout and "infer" in run.stdout
    # The summary says what ran and what it found, per source and class.
    assert f"model {seg_model.name}: instance segmentation, 80 classes; onnxruntime on cpu" in run.stdout
    assert f"model {pose_model.name}: detection with 17 keypoints" in run.stdout
    assert "tracker: DeepSORT with colour features" in run.stdout
    assert re.search(r"^  vtest: \d+ tracks \(person \d+", run.stdout, re.MULTILINE), run.stdout
    assert "inference takes" in run.stdout or "inference: 1 frame" in run.stdout
    out, err = sub.communicate(timeout=60)
    assert sub.returncode == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    assert len(messages) == 100
    persons = [o for m in messages for o in m["objects"] if o["class_name"] == "person"]
    assert persons and all(o["track_id"] >= 1 for o in persons)
    assert all(o["keypoints"] is None or len(o["keypoints"]) == 17 for o in persons)  # null: no pose found
    assert sum(1 for o in persons if o["keypoints"] and max(k[2] for k in o["keypoints"]) > 0.5) > 20
    masks = [rle_to_mask(o["mask"]) for o in persons if o["mask"]]
    assert masks and all(m.shape == (576, 768) for m in masks)
    # Back to arrays on the receiving side: every person with its track id, keypoints and mask.
    received = [detections_from_message(m) for m in messages]
    assert sum(len(d) for d in received) == sum(len(m["objects"]) for m in messages)
    assert all(d.track_ids.min() >= 1 and (d.keypoints is None or d.keypoints.shape[1:] == (17, 3))
               for d in received if len(d))
    person_pixels = sum(np.count_nonzero(d.masks.crops[i]) for d in received if d.masks is not None
                        for i in np.flatnonzero(d.class_ids == 0))
    assert person_pixels == sum(int(m.sum()) for m in masks)  # every person's mask pixels, none lost or added
    # The same ids persist: most person tracks live for many frames.
    lifetimes = np.bincount([o["track_id"] for o in persons])
    assert (lifetimes >= 30).sum() >= 3
    # --export .jsonl holds the same objects subscribe printed, one per frame.
    exported = [json.loads(line) for line in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    assert len(exported) == 150
    by_seq = {m["seq"]: m for m in exported}
    assert all(by_seq[m["seq"]]["objects"] == m["objects"] for m in messages)


def test_export_mot_txt_without_tracker_has_no_ids(video, seg_model, tmp_path):
    out = tmp_path / "tracks.txt"
    run = segstream("run", "--source", video, "--model", seg_model, "--max-frames", 5, "--export", out)
    assert run.returncode == 0, run.stderr
    rows = np.loadtxt(out, delimiter=",", ndmin=2)
    assert set(rows[:, 0].astype(int)) == {1, 2, 3, 4, 5} and rows[:, 1].min() >= 1
    jsonl = tmp_path / "raw.jsonl"
    run = segstream("run", "--source", video, "--model", seg_model, "--max-frames", 3, "--tracker", "none", "--export", jsonl)
    assert run.returncode == 0, run.stderr
    objects = [o for line in jsonl.read_text().splitlines() for o in json.loads(line)["objects"]]
    assert objects and all(o["track_id"] is None for o in objects)


def test_segment_minutes_cuts_the_video_and_export_into_parts(video, seg_model, tmp_path):
    """`--segment-minutes 0.025` (1.5 s) on 35 frames of a 10 fps file: three
    parts of each output, each a whole video, every frame in exactly one."""
    run = segstream("run", "--source", video, "--model", seg_model, "--max-frames", 35, "--segment-minutes", 0.025,
                    "--save", tmp_path / "out.mp4", "--export", tmp_path / "out.jsonl")
    assert run.returncode == 0, run.stderr
    videos, exports = sorted(tmp_path.glob("out-part*.mp4")), sorted(tmp_path.glob("out-part*.jsonl"))
    assert [p.name for p in videos] == ["out-part0000.mp4", "out-part0001.mp4", "out-part0002.mp4"]
    seqs = [[json.loads(line)["seq"] for line in p.read_text().splitlines()] for p in exports]
    assert seqs == [list(range(15)), list(range(15, 30)), list(range(30, 35))]
    for path, part in zip(videos, seqs):
        with av.open(str(path)) as container:
            assert sum(1 for _ in container.decode(video=0)) == len(part)


def test_more_inference_workers_than_live_places_is_pointed_out(video, seg_model):
    """Three workers on a live (here: real-time) source with two places inside
    would leave one idle: the run says which flag fixes it."""
    run = segstream("run", "--source", video, "--realtime", "--model", seg_model, "--infer-workers", 3, "--threads", 1,
                    "--max-frames", 3)
    assert run.returncode == 0, run.stderr
    assert "give --live-in-flight 4" in run.stderr


def test_two_sources_keep_their_own_topics_and_track_ids(video, seg_model, tmp_path):
    out = tmp_path / "both.jsonl"
    run = segstream("run", "--source", video, "--source", video, "--model", seg_model, "--max-frames", 6, "--export", out)
    assert run.returncode == 0, run.stderr
    messages = [json.loads(line) for line in out.read_text().splitlines()]
    by_source = {}
    for m in messages:
        by_source.setdefault(m["source"], []).append(m)
    assert sorted(by_source) == ["vtest", "vtest-2"]
    for msgs in by_source.values():
        assert [m["seq"] for m in msgs] == list(range(6))
        ids = {o["track_id"] for m in msgs for o in m["objects"]}
        assert min(ids) == 1
    run = segstream("run", "--source", video, "--source", video, "--model", seg_model, "--max-frames", 3,
                    "--export", tmp_path / "t.txt", "--save", tmp_path / "v.mp4")
    assert run.returncode == 0, run.stderr
    for sid in ("vtest", "vtest-2"):  # formats that cannot mix sources get one file each
        assert (tmp_path / f"t-{sid}.txt").stat().st_size > 0 and (tmp_path / f"v-{sid}.mp4").stat().st_size > 0
    # same video, same detections: each source tracks independently to the same ids
    assert [o["track_id"] for o in by_source["vtest"][5]["objects"]] == \
        [o["track_id"] for o in by_source["vtest-2"][5]["objects"]]


def test_save_writes_a_playable_video(video, seg_model, pose_model, tmp_path):
    import cv2

    out = tmp_path / "annotated.mp4"
    run = segstream("run", "--source", video, "--model", seg_model, "--model", pose_model, "--max-frames", 8, "--save", out)
    assert run.returncode == 0, run.stderr
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    ok, frame = cap.read()
    assert ok and frame.shape == (576, 768, 3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_flushes_exports(video, seg_model, tmp_path, sig):
    out = tmp_path / "tracks.jsonl"
    proc = subprocess.Popen([*SEGSTREAM, "run", "--source", str(video), "--model", str(seg_model), "--export", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 60
    while (not out.exists() or out.stat().st_size == 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)  # within a second on an idle machine; no test depends on load
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(line)["type"] == "frame" for line in lines)


def _not_onnx(tmp):
    (tmp / "model.onnx").write_text("hello")
    return tmp / "model.onnx"


def _not_video(tmp):
    (tmp / "clip.mp4").write_bytes(os.urandom(2048))
    return tmp / "clip.mp4"


def _full_disk(tmp):
    (tmp / "full.txt").symlink_to("/dev/full")  # every write fails as on a full disk
    return tmp / "full.txt"


def _bad_config(tmp):
    (tmp / "run.yaml").write_text("conff: 0.3\n")
    return tmp / "run.yaml"


@pytest.mark.parametrize(
    "make_args, expected",
    [
        (lambda tmp, v, m: ["--source", tmp / "missing.avi", "--model", m], "no such file"),
        (lambda tmp, v, m: ["--source", _not_video(tmp), "--model", m], "cannot decode video file"),
        (lambda tmp, v, m: ["--source", v, "--model", _not_onnx(tmp)], "not a valid ONNX model"),
        (lambda tmp, v, m: ["--source", v, "--model", tmp / "gone.onnx"], "model file not found"),
        (lambda tmp, v, m: ["--config", _bad_config(tmp), "--source", v, "--model", m], "unknown key 'conff'"),
        (lambda tmp, v, m: ["--source", f"rtsp://127.0.0.1:{free_port()}/cam", "--model", m], "cannot open stream"),
        (lambda tmp, v, m: ["--source", "rtsp://[fe80::1/cam", "--model", m], "malformed source URL rtsp://[fe80::1/cam"),
        (lambda tmp, v, m: ["--source", v, "--model", m, "--publish", "localhost:1"], "bad ZeroMQ endpoint"),
        (lambda tmp, v, m: ["--source", v, "--model", m, "--tracker", "sort", "--cmc"], "needs tracker: byte"),
        (lambda tmp, v, m: ["--source", v, "--model", m, "--publish", ""], "'publish': an endpoint"),
        (lambda tmp, v, m: ["--source", "", "--model", m], "'source': an empty source"),
        (lambda tmp, v, m: ["--source", v, "--model", m, "--save", "/proc/x.mp4"], "cannot write /proc/x.mp4"),
        (lambda tmp, v, m: ["--source", v, "--model", m, "--save", tmp], "it is a folder; give a file name"),
        (lambda tmp, v, m: ["--source", v, "--model", m, "--export", "/proc/x.txt"], "cannot write /proc/x.txt"),
        (lambda tmp, v, m: ["--source", v, "--model", m, "--export", _full_disk(tmp)], "No space left on device"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, video, seg_model, make_args, expected):
    run = segstream("run", *make_args(tmp_path, video, seg_model), timeout=60)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segstream: error:") and expected in lines[0], run.stderr
    assert "Traceback" not in run.stderr


def test_truncated_video_finishes_its_outputs_then_fails(video, seg_model, tmp_path):
    """Half a file: the frames before the damage are processed and exported
    completely, then one line says what happened, with a non-zero exit."""
    cut = tmp_path / "cut.avi"
    cut.write_bytes(video.read_bytes()[:3_000_000])
    out = tmp_path / "out.jsonl"
    run = segstream("run", "--source", cut, "--model", seg_model, "--export", out, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cut.avi gave" in lines[0] and "truncated" in lines[0], run.stderr
    frames = [json.loads(line) for line in out.read_text().splitlines()]  # every line is whole JSON
    assert len(frames) > 100 and [f["seq"] for f in frames] == list(range(len(frames)))


def test_publish_port_in_use_is_one_line_error(video, seg_model):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    from segstream.stream.publisher import Publisher

    with Publisher(endpoint):
        run = segstream("run", "--source", video, "--model", seg_model, "--publish", endpoint, timeout=60)
    assert run.returncode == 2 and "cannot bind" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_unwritable_output_is_one_line_error(video, seg_model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = segstream("run", "--source", video, "--model", seg_model, "--save", blocker / "out.mp4", timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == f"segstream: error: cannot write {blocker / 'out.mp4'}: File exists ({blocker})"


def test_failing_stage_stops_the_run_and_names_the_stage(video, seg_model, tmp_path):
    """The video writer fails inside the publish stage, after inference started:
    the run must end (not hang) with a message naming the stage."""
    run = segstream("run", "--source", video, "--model", seg_model, "--save", tmp_path / "out.nosuchformat", timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("segstream: error: stage 'publish' failed: cannot write video"), run.stderr


def test_debug_shows_the_traceback(tmp_path, seg_model):
    run = segstream("run", "--source", tmp_path / "missing.avi", "--model", seg_model, "--debug", timeout=60)
    assert run.returncode != 0 and "Traceback" in run.stderr


def test_parallel_inference_keeps_frame_order_and_ids(video, seg_model, tmp_path):
    """Several frames in inference at once must give exactly the tracks of one at a time."""
    outs = []
    for workers in (1, 3):
        out = tmp_path / f"w{workers}.jsonl"
        run = segstream("run", "--source", video, "--model", seg_model, "--max-frames", 40, "--threads", 1,
                        "--infer-workers", workers, "--export", out)
        assert run.returncode == 0, run.stderr
        outs.append([json.loads(line) for line in out.read_text().splitlines()])
    assert [m["seq"] for m in outs[1]] == list(range(40))
    assert [m["objects"] for m in outs[0]] == [m["objects"] for m in outs[1]]


def test_demo_without_assets_says_what_to_do(tmp_path):
    run = segstream("demo", env={**os.environ, "SEGSTREAM_ASSETS": str(tmp_path)}, timeout=60)
    assert run.returncode == 2
    assert "demo assets missing" in run.stderr and "yolo export" in run.stderr
    assert "samples/data/vtest.avi" in run.stderr  # where to get the video, too


def test_every_flag_says_what_it_does():
    """`--help` of every command explains each of its flags."""
    from segstream.pipelines.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    silent = [f"{name} {action.option_strings[0]}" for name, sub in commands.items() for action in sub._actions
              if action.option_strings and not action.help]
    assert silent == []


def test_byte_tracker_with_camera_motion_runs_end_to_end(video, seg_model, tmp_path):
    out = tmp_path / "byte.jsonl"
    run = segstream("run", "--source", video, "--model", seg_model, "--max-frames", 10, "--tracker", "byte", "--cmc",
                    "--appearance", "color", "--export", out)
    assert run.returncode == 0, run.stderr
    ids = {o["track_id"] for line in out.read_text().splitlines() for o in json.loads(line)["objects"]}
    assert ids and min(ids) == 1


@pytest.mark.slow
def test_deepsort_with_reid_runs_end_to_end_with_both_models(video, seg_model, pose_model, tmp_path):
    """`--tracker deepsort --appearance reid`: tracked persons carry a mask and keypoints."""
    from conftest import asset

    out = tmp_path / "ds.jsonl"
    run = segstream("run", "--source", video, "--model", seg_model, "--model", pose_model, "--max-frames", 12,
                    "--tracker", "deepsort", "--appearance", "reid",
                    "--reid-model", asset("models/osnet_x0_25_msmt17.onnx"), "--classes", "person", "--export", out)
    assert run.returncode == 0, run.stderr
    objects = [o for line in out.read_text().splitlines() for o in json.loads(line)["objects"]]
    assert objects and {o["track_id"] for o in objects} >= {1}
    assert any(o.get("keypoints") and o.get("mask") for o in objects)


@pytest.mark.slow
def test_curve_publishing_end_to_end(video, seg_model, tmp_path):
    """`segstream keys`, an encrypted run, an allowed and a refused `segstream subscribe`."""
    for name in ("server", "robot", "stranger"):
        assert segstream("keys", tmp_path / name, "--name", name, timeout=30).returncode == 0
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "robot.key").write_bytes((tmp_path / "robot" / "robot.key").read_bytes())
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    server_key = tmp_path / "server" / "server.key"

    def subscriber(name, timeout):
        return subprocess.Popen([*SEGSTREAM, "subscribe", endpoint, "--count", "5", "--timeout", str(timeout),
                                 "--curve-server-key", str(server_key),
                                 "--curve-secret", str(tmp_path / name / f"{name}.key_secret")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)

    robot, stranger = subscriber("robot", 20), subscriber("stranger", 8)
    time.sleep(1.0)
    run = segstream("run", "--source", video, "--model", seg_model, "--max-frames", 60, "--realtime",
                    "--publish", endpoint, "--curve-secret", tmp_path / "server" / "server.key_secret",
                    "--curve-clients", allowed)
    assert run.returncode == 0, run.stderr
    out, _ = robot.communicate(timeout=30)
    assert robot.returncode == 0 and len(out.splitlines()) == 5
    stranger.communicate(timeout=30)
    assert stranger.returncode == 1  # timed out: nothing was ever decrypted for it


@pytest.mark.slow
def test_a_killed_run_leaves_a_playable_video_and_a_valid_export(video, seg_model, tmp_path):
    """SIGKILL, no chance to clean up: the fragmented mp4 plays up to about its
    last second and every line of the line-buffered export is whole JSON."""
    import cv2

    saved, export = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    run = subprocess.Popen([*SEGSTREAM, "run", "--source", video, "--model", seg_model, "--realtime",
                            "--save", saved, "--export", export, "--no-progress"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not export.exists() or len(export.read_text().splitlines()) < 40):
        time.sleep(0.2)
    run.kill()
    run.wait()
    lines = export.read_text().splitlines()
    assert len(lines) >= 40
    seqs = [json.loads(line)["seq"] for line in lines]  # every line whole JSON
    assert seqs == sorted(set(seqs))  # in order; --realtime may skip frames on a busy machine, never repeat one
    cap = cv2.VideoCapture(str(saved))
    playable = 0
    while cap.read()[0]:
        playable += 1
    assert playable >= len(lines) - 25  # all but the last, unfinished fragment (10 frames a second here)


def test_a_second_run_binds_the_same_endpoint_right_away(video, seg_model):
    """A restart right after a run that had a connected subscriber: no
    "address in use" from the closed connection, and the subscriber hears both."""
    from segstream.stream.subscriber import Subscriber

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with Subscriber(endpoint) as sub:
        for _ in range(2):
            run = segstream("run", "--source", video, "--model", seg_model, "--max-frames", 30, "--realtime",
                            "--publish", endpoint)
            assert run.returncode == 0, run.stderr
            eos = None
            while eos is None and (m := sub.recv(timeout=2)) is not None:
                eos = m if m["type"] == "eos" else None
            assert eos is not None


@pytest.mark.parametrize("tracker", ["deepsort", "byte", "sort"])
def test_people_keep_their_ids_when_the_camera_changes_resolution(video, seg_model, tmp_path, tracker):
    """A camera back at 1.5x the resolution (here: an image folder whose
    frames grow half way): the tracks follow the picture, and every frame
    has the ids it has when the resolution stays."""
    ids = {}
    for grow in (False, True):
        folder = tmp_path / f"frames{grow}"
        folder.mkdir()
        with open_source(str(video)) as source:
            for i, frame in zip(range(16), source):
                image = cv2.resize(frame.image, None, fx=1.5, fy=1.5) if grow and i >= 8 else frame.image
                cv2.imwrite(str(folder / f"{i:03d}.png"), image)
        out = tmp_path / f"out{grow}.jsonl"
        run = segstream("run", "--source", folder, "--model", seg_model, "--classes", "person", "--tracker", tracker,
                        "--export", out)
        assert run.returncode == 0, run.stderr
        messages = [json.loads(line) for line in out.read_text().splitlines()]
        assert messages[8]["width"] == (1152 if grow else 768)
        ids[grow] = [sorted(o["track_id"] for o in m["objects"]) for m in messages]
    assert len(ids[False][7]) >= 3
    assert ids[True] == ids[False]
