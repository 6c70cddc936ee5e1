"""The annotated video (`--save`) keeps its first frame's size and shows all
of every later frame, even when a camera comes back from a reconnect at
another resolution, and plays at the speed of the scene however many frames
the pipeline kept, as H.264 that browsers play."""

from __future__ import annotations

import av
import numpy as np
import pytest
from segstream.pipelines.sinks import JsonlSink, SegmentedSink, VideoSink
from segstream.stream.types import Detections, Frame


def half_white(h: int, w: int, seq: int, t_mono: float = 0.0) -> Frame:
    """Black left half, white right half: cropping would lose the white."""
    image = np.zeros((h, w, 3), np.uint8)
    image[:, w // 2:] = 255
    return Frame(image, "cam", seq, 0.0, t_mono)


def frame_times(path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.time) for f in container.decode(video=0)]


def test_frames_of_another_size_are_scaled_whole_into_the_video(tmp_path):
    path = tmp_path / "out.mp4"
    sink = VideoSink(str(path), 25, ["person"])
    none = Detections.concat([])
    sizes = [(241, 321)] * 3 + [(480, 960)] * 3 + [(120, 160)] * 3  # odd first size: the video is 320x240
    for seq, (h, w) in enumerate(sizes):
        sink.write(half_white(h, w, seq), none, {})
    sink.close()
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"  # what browsers and phones play
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(decoded) == len(sizes) and all(d.shape == (240, 320, 3) for d in decoded)
    for d in decoded:  # every frame shows its white right half, scaled, not cut away
        assert d[:, :150].mean() < 30 and d[:, 170:].mean() > 225


def test_a_live_video_lasts_as_long_as_the_camera_ran(tmp_path):
    """A 30 fps camera processed at about 15 FPS, with a 2-second outage: each
    frame is shown at its capture time, not squeezed to the camera's rate."""
    path = tmp_path / "live.mp4"
    sink = VideoSink(str(path), 30, ["person"], live=True)
    captured = [100.0 + i / 15 for i in range(10)] + [103.0 + i / 15 for i in range(5)]
    for seq, t in enumerate(captured):
        sink.write(half_white(120, 160, 2 * seq, t_mono=t), Detections.concat([]), {})
    sink.close()
    assert frame_times(path) == pytest.approx([t - captured[0] for t in captured], abs=1e-3)


def test_a_file_video_keeps_the_file_timing_across_skipped_frames(tmp_path):
    """`--realtime` skips frames when behind: the saved video leaves their time
    empty instead of playing faster."""
    path = tmp_path / "file.mp4"
    sink = VideoSink(str(path), 25, ["person"])
    kept = [0, 1, 2, 5, 6, 9, 10]
    for seq in kept:
        sink.write(half_white(120, 160, seq, t_mono=seq * 0.001), Detections.concat([]), {})
    sink.close()
    assert frame_times(path) == pytest.approx([seq / 25 for seq in kept], abs=1e-3)


def test_a_live_output_is_cut_on_the_clock_into_parts_named_by_utc_start(tmp_path):
    """A camera recorded with 10-minute parts: a part per wall-clock period,
    named by its UTC start, each a whole video; a camera down for a whole
    period leaves no empty file."""
    sink = SegmentedSink(str(tmp_path / "cam.mp4"), 600, True, lambda p: VideoSink(p, 30, ["person"], live=True))
    start = 1795651200.0  # 2026-11-26T00:00:00Z
    times = [start + 590 + i for i in range(15)] + [start + 1900, start + 1901]  # then down from 00:10:05 to 00:31:40
    for seq, t in enumerate(times):
        frame = half_white(120, 160, seq, t_mono=t)
        frame.t_capture = t
        sink.write(frame, Detections.concat([]), {})
    sink.close()
    parts = sorted(p.name for p in tmp_path.iterdir())
    assert parts == ["cam-20261126T000000Z.mp4", "cam-20261126T001000Z.mp4", "cam-20261126T003000Z.mp4"]
    assert [len(frame_times(tmp_path / p)) for p in parts] == [10, 5, 2]


def test_a_file_output_is_cut_on_the_file_time_into_numbered_parts(tmp_path):
    sink = SegmentedSink(str(tmp_path / "tracks.jsonl"), 2.0, False, JsonlSink)
    for seq in range(50):  # 5 s of a 10 fps file
        frame = half_white(8, 8, seq)
        frame.pts = seq / 10
        sink.write(frame, Detections.concat([]), {"seq": seq})
    sink.close()
    lines = {p.name: p.read_text().splitlines() for p in sorted(tmp_path.iterdir())}
    assert {name: len(rows) for name, rows in lines.items()} == {
        "tracks-part0000.jsonl": 20, "tracks-part0001.jsonl": 20, "tracks-part0002.jsonl": 10}


def test_published_masks_stay_inside_their_box_and_the_filtered_box_comes_too(video, seg_model, tmp_path):
    """A subscriber that draws `box` and `mask` together sees them agree: `box`
    is the detector's (the mask's) box, the tracker's estimate is `box_filtered`."""
    import json

    import segstream
    from segstream.stream.rle import rle_to_mask

    out = tmp_path / "out.jsonl"
    segstream.run(str(video), str(seg_model), max_frames=40, export=str(out), classes=["person"])
    objects = [o for line in out.read_text().splitlines() for o in json.loads(line).get("objects", [])]
    assert len(objects) > 100
    apart = 0
    for obj in objects:
        x1, y1, x2, y2 = obj["box"]
        ys, xs = np.nonzero(rle_to_mask(obj["mask"]))
        if len(xs):  # pixel (i, j) is inside when x1 <= i < x2 and y1 <= j < y2, up to the 0.01 rounding
            assert xs.min() >= x1 - 0.01 and xs.max() < x2 + 0.01
            assert ys.min() >= y1 - 0.01 and ys.max() < y2 + 0.01
        assert len(obj["box_filtered"]) == 4
        apart += obj["box_filtered"] != obj["box"]
    assert apart > 0  # the filtered estimate is its own
