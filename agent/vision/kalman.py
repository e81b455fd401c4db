"""Constant-velocity Kalman filter for boxes, batched over tracks, for any time step.

State per track (8 numbers, pixels and pixels per second):

    [cx, cy, w, h, vcx, vcy, vw, vh]

box centre, width and height and their rates of change. The measurement is
the detected box as (cx, cy, w, h). Width and height are filtered separately
rather than as aspect ratio and height (as SORT/ByteTrack do), following
BoT-SORT: a person's width changes with every stride, and an aspect-ratio
state makes the estimated width lag behind.

Why this noise model
--------------------
Frames arrive at an irregular rate (5–15 FPS, and frames are dropped when the
detector falls behind), so the filter works in seconds, not in frames. The
process noise is the *continuous white-noise acceleration* model: each of the
four coordinates is a position–velocity pair driven by white acceleration
noise of spectral density q, whose exact discretisation over a step dt is

    Q = q · [[dt³/3, dt²/2],
             [dt²/2, dt   ]]

This is consistent for any dt (two steps of dt/2 add up to one step of dt),
which the per-frame constants of SORT/ByteTrack are not. √q is the standard
deviation of the velocity change over one second.

Box size scales everything: a person 40 px tall near the horizon moves and
jitters fewer pixels than one 300 px tall near the camera. So √q, the
measurement noise and the initial uncertainty are given as fractions of the
box size, as ByteTrack does with its ``std_weight_*`` constants: detector noise
and size changes in width for cx and w, height for cy and h; the centre's
motion (its velocity and √q) in box *heights* on both axes, because people walk
about a body height a second in any direction, which is two to three box widths
sideways: scaled by the width, a new track's gate was too narrow for anyone
walking across the picture at a low frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

DIM = 4
"""Number of measured coordinates: cx, cy, w, h."""
MIN_SIZE_PX = 1.0
"""Width and height never fall below this, so the noise scale stays positive."""

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class MotionModel:
    """Noise levels of the box filter; all are fractions of the box size (module docstring)."""

    measurement_std: float = 0.05
    """Detector noise on each box coordinate (ByteTrack: 1/20 of the box size)."""
    centre_accel_std: float = 0.5
    """√q of the centre: std of its velocity change over 1 s, in box heights per s.
    A walker changes speed or heading by ~0.5 m/s in a second, a third of a body
    height (~1.7 m); half a height leaves room for stops and sudden turns."""
    size_accel_std: float = 0.1
    """√q of width and height: boxes grow or shrink slowly (walking towards the camera)."""
    init_velocity_std: float = 1.0
    """Uncertainty of the centre velocity of a new track, box heights per s (≈ brisk walk)."""
    init_size_velocity_std: float = 0.1
    """Uncertainty of the width/height rate of a new track, box sizes per s."""

    def __post_init__(self) -> None:
        values = (
            self.measurement_std,
            self.centre_accel_std,
            self.size_accel_std,
            self.init_velocity_std,
            self.init_size_velocity_std,
        )
        if min(values) <= 0:
            raise ValueError("all motion-model standard deviations must be > 0")

    def initiate(self, z: Array) -> tuple[Array, Array]:
        """New tracks from measurements (N, 4): position known, velocity unknown."""
        z = np.asarray(z, dtype=np.float64).reshape(-1, DIM)
        n = z.shape[0]
        mean = np.zeros((n, 2 * DIM))
        mean[:, :DIM] = z
        s = _scale(mean)
        std = np.concatenate(
            [
                2.0 * self.measurement_std * s,
                self.init_velocity_std * s[:, 3:4].repeat(2, axis=1),
                self.init_size_velocity_std * s[:, 2:],
            ],
            axis=1,
        )
        cov = np.zeros((n, 2 * DIM, 2 * DIM))
        idx = np.arange(2 * DIM)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(self, mean: Array, cov: Array, dt: float) -> tuple[Array, Array]:
        """Propagate (N, 8) means and (N, 8, 8) covariances by ``dt`` seconds."""
        if dt < 0:
            raise ValueError("cannot predict backwards in time")
        s = _scale(mean)
        q = np.concatenate(
            [(self.centre_accel_std * s[:, 3:4].repeat(2, axis=1)) ** 2,
             (self.size_accel_std * s[:, 2:]) ** 2],
            axis=1,
        )
        f = transition(dt)
        new_mean = mean @ f.T
        new_cov = f @ cov @ f.T
        i = np.arange(DIM)
        new_cov[:, i, i] += q * dt**3 / 3.0
        new_cov[:, i, i + DIM] += q * dt**2 / 2.0
        new_cov[:, i + DIM, i] += q * dt**2 / 2.0
        new_cov[:, i + DIM, i + DIM] += q * dt
        new_mean[:, 2:DIM] = np.maximum(new_mean[:, 2:DIM], MIN_SIZE_PX)
        return new_mean, new_cov

    def update(self, mean: Array, cov: Array, z: Array) -> tuple[Array, Array]:
        """Correct (N, 8) predictions with matched measurements (N, 4)."""
        r = (self.measurement_std * _scale(mean)) ** 2
        s_mat = cov[:, :DIM, :DIM].copy()
        i = np.arange(DIM)
        s_mat[:, i, i] += r
        # K = P Hᵀ S⁻¹; with H = [I 0] and S symmetric, Kᵀ = S⁻¹ (H P).
        gain = np.linalg.solve(s_mat, cov[:, :DIM, :]).transpose(0, 2, 1)
        innovation = np.asarray(z, dtype=np.float64).reshape(-1, DIM) - mean[:, :DIM]
        new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        new_cov = cov - gain @ s_mat @ gain.transpose(0, 2, 1)
        new_cov = (new_cov + new_cov.transpose(0, 2, 1)) / 2.0
        new_mean[:, 2:DIM] = np.maximum(new_mean[:, 2:DIM], MIN_SIZE_PX)
        return new_mean, new_cov

    def distance(self, mean: Array, cov: Array, z: Array) -> Array:
        """Squared Mahalanobis distances (N, M) of measurements (M, 4) from predictions (N, 8).

        The innovation covariance grows with the time since a track was last
        corrected, so the same threshold admits a longer jump after a longer gap:
        a gate in units of the filter's own uncertainty.
        """
        z = np.asarray(z, dtype=np.float64).reshape(-1, DIM)
        if mean.shape[0] == 0 or z.shape[0] == 0:
            return np.zeros((mean.shape[0], z.shape[0]))
        s_mat = cov[:, :DIM, :DIM].copy()
        i = np.arange(DIM)
        s_mat[:, i, i] += (self.measurement_std * _scale(mean)) ** 2
        innovation = z[None, :, :] - mean[:, None, :DIM]  # (N, M, 4)
        return np.asarray(np.einsum("nmi,nij,nmj->nm", innovation, np.linalg.inv(s_mat),
                                    innovation))


def transition(dt: float) -> Array:
    """The constant-velocity transition matrix F(dt): position += velocity·dt."""
    f = np.eye(2 * DIM)
    f[np.arange(DIM), np.arange(DIM) + DIM] = dt
    return f


def boxes_to_measurements(boxes: Array) -> Array:
    """(x1, y1, x2, y2) rows → (cx, cy, w, h) rows."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] + w / 2, b[:, 1] + h / 2, w, h], axis=1)


def states_to_boxes(mean: Array) -> Array:
    """(N, 8) states → (x1, y1, x2, y2) rows."""
    cx, cy, w, h = mean[:, 0], mean[:, 1], mean[:, 2], mean[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _scale(mean: Array) -> Array:
    """Per-coordinate size scale [w, h, w, h] of each state, for the noise levels."""
    w = np.maximum(mean[:, 2], MIN_SIZE_PX)
    h = np.maximum(mean[:, 3], MIN_SIZE_PX)
    return np.stack([w, h, w, h], axis=1)
