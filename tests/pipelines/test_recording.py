"""`--record run.mcap` leaves a file Foxglove opens (frames, boxes and ids over
them, the published messages), that segstream runs again with another tracker,
that `segstream replay` republishes, and that a killed run leaves readable."""

import json
import os
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest
from conftest import REPO, free_port
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.ImageAnnotations_pb2 import ImageAnnotations
from mcap.reader import NonSeekingReader, make_reader
from segstream.stream.recorded import McapSource, RecordingError, expand_recordings, recorded_sources
from test_cli import SEGSTREAM, segstream

FRAMES = 40


@pytest.fixture(scope="module")
def recording(video, seg_model, tmp_path_factory):
    """A run of FRAMES frames of the sample video, recorded, with its JSON-lines export."""
    folder = tmp_path_factory.mktemp("recording")
    run = segstream("run", "--source", video, "--model", seg_model, "--classes", "person", "--max-frames", FRAMES,
                    "--record", folder / "run.mcap", "--export", folder / "run.jsonl", "--no-progress")
    assert run.returncode == 0, run.stderr
    return folder / "run.mcap", folder / "run.jsonl"


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_recording_holds_images_annotations_and_the_published_messages(recording):
    """Read with the `mcap` library alone, as Foxglove would: each frame as a JPEG
    (foxglove.CompressedImage) at its capture time, its boxes and ids
    (foxglove.ImageAnnotations), and the messages the run published."""
    path, export = recording
    kinds = {"foxglove.CompressedImage": CompressedImage, "foxglove.ImageAnnotations": ImageAnnotations}
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        schemas = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        decoded = {topic: [] for topic in schemas}
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            kind = kinds.get(schema.name)
            decoded[channel.topic].append((message.log_time, kind.FromString(message.data) if kind else
                                           json.loads(message.data)))
    assert schemas == {"/vtest/image": "foxglove.CompressedImage", "/vtest/annotations": "foxglove.ImageAnnotations",
                       "/segstream/messages": "segstream.message"}
    images, notes = decoded["/vtest/image"], decoded["/vtest/annotations"]
    assert len(images) == len(notes) == FRAMES
    picture = cv2.imdecode(np.frombuffer(images[0][1].data, np.uint8), cv2.IMREAD_COLOR)
    assert images[0][1].format == "jpeg" and picture.shape == (576, 768, 3)
    frames = [m for m in jsonl(export) if m["type"] == "frame"]
    for (t, image), (_, note), message in zip(images, notes, frames):
        assert t == image.timestamp.ToNanoseconds() == int(message["t_capture"] * 1e9)
        assert [x.text for x in note.texts] == [f"#{o['track_id']} person" for o in message["objects"]]
        assert len(note.points) == len(message["objects"])  # a box outline each (no poses here)
    recorded = [m for _, m in decoded["/segstream/messages"]]
    assert [m for m in recorded if m["type"] == "frame"] == frames  # exactly what was published
    assert recorded[-1]["type"] == "eos" and recorded[-1]["frames"] == FRAMES
    eos_time = decoded["/segstream/messages"][-1][0]
    assert eos_time == int(recorded[-1]["t_publish"] * 1e9) >= images[-1][0]  # logged when it happened


def test_a_recording_runs_again_with_another_tracker(recording, seg_model, tmp_path):
    """The same recorded frames, tracked by SORT and by the default: the same
    frames and people found, different identities (SORT switches more)."""
    path, _ = recording
    exports = {}
    for tracker in ("sort", "auto"):
        out = tmp_path / f"{tracker}.jsonl"
        run = segstream("run", "--source", path, "--model", seg_model, "--classes", "person", "--tracker", tracker,
                        "--export", out, "--no-progress")
        assert run.returncode == 0, run.stderr
        exports[tracker] = [m for m in jsonl(out) if m["type"] == "frame"]
    sort, default = exports["sort"], exports["auto"]
    assert [m["seq"] for m in sort] == [m["seq"] for m in default] == list(range(FRAMES))
    assert all(m["source"] == "vtest" for m in sort)
    ids = {name: [[o["track_id"] for o in m["objects"]] for m in ms] for name, ms in exports.items()}
    assert ids["sort"] != ids["auto"]


