"""Sources deliver every frame of a file in order, the freshest frame of a live
stream, and a one-line error for anything that cannot be opened."""

import functools
import http.server
import itertools
import threading
import time
from fractions import Fraction

import cv2
import numpy as np
import pytest
from conftest import free_port
from segstream.stream.errors import SourceError
from segstream.stream.sources import LiveSource, VideoFileSource, default_source_id, open_source, source_kind


def test_video_file_yields_every_frame_in_order(video):
    with open_source(str(video)) as src:
        assert isinstance(src, VideoFileSource) and not src.is_live
        assert src.frame_count == 795 and src.source_id == "vtest"
        frames = []
        for f in src:
            frames.append((f.seq, f.pts, f.image.shape))
            if len(frames) == 30:
                break
    assert [s for s, _, _ in frames] == list(range(30))
    assert all(shape == (576, 768, 3) for _, _, shape in frames)
    assert frames[10][1] == pytest.approx(1.0)  # 10 fps container: frame 10 at 1 s


def damaged_copy(path, out, size):
    """`path` with `size` bytes of noise written over its middle, as `out`."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + size] = np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


def test_frames_after_damage_keep_their_place_in_the_file(video, tmp_path):
    """500 KB overwritten in the middle of an AVI: FFmpeg skips the frames it
    cannot decode, and the ones after keep their numbers and times, so MOT
    exports stay aligned with the video; the end message names the gap."""
    with open_source(str(damaged_copy(video, tmp_path / "damaged.avi", 500_000))) as src:
        frames = [(f.seq, f.pts) for f in src]
    seqs = [s for s, _ in frames]
    gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
    assert len(gaps) == 1 and seqs[-1] == 794  # the last frame is still frame 794
    first_lost, last_lost = gaps[0][0] + 1, gaps[0][1] - 1
    assert src.lost == last_lost - first_lost + 1 == 795 - len(frames)
    assert all(pts == pytest.approx(seq / 10) for seq, pts in frames)  # 10 fps: real times, gap included
    assert f"{src.lost} of its 795 frames did not decode (damaged: frames {first_lost}-{last_lost})" in src.problem


def _encode_mp4(video, path, frames, times=None):
    """The first `frames` frames of `video` as H.264 in MP4 (B-frames, a keyframe every 25);
    `times`, in tenths of a second, makes the frame rate variable."""
    import av

    with av.open(str(video)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 768, 576, "yuv420p"
        stream.options = {"g": "25"}
        stream.codec_context.time_base = Fraction(1, 10)
        for i, frame in enumerate(itertools.islice(src.decode(video=0), frames)):
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = (times[i] if times else i), Fraction(1, 10)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_frames_after_damage_in_an_mp4_keep_their_place_in_the_file(video, tmp_path):
    """MP4 keeps each frame's time in its index: after damage, frames are numbered
    by their time, the lost ones show as a gap, and numbers never go backwards
    (the decoder hands out a few stale frames after it resumes; they are dropped)."""
    clean = tmp_path / "clean.mp4"
    _encode_mp4(video, clean, 120)
    with open_source(str(damaged_copy(clean, tmp_path / "damaged.mp4", 30_000))) as src:
        frames = [(f.seq, f.pts) for f in src]
    seqs = [s for s, _ in frames]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 119 and src.lost > 0
    assert src.lost == 120 - len(frames)
    assert all(pts == pytest.approx(seq / 10) for seq, pts in frames)
    assert f"{src.lost} of its 120 frames did not decode" in src.problem


def test_a_variable_frame_rate_mp4_is_numbered_by_counting(video, tmp_path):
    """Uneven frame times cannot say a frame's place, so frames are counted; pts stays their real time."""
    times = [0, 1, 3, 4, 7, 8, 9, 12, 13, 14]
    path = tmp_path / "vfr.mp4"
    _encode_mp4(video, path, len(times), times)
    with open_source(str(path)) as src:
        frames = [(f.seq, f.pts) for f in src]
    assert [s for s, _ in frames] == list(range(len(times)))
    assert [pts for _, pts in frames] == pytest.approx([t / 10 for t in times])


def test_realtime_file_drops_frames_when_consumer_is_slow(video):
    with open_source(str(video), realtime=True) as src:
        seqs = []
        for f in src:
            seqs.append(f.seq)
            time.sleep(0.25)  # 4 fps consumer for a 10 fps file
            if len(seqs) == 5:
                break
        assert src.dropped > 0
        assert seqs == sorted(seqs) and seqs[-1] > 4  # gaps, in order


