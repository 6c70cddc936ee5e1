"""The batched Kalman filter gives, track for track, exactly what filterpy's
KalmanFilter gives for the same model, predict and update steps alike."""

import numpy as np
from filterpy.kalman import KalmanFilter as FilterpyKF
from segstream.tracking.sort import _initial_cov, _sort_filter


def test_batched_filter_matches_filterpy_step_for_step():
    rng = np.random.default_rng(1)
    kf = _sort_filter()
    n = 6
    mean = np.zeros((n, 7))
    mean[:, :4] = rng.uniform([50, 50, 500, 0.3], [700, 500, 5000, 0.6], (n, 4))
    cov = np.broadcast_to(_initial_cov(), (n, 7, 7)).copy()
    refs = []
    for i in range(n):
        # The model as the original sort.py's KalmanBoxTracker writes it (Bewley et al., 2016), not
        # copied from the code under test: constant velocity in (u, v, s), r constant.
        f = FilterpyKF(dim_x=7, dim_z=4)
        f.F = np.array([[1, 0, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0, 0],
                        [0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1]], float)
        f.H = np.array([[1, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0]], float)
        f.R[2:, 2:] *= 10.0
        f.P[4:, 4:] *= 1000.0
        f.P *= 10.0
        f.Q[-1, -1] *= 0.01
        f.Q[4:, 4:] *= 0.01
        f.x = mean[i].reshape(7, 1).copy()
        refs.append(f)
    for step in range(40):
        mean, cov = kf.predict(mean, cov)
        for f in refs:
            f.predict()
        observed = rng.random(n) < 0.7  # some tracks miss a detection
        z = mean[:, :4] + rng.normal(0, [3, 3, 50, 0.01], (n, 4))
        mean[observed], cov[observed] = kf.update(mean[observed], cov[observed], z[observed])
        for i in np.flatnonzero(observed):
            refs[i].update(z[i].reshape(4, 1))
        for i, f in enumerate(refs):
            np.testing.assert_allclose(mean[i], f.x[:, 0], rtol=1e-9, atol=1e-9, err_msg=f"step {step} track {i}")
            np.testing.assert_allclose(cov[i], f.P, rtol=1e-9, atol=1e-9)


def test_projection_covariance():
    kf = _sort_filter()
    mean = np.zeros((1, 7))
    cov = _initial_cov()[None]
    _, s = kf.project(mean, cov)
    np.testing.assert_allclose(s[0], kf.H @ cov[0] @ kf.H.T + kf.R)