def test_a_rerun_of_a_recording_is_scored_against_ground_truth(recording, seg_model, tmp_path, mot_root):
    """The sample video is PETS09-S2L1: its recording, run again, is scored by `segstream eval --tracks`."""
    path, _ = recording
    run = segstream("run", "--source", path, "--model", seg_model, "--classes", "person",
                    "--export", tmp_path / "PETS09-S2L1.txt", "--no-progress")
    assert run.returncode == 0, run.stderr
    scored = segstream("eval", "--gt", mot_root, "--tracks", tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert "results in" in scored.stdout and "1 sequence(s)" in scored.stdout
    row = next(line for line in scored.stdout.splitlines() if line.startswith("PETS09-S2L1"))
    assert 0 < float(row.split()[1]) < 100  # a HOTA over the recorded frames (the rest of the sequence unseen)


def test_replay_republishes_every_recorded_message(recording):
    path, export = recording
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sub = subprocess.Popen([*SEGSTREAM, "subscribe", endpoint, "--timeout", "20"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=REPO)
    replay = segstream("replay", path, "--publish", endpoint, "--fast", "--wait", 60)
    assert replay.returncode == 0, replay.stderr
    assert f"replayed {FRAMES + 1} messages" in replay.stdout  # the frames and the end of stream
    out, _ = sub.communicate(timeout=60)
    received = [json.loads(line) for line in out.splitlines()]
    assert [m for m in received if m["type"] == "frame"] == [m for m in jsonl(export) if m["type"] == "frame"]


def test_a_killed_recording_reads_up_to_its_last_chunk(video, seg_model, tmp_path):
    """SIGKILL in the middle of a run: no index is written, yet the file reads
    frame by frame up to its last complete chunk, and runs again."""
    path = tmp_path / "killed.mcap"
    proc = subprocess.Popen([*SEGSTREAM, "run", "--source", video, "--model", seg_model, "--record", path,
                             "--no-progress"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while (not path.exists() or path.stat().st_size < 3 << 20) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with open(path, "rb") as f:
        count = 0
        with pytest.raises(Exception):  # the raw reader stops where the file was cut
            for _ in NonSeekingReader(f).iter_messages(log_time_order=False):
                count += 1
    assert count > 0
    with McapSource(str(path)) as src:
        seqs = [frame.seq for frame in src]
    assert 0 < len(seqs) < 795 and seqs == list(range(len(seqs)))


def test_several_recorded_sources_each_run_again(recording, tmp_path):
    path, _ = recording
    assert recorded_sources(str(path)) == ["vtest"]
    assert expand_recordings([str(path), "other.mp4"]) == [str(path), "other.mp4"]
    with pytest.raises(RecordingError, match=r"holds vtest: choose one as .*run.mcap#vtest"):
        McapSource(f"{path}#cam9")
    not_mcap = tmp_path / "bad.mcap"
    not_mcap.write_bytes(b"\x89MCAP0\r\n" + b"\0" * 40)
    with pytest.raises(RecordingError, match="bad.mcap"):
        recorded_sources(str(not_mcap))


def test_a_segmented_recording_is_cut_into_readable_parts(video, seg_model, tmp_path):
    """--segment-minutes cuts --record as it cuts --save: whole MCAP files, one after another."""
    run = segstream("run", "--source", video, "--model", seg_model, "--classes", "person", "--max-frames", 70,
                    "--record", tmp_path / "cut.mcap", "--segment-minutes", 0.05, "--no-progress")  # 3 s parts
    assert run.returncode == 0, run.stderr
    parts = sorted(tmp_path.glob("cut-part*.mcap"))
    assert [p.name for p in parts] == ["cut-part0000.mcap", "cut-part0001.mcap", "cut-part0002.mcap"]
    seqs = []
    for part in parts:
        with McapSource(str(part)) as src:
            seqs += [frame.seq for frame in src]
    assert seqs == list(range(70))  # 30 + 30 + 10 frames of the 10 fps video


def test_a_chunk_that_claims_gigabytes_is_refused_before_it_is_decompressed(tmp_path):
    """Bounded cost: a recording is outside input; a 1 KB file cannot make a reader allocate a terabyte."""
    import struct

    from mcap.writer import CompressionType, Writer
    from segstream.stream.recorded import iter_recording

    path = tmp_path / "bomb.mcap"
    with open(path, "wb") as f:
        writer = Writer(f, chunk_size=100, compression=CompressionType.ZSTD)
        writer.start(profile="", library="test")
        writer.add_metadata("segstream", {"sources": "cam0"})
        channel = writer.register_channel("/segstream/messages", "json",
                                          writer.register_schema("segstream.message", "jsonschema", b"{}"))
        for i in range(5):
            writer.add_message(channel, log_time=i, data=b'{"type": "frame", "schema": 1}', publish_time=i)
        writer.finish()
    data = bytearray(path.read_bytes())
    at = 8  # after the magic: records of opcode (1 byte), length (8), body
    while data[at] != 0x06:  # the first chunk
        at += 9 + struct.unpack_from("<Q", data, at + 1)[0]
    struct.pack_into("<Q", data, at + 9 + 16, 1 << 40)  # its uncompressed size, after start and end times
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="declares 1099511627776 bytes, over the"):
        list(iter_recording(str(path)))


def test_sigterm_finishes_the_recording_with_its_index(video, seg_model, tmp_path):
    """SIGTERM stops the run as for --save: frames in flight are finished and the
    file gets its index (a seekable MCAP), not just its chunks."""
    path = tmp_path / "stopped.mcap"
    proc = subprocess.Popen([*SEGSTREAM, "run", "--source", video, "--model", seg_model, "--record", path,
                             "--realtime", "--no-progress"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while (not path.exists() or path.stat().st_size < 2 << 20) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()  # read from the index at the end of the file
    images = sum(count for channel, count in summary.statistics.channel_message_counts.items()
                 if summary.channels[channel].topic == "/vtest/image")
    with McapSource(str(path)) as src:
        assert len(list(src)) == images > 0
