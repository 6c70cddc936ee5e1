"""The annotated video (`--save`) keeps its first frame's size and shows all
of every later frame, even when a camera comes back from a reconnect at
another resolution."""

from __future__ import annotations

import av
import numpy as np

from pipelines.sinks import VideoSink
from stream.types import Detections, Frame


def half_white(h: int, w: int, seq: int) -> Frame:
    """Black left half, white right half: cropping would lose the white."""
    image = np.zeros((h, w, 3), np.uint8)
    image[:, w // 2:] = 255
    return Frame(image, "cam", seq, 0.0, 0.0)


def test_frames_of_another_size_are_scaled_whole_into_the_video(tmp_path):
    path = tmp_path / "out.mp4"
    sink = VideoSink(str(path), 25, ["person"])
    none = Detections.concat([])
    sizes = [(241, 321)] * 3 + [(480, 960)] * 3 + [(120, 160)] * 3  # odd first size: the video is 320x240
    for seq, (h, w) in enumerate(sizes):
        sink.write(half_white(h, w, seq), none, {})
    sink.close()
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(decoded) == len(sizes) and all(d.shape == (240, 320, 3) for d in decoded)
    for d in decoded:  # every frame shows its white right half, scaled, not cut away
        assert d[:, :150].mean() < 30 and d[:, 170:].mean() > 225
