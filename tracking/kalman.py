"""A linear Kalman filter batched over all tracks at once.

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