def test_image_folder_and_glob(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((20, 30, 3), i * 50, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    for spec in (str(tmp_path), str(tmp_path / "*.png")):
        with open_source(spec) as src:
            images = [f.image for f in src]
        assert [int(im[0, 0, 0]) for im in images] == [0, 50, 100]


def test_an_unreadable_image_leaves_a_gap_and_the_rest_keep_their_numbers(tmp_path):
    """A frame's number is its place in the sorted list, so exports stay aligned with the files."""
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((20, 30, 3), i * 50, np.uint8))
    (tmp_path / "img1.png").write_bytes(b"broken")
    with open_source(str(tmp_path)) as src:
        frames = list(src)
    assert [f.seq for f in frames] == [0, 2, 3] and src.dropped == 1
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 100, 150]


@pytest.mark.parametrize(
    "spec_fn, match",
    [
        (lambda tmp: str(tmp / "missing.mp4"), "no such file"),
        (lambda tmp: str(tmp), "no images found"),
        (lambda tmp: (tmp / "x.mp4").write_text("hello") and str(tmp / "x.mp4"), "cannot decode video file"),
        (lambda tmp: "ftp://example.invalid/x", "unsupported source URL"),
        (lambda tmp: "rtsp://[fe80::1/stream", "malformed source URL rtsp://\\[fe80::1/stream: Invalid IPv6 URL"),
        (lambda tmp: f"rtsp://127.0.0.1:{free_port()}/stream", "cannot open stream"),
        (lambda tmp: "97", "cannot open webcam 97"),
        (lambda tmp: "/dev/video97", "cannot open webcam /dev/video97: no such camera"),
    ],
)
def test_bad_sources_give_one_line_errors(tmp_path, spec_fn, match):
    with pytest.raises(SourceError, match=match) as info:
        src = open_source(spec_fn(tmp_path), timeout=3)
        list(src)
    assert "\n" not in str(info.value)


def test_cameras_by_device_path_are_live_and_named_after_the_device():
    """/dev/v4l/by-id paths survive reboots and replugging, where indices
    shuffle: they are cameras (freshest frame, reconnects), not files."""
    by_id = "/dev/v4l/by-id/usb-Logitech_HD_Webcam_C270-video-index0"
    assert source_kind(by_id) == source_kind("/dev/video2") == source_kind("0") == "webcam"
    assert default_source_id(by_id) == "usb-Logitech_HD_Webcam_C270-video-index0"
    assert default_source_id("/dev/video2") == "video2" and default_source_id("0") == "cam0"


@pytest.fixture
def http_video(video):
    """A real HTTP server on loopback serving the sample video."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(video.parent))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    server.shutdown()


def test_http_stream_is_live_and_keeps_freshest_frame(http_video):
    with open_source(http_video, timeout=5) as src:
        assert isinstance(src, LiveSource) and src.is_live
        it = iter(src)
        first = next(it)
        time.sleep(0.5)  # the reader keeps decoding; only the newest frame is kept
        second = next(it)
        assert second.seq > first.seq + 1
        assert src.dropped > 0
        assert second.image.shape == (576, 768, 3)


class MjpegCamera(http.server.BaseHTTPRequestHandler):
    """An IP camera's MJPEG stream, as many serve it: JPEG after JPEG in one
    endless multipart/x-mixed-replace HTTP response, 20 a second."""

    frames: list[bytes] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in itertools.count():
            jpeg = self.frames[i % len(self.frames)]
            part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n"
            try:
                self.wfile.write(part)
            except (BrokenPipeError, ConnectionResetError):
                return
            time.sleep(0.05)

    def log_message(self, *args: object) -> None:
        pass


def test_an_mjpeg_ip_camera_over_http_is_read_live(video):
    cap = cv2.VideoCapture(str(video))
    MjpegCamera.frames = [cv2.imencode(".jpg", cap.read()[1])[1].tobytes() for _ in range(10)]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MjpegCamera)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with open_source(f"http://127.0.0.1:{server.server_address[1]}/video.mjpg", timeout=5) as src:
            assert src.is_live
            frames = list(itertools.islice(src, 5))
    finally:
        server.shutdown()
    assert [f.image.shape for f in frames] == [(576, 768, 3)] * 5
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
