"""A video file's frames keep their decoded planes: users still get exactly
OpenCV's pixels from `frame.image`, while the network input and the boxes'
pixels are made from the planes, close to converting first."""

import av
import cv2
import numpy as np
import pytest
from segstream.stream.sources import open_source
from segstream.stream.types import Frame


def first_frames(path, n):
    with open_source(str(path)) as src:
        out = []
        for frame in src:
            out.append(frame)
            if len(out) == n:
                return out
    return out


def test_frame_image_is_the_pixels_opencv_decodes(video):
    """Users who read `frame.image` (drawing, callbacks, exports) see what they saw before planes."""
    cap = cv2.VideoCapture(str(video))
    for frame in first_frames(video, 5):
        assert frame.yuv is not None and frame._image is None  # nothing converted until asked
        ok, want = cap.read()
        assert ok and np.array_equal(frame.image, want)
    cap.release()


def test_network_input_from_planes_is_close_to_converting_first(video):
    frame = first_frames(video, 1)[0]
    want = cv2.resize(frame.image, (320, 240), interpolation=cv2.INTER_LINEAR).astype(int)
    got = frame.resized(320, 240).astype(int)
    diff = np.abs(got - want)
    assert got.shape == (240, 320, 3)
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 5


def test_box_pixels_from_planes_are_close_to_the_frames(video):
    frame = first_frames(video, 1)[0]
    for x1, y1, x2, y2 in [(100, 50, 180, 260), (101, 51, 180, 259), (0, 0, 7, 5), (700, 500, 768, 576)]:
        got = frame.crop(x1, y1, x2, y2).astype(int)
        want = frame.image[y1:y2, x1:x2].astype(int)
        assert got.shape == want.shape
        assert np.abs(got - want).mean() < 1.5


def test_every_other_box_pixel_from_planes_is_close_to_the_frames(video):
    """`crop(..., step=2)` (colour features of large boxes) samples the frame's own pixels, at odd and even corners."""
    frame = first_frames(video, 1)[0]
    for x1, y1, x2, y2 in [(100, 50, 180, 260), (101, 51, 181, 259), (700, 500, 768, 576)]:
        got = frame.crop(x1, y1, x2, y2, step=2).astype(int)
        want = frame.image[y1:y2:2, x1:x2:2].astype(int)
        assert got.shape == want.shape
        assert np.abs(got - want).mean() < 1.5
    image = frame.image
    bgr = Frame(image, "cam", 0, 0.0, 0.0)
    assert np.array_equal(bgr.crop(3, 5, 40, 50, step=2), image[5:50:2, 3:40:2])
    with pytest.raises(ValueError, match="crop step must be 1 or 2"):
        frame.crop(0, 0, 10, 10, step=3)


def test_results_do_not_depend_on_whether_the_whole_frame_was_converted(video):
    """A stage that reads `image` first (drawing, camera motion) does not change what the model sees."""
    a, b = first_frames(video, 1)[0], first_frames(video, 1)[0]
    b.image  # noqa: B018 - converts and caches the whole frame
    assert np.array_equal(a.resized(320, 240), b.resized(320, 240))
    assert np.array_equal(a.crop(10, 20, 90, 200), b.crop(10, 20, 90, 200))


def test_frames_from_images_are_resized_and_cropped_as_before():
    """Cameras and image folders give BGR frames: the old, exact operations."""
    image = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    frame = Frame(image, "cam", 0, 0.0, 0.0)
    assert np.array_equal(frame.resized(64, 48), cv2.resize(image, (64, 48), interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(frame.crop(3, 5, 40, 50), image[5:50, 3:40])


def test_odd_sized_video_keeps_every_edge_pixel(tmp_path):
    """4:2:0 chroma covers 2x2 blocks: an odd width or height has a half block at the edge."""
    path = tmp_path / "odd.mkv"
    rng = np.random.default_rng(2)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=10)  # lossless, and takes odd sizes (x264 does not)
        stream.width, stream.height, stream.pix_fmt = 161, 121, "yuv420p"
        for _ in range(3):
            image = cv2.GaussianBlur(rng.integers(0, 256, (121, 161, 3), dtype=np.uint8), (31, 31), 8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    frame = first_frames(path, 1)[0]
    assert (frame.height, frame.width) == (121, 161) and frame.yuv is not None
    corner = frame.crop(150, 110, 161, 121)
    assert corner.shape == (11, 11, 3)
    assert np.abs(corner.astype(int) - frame.image[110:, 150:].astype(int)).mean() < 2.0
    assert frame.resized(81, 61).shape == (61, 81, 3)


def test_a_frame_needs_pixels():
    with pytest.raises(ValueError, match="needs an image"):
        Frame(None, "x", 0, 0.0, 0.0)
