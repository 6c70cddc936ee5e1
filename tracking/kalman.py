"""Linear Kalman filters batched over all tracks at once.

Stateless in the deep_sort style: the filter holds only the model matrices;
callers own `mean` (N, n) and `cov` (N, n, n) and get new arrays back. Every
operation is one numpy call over all N tracks. The update uses the Joseph form,
as filterpy does, so results match `filterpy.kalman.KalmanFilter` step for step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KalmanFilter:
    """x' = F x (+ process noise Q); z = H x (+ measurement noise R)."""

    F: np.ndarray
    H: np.ndarray
    Q: np.ndarray
    R: np.ndarray

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = mean @ self.F.T
        cov = self.F @ cov @ self.F.T + self.Q
        return mean, cov

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted measurement and its covariance S = H P H' + R."""
        return mean @ self.H.T, self.H @ cov @ self.H.T + self.R

    def update(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct N states with N measurements z (N, m)."""
        pht = cov @ self.H.T
        s = self.H @ pht + self.R
        gain = pht @ np.linalg.inv(s)
        innovation = z - mean @ self.H.T
        mean = mean + (gain @ innovation[:, :, None])[:, :, 0]
        i_kh = np.eye(self.F.shape[0]) - gain @ self.H
        cov = i_kh @ cov @ np.swapaxes(i_kh, 1, 2) + gain @ self.R @ np.swapaxes(gain, 1, 2)
        return mean, cov


# DeepSORT's noise model: standard deviations as fractions of the box height.
STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160
# 0.95 quantile of the chi-square distribution by degrees of freedom (DeepSORT's gating table).
CHI2_95 = {1: 3.8415, 2: 5.9915, 3: 7.8147, 4: 9.4877, 5: 11.070, 6: 12.592, 7: 14.067, 8: 15.507, 9: 16.919}


class HeightScaledKalman:
    """Constant velocity on (x, y, a, h); process and measurement noise scale with h (DeepSORT).

    Stateless like deep_sort's filter: callers own `mean` (N, 8) and `cov` (N, 8, 8).
    `std_velocity` is the per-frame velocity noise as a fraction of the height.
    DeepSORT's 1/160 suits 30 fps video; at the 7 to 14 fps of many cameras
    people change speed more between frames (BYTE uses 1/80, see tracking.byte).
    """

    def __init__(self, std_position: float = STD_POSITION, std_velocity: float = STD_VELOCITY) -> None:
        self.std_position = std_position
        self.std_velocity = std_velocity
        self.F = np.eye(8)
        self.F[:4, 4:] = np.eye(4)
        self.H = np.eye(4, 8)
        # Standard deviations are h * scale + floor per state (aspect ratio: a fixed floor);
        # the vectors are built once here, not per frame.
        p, v = std_position, std_velocity
        self._scale = np.array([p, p, 0.0, p, v, v, 0.0, v])
        self._floor = np.array([0.0, 0.0, 1e-2, 0.0, 0.0, 0.0, 1e-5, 0.0])
        self._initial = np.array([2.0] * 4 + [10.0] * 4)  # initiate: 2x position, 10x velocity noise
        self._r_scale = np.array([p, p, 0.0, p])
        self._r_floor = np.array([0.0, 0.0, 1e-1, 0.0])
        self._diag4, self._diag8 = np.arange(4), np.arange(8)

    # The state's layout: how boxes become measurements and states become boxes,
    # and how states follow a resized or moving picture. Trackers go through these,
    # so they work with either filter.
    @staticmethod
    def measure(xyxy: np.ndarray) -> np.ndarray:
        return xyxy_to_xyah(xyxy)

    @staticmethod
    def boxes(mean: np.ndarray) -> np.ndarray:
        return xyah_to_xyxy(mean)

    @staticmethod
    def rescale(mean: np.ndarray, cov: np.ndarray, sx: float, sy: float) -> tuple[np.ndarray, np.ndarray]:
        return scale_states(mean, cov, xyah_factors(sx, sy))

    @staticmethod
    def warp(mean: np.ndarray, cov: np.ndarray, warp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return warp_states(mean, cov, warp)

    def _var(self, h: np.ndarray) -> np.ndarray:
        """(N, 8) process noise variances for states of height h (one broadcast)."""
        return (h[:, None] * self._scale + self._floor) ** 2

    # The noise model: variances from each state's size. A subclass with another
    # state layout (`WidthHeightKalman`) changes these and the layout methods only.
    def _initial_var(self, mean: np.ndarray) -> np.ndarray:
        return ((mean[:, 3:4] * self._scale) * self._initial + self._floor) ** 2

    def _process_var(self, mean: np.ndarray) -> np.ndarray:
        return self._var(mean[:, 3])  # from the height before the step, as DeepSORT

    def _measurement_var(self, mean: np.ndarray) -> np.ndarray:
        return (mean[:, 3:4] * self._r_scale + self._r_floor) ** 2

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from measurements z (N, 4) = (x, y, a, h); velocities unknown."""
        mean = np.concatenate([z, np.zeros((len(z), 4))], axis=1)
        return mean, _diag(self._initial_var(mean))

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # F = [[I, I], [0, I]]: F x and F P F' by block additions instead of 8x8 products.
        noise = self._process_var(mean)
        mean = mean.copy()
        mean[:, :4] += mean[:, 4:]
        cov = cov.copy()
        cov[:, :4, :] += cov[:, 4:, :]
        cov[:, :, :4] += cov[:, :, 4:]
        cov[:, self._diag8, self._diag8] += noise
        return mean, cov

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted measurement (N, 4) and its covariance S = H P H' + R (N, 4, 4)."""
        s = cov[:, :4, :4].copy()
        s[:, self._diag4, self._diag4] += self._measurement_var(mean)
        return mean[:, :4], s

    def update(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, s = self.project(mean, cov)
        # K = P H' S^-1 with H = [I 0]; S and P are symmetric, so K' = S^-1 P[:4, :].
        # S is diagonal almost always (`diagonal_or_none`): then S^-1 is a division.
        s_diag = diagonal_or_none(s)
        if s_diag is not None:
            gain_t = cov[:, :4, :] / s_diag[:, :, None]
        else:
            gain_t = np.linalg.solve(s, cov[:, :4, :])
        mean = mean + np.einsum("nij,ni->nj", gain_t, z - mean[:, :4])
        cov = cov - np.swapaxes(gain_t, 1, 2) @ cov[:, :4, :]  # P - K S K' = P - K H P
        return mean, cov

    def gating_distance(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray, position_only: bool = False) -> np.ndarray:
        """(T, D) squared Mahalanobis distance between T tracks' predicted
        measurements and D measurements; compare with `CHI2_95[4]` (or `[2]`
        with `position_only`) to gate out impossible pairs."""
        proj, s = self.project(mean, cov)
        dims = 2 if position_only else 4
        proj, s, z = proj[:, :dims], s[:, :dims, :dims], z[:, :dims]
        diff = z[None, :, :] - proj[:, None, :]  # (T, D, d)
        # A diagonal S (`diagonal_or_none`) makes the distance a sum of squares over
        # its diagonal. Otherwise one inverse
        # per track, not one solve per track-detection pair (100 tracks and 100
        # detections: 10,000 batched 4x4 solves took 1.7 ms a frame).
        s_diag = diagonal_or_none(s)
        if s_diag is not None:
            return (diff**2 / s_diag[:, None, :]).sum(-1)
        return np.einsum("tdi,tij,tdj->td", diff, np.linalg.inv(s), diff)


class WidthHeightKalman(HeightScaledKalman):
    """Constant velocity on (x, y, w, h), BoT-SORT's state: noise on x and w
    scales with the width, on y and h with the height (DeepSORT scales all by
    the height and keeps the aspect ratio nearly fixed), so a box that widens
    (arms out, a turn, partial occlusion) is followed instead of resisted.
    Same interface as `HeightScaledKalman`."""

    _SIZE = [2, 3, 2, 3, 2, 3, 2, 3]  # the state's reference size per component: w or h

    def __init__(self, std_position: float = STD_POSITION, std_velocity: float = STD_VELOCITY) -> None:
        super().__init__(std_position, std_velocity)
        p, v = std_position, std_velocity
        self._scale = np.array([p, p, p, p, v, v, v, v])
        self._r_scale = np.array([p, p, p, p])

    @staticmethod
    def measure(xyxy: np.ndarray) -> np.ndarray:
        return xyxy_to_xywh(xyxy)

    @staticmethod
    def boxes(mean: np.ndarray) -> np.ndarray:
        return xywh_to_xyxy(mean)

    @staticmethod
    def rescale(mean: np.ndarray, cov: np.ndarray, sx: float, sy: float) -> tuple[np.ndarray, np.ndarray]:
        return scale_states(mean, cov, np.array([sx, sy, sx, sy] * 2))

    @staticmethod
    def warp(mean: np.ndarray, cov: np.ndarray, warp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return warp_states(mean, cov, warp, sizes=(2, 3))

    def _sizes(self, mean: np.ndarray) -> np.ndarray:
        return mean[:, self._SIZE]

    def _initial_var(self, mean: np.ndarray) -> np.ndarray:
        return (self._sizes(mean) * self._scale * self._initial) ** 2

    def _process_var(self, mean: np.ndarray) -> np.ndarray:
        return (self._sizes(mean) * self._scale) ** 2

    def _measurement_var(self, mean: np.ndarray) -> np.ndarray:
        return (self._sizes(mean)[:, :4] * self._r_scale) ** 2


def diagonal_or_none(s: np.ndarray) -> np.ndarray | None:
    """The (N, d) diagonals of N (d, d) innovation covariances when every one is
    diagonal (each coordinate with its own velocity: always, unless a camera
    warp rotated x into y), else None. Then S^-1 is a division, several times
    cheaper than a batched solve or inverse."""
    d = np.arange(s.shape[-1])
    s_diag = s[:, d, d]
    return s_diag if np.count_nonzero(s) == np.count_nonzero(s_diag) else None


def warp_states(mean: np.ndarray, cov: np.ndarray, warp: np.ndarray, sizes: tuple[int, ...] = (3,)
                ) -> tuple[np.ndarray, np.ndarray]:
    """Apply a similarity warp to (x, y, a, h) states: positions and velocities
    rotate/scale with the camera, heights scale, aspect ratios stay. `sizes`:
    the components that scale ((2, 3) for (x, y, w, h) states)."""
    rot = warp[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(rot))))
    block = np.eye(4)
    block[:2, :2] = rot
    for k in sizes:
        block[k, k] = scale
    T = np.kron(np.eye(2), block)
    mean = mean @ T.T
    mean[:, :2] += warp[:, 2]
    return mean, T @ cov @ T.T


def scale_states(mean: np.ndarray, cov: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States after a change of units: state k times `factors[k]` (a resized
    picture: positions, sizes and their velocities scale, see `xyah_factors`)."""
    return mean * factors, cov * factors[:, None] * factors[None, :]


def xyah_factors(sx: float, sy: float) -> np.ndarray:
    """`scale_states` factors of (x, y, a, h) states and their velocities for a
    picture resized by sx horizontally and sy vertically."""
    return np.array([sx, sy, sx / sy, sy] * 2)


def _diag(values: np.ndarray) -> np.ndarray:
    out = np.zeros(values.shape + values.shape[-1:])
    idx = np.arange(values.shape[-1])
    out[:, idx, idx] = values
    return out


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """Corners -> (centre x, centre y, width / height, height)."""
    out = np.empty((len(xyxy), 4))
    wh = xyxy[:, 2:4] - xyxy[:, 0:2]
    out[:, :2] = xyxy[:, 0:2] + wh / 2
    out[:, 2] = wh[:, 0] / np.maximum(wh[:, 1], 1e-6)
    out[:, 3] = wh[:, 1]
    return out


def xyxy_to_xywh(xyxy: np.ndarray) -> np.ndarray:
    """Corners -> (centre x, centre y, width, height)."""
    out = np.empty((len(xyxy), 4))
    wh = xyxy[:, 2:4] - xyxy[:, 0:2]
    out[:, :2] = xyxy[:, 0:2] + wh / 2
    out[:, 2:] = wh
    return out


def xywh_to_xyxy(x: np.ndarray) -> np.ndarray:
    """(centre x, centre y, width, height) -> corners."""
    out = np.empty((len(x), 4))
    out[:, :2] = x[:, :2] - x[:, 2:4] / 2
    out[:, 2:] = x[:, :2] + x[:, 2:4] / 2
    return out


def xyah_to_xyxy(x: np.ndarray) -> np.ndarray:
    """(centre x, centre y, width / height, height) -> corners."""
    out = np.empty((len(x), 4))
    half_w, half_h = x[:, 2] * x[:, 3] / 2, x[:, 3] / 2
    out[:, 0], out[:, 1] = x[:, 0] - half_w, x[:, 1] - half_h
    out[:, 2], out[:, 3] = x[:, 0] + half_w, x[:, 1] + half_h
    return out
