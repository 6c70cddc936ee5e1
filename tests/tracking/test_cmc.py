"""Camera motion compensation recovers a known camera shift, and a tracker
given the warp keeps an object's id through a sudden pan that would otherwise
break the association."""

import cv2
import numpy as np
from segstream.stream.types import Detections
from segstream.tracking.byte import ByteTracker
from segstream.tracking.cmc import CameraMotion, estimate_warp


def textured(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (h // 8, w // 8), dtype=np.uint8)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)


def shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.array([[1.0, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)


def test_estimates_a_synthetic_shift():
    prev = textured()
    warp = estimate_warp(prev, shift(prev, 7, -4))
    np.testing.assert_allclose(warp[:, :2], np.eye(2), atol=0.01)
    np.testing.assert_allclose(warp[:, 2], [7, -4], atol=0.3)


def test_ignores_motion_inside_detections():
    prev = textured(seed=1)
    curr = prev.copy()
    curr[60:180, 100:160] = textured(seed=2)[60:180, 100:160]  # a "person" changes, the camera does not
    warp = estimate_warp(prev, curr, exclude=np.array([[95, 55, 165, 185]]))
    np.testing.assert_allclose(warp, np.eye(2, 3), atol=0.05)


def test_full_resolution_warp_from_downscaled_frames():
    big = cv2.cvtColor(textured(480, 640), cv2.COLOR_GRAY2BGR)
    cmc = CameraMotion(downscale=4)
    assert np.allclose(cmc.update(big), np.eye(2, 3))
    warp = cmc.update(shift(big, 24, 12))
    np.testing.assert_allclose(warp[:, 2], [24, 12], atol=1.5)


def test_a_frame_of_another_size_restarts_the_estimate_instead_of_failing():
    """A camera back from a reconnect at another resolution: identity for that frame, then warps again."""
    cmc = CameraMotion(downscale=4)
    cmc.update(cv2.cvtColor(textured(480, 640), cv2.COLOR_GRAY2BGR))
    smaller = cv2.cvtColor(textured(240, 320), cv2.COLOR_GRAY2BGR)
    assert np.allclose(cmc.update(smaller), np.eye(2, 3))
    np.testing.assert_allclose(cmc.update(shift(smaller, 16, 8))[:, 2], [16, 8], atol=1.5)


def test_tracker_follows_a_camera_pan_with_the_warp():
    def run(use_warp: bool) -> list[int]:
        tracker = ByteTracker()
        box = np.array([[100.0, 100, 130, 180]])
        ids = []
        for t in range(6):
            pan = 60.0 if t == 4 else 0.0  # the camera jumps: the object moves 60 px in the image
            box = box + [pan, 0, pan, 0]
            warp = np.array([[1.0, 0, pan], [0, 1, 0]]) if use_warp else None
            ids.append(tracker.update(Detections(box, [0.9], [0]), warp=warp).track_ids.tolist())
        return ids

    assert run(True)[-1] == [1]
    assert run(False)[-1] != [1]  # without compensation the pan breaks the track
