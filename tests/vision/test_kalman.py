"""The box Kalman filter: constant-velocity prediction, time-consistent noise, size scaling."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.vision.kalman import (
    MotionModel,
    boxes_to_measurements,
    states_to_boxes,
    transition,
)


def truth(t):
    """A box moving at constant velocity (px/s), slowly growing."""
    return np.array([100.0 + 80.0 * t, 200.0 - 30.0 * t, 40.0 + 2.0 * t, 100.0 + 5.0 * t])


def test_exact_constant_velocity_is_learnt_and_extrapolated_over_irregular_steps():
    model = MotionModel()
    rng = np.random.default_rng(3)
    t = 0.0
    mean, cov = model.initiate(truth(t)[None, :])
    for dt in rng.choice([0.067, 0.1, 0.2, 0.35], size=40):
        t += dt
        mean, cov = model.predict(mean, cov, dt)
        mean, cov = model.update(mean, cov, truth(t)[None, :])
    np.testing.assert_allclose(mean[0, 4:], [80.0, -30.0, 2.0, 5.0], rtol=0.02, atol=0.1)
    ahead, _ = model.predict(mean, cov, 1.5)
    np.testing.assert_allclose(ahead[0, :4], truth(t + 1.5), atol=0.5)


def test_prediction_moves_by_velocity_times_dt():
    model = MotionModel()
    mean, cov = model.initiate(np.array([[50.0, 60.0, 20.0, 50.0]]))
    mean[0, 4:6] = [100.0, -40.0]
    predicted, _ = model.predict(mean, cov, 0.25)
    np.testing.assert_allclose(predicted[0, :4], [75.0, 50.0, 20.0, 50.0])
    np.testing.assert_allclose(transition(0.5) @ np.arange(8.0), [2, 3.5, 5, 6.5, 4, 5, 6, 7])


def test_two_half_steps_equal_one_step():
    # The continuous white-noise-acceleration model is exact for any dt: this
    # is what makes the filter indifferent to dropped frames. (Size velocity
    # zero keeps the noise scale fixed during the step.)
    model = MotionModel()
    mean, cov = model.initiate(np.array([[300.0, 200.0, 60.0, 150.0]]))
    mean[0, 4:6] = [50.0, 10.0]
    one = model.predict(mean, cov, 0.4)
    half = model.predict(*model.predict(mean, cov, 0.2), 0.2)
    np.testing.assert_allclose(one[0], half[0])
    np.testing.assert_allclose(one[1], half[1], rtol=1e-12)


def test_uncertainty_scales_with_box_size():
    model = MotionModel()
    small = model.initiate(np.array([[100.0, 100.0, 20.0, 50.0]]))
    large = model.initiate(np.array([[100.0, 100.0, 80.0, 200.0]]))
    p_small = model.predict(*small, 0.3)[1]
    p_large = model.predict(*large, 0.3)[1]
    # Every variance is a (size)² times a constant, and the box is 4× larger.
    np.testing.assert_allclose(p_large, 16.0 * p_small)


def test_filtering_beats_the_raw_detections():
    model = MotionModel()
    rng = np.random.default_rng(11)
    t, dt = 0.0, 0.1
    mean, cov = model.initiate(truth(0)[None, :])
    raw_err, filt_err = [], []
    for _ in range(150):
        t += dt
        true = truth(t)
        z = true + rng.normal(0.0, 0.05, 4) * true[[2, 3, 2, 3]]
        mean, cov = model.predict(mean, cov, dt)
        mean, cov = model.update(mean, cov, z[None, :])
        raw_err.append(z[:2] - true[:2])
        filt_err.append(mean[0, :2] - true[:2])
    raw_rms = np.sqrt(np.mean(np.square(raw_err[30:])))
    filt_rms = np.sqrt(np.mean(np.square(filt_err[30:])))
    assert filt_rms < 0.7 * raw_rms


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0.01, max_value=2.0), min_size=1, max_size=20),
    st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_covariance_stays_symmetric_positive_definite(steps, observe):
    model = MotionModel()
    mean, cov = model.initiate(np.array([[320.0, 240.0, 30.0, 90.0], [10.0, 10.0, 5.0, 12.0]]))
    rng = np.random.default_rng(0)
    for dt, seen in zip(steps, observe, strict=False):
        mean, cov = model.predict(mean, cov, dt)
        if seen:
            z = mean[:, :4] + rng.normal(0.0, 2.0, (2, 4))
            mean, cov = model.update(mean, cov, z)
        np.testing.assert_allclose(cov, cov.transpose(0, 2, 1), atol=1e-9)
        assert np.all(np.linalg.eigvalsh(cov) > 0)
        assert np.all(mean[:, 2:4] >= 1.0)


def test_box_conversions_round_trip():
    boxes = np.array([[10.0, 20.0, 50.0, 120.0], [0.0, 0.0, 1.0, 2.0]])
    z = boxes_to_measurements(boxes)
    np.testing.assert_allclose(z[0], [30.0, 70.0, 40.0, 100.0])
    state = np.zeros((2, 8))
    state[:, :4] = z
    np.testing.assert_allclose(states_to_boxes(state), boxes)


def test_bad_parameters_and_negative_steps_are_refused():
    with pytest.raises(ValueError):
        MotionModel(measurement_std=0.0)
    model = MotionModel()
    mean, cov = model.initiate(np.array([[1.0, 1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError):
        model.predict(mean, cov, -0.1)


def test_the_distance_gate_widens_with_the_time_since_the_last_correction():
    """The same 50 px jump of a new track's box is far after 0.1 s and near after 0.5 s."""
    model = MotionModel()
    mean, cov = model.initiate(np.array([[100.0, 200.0, 40.0, 100.0]]))
    jump = np.array([[150.0, 200.0, 40.0, 100.0]])
    d2 = [model.distance(*model.predict(mean, cov, dt), jump)[0, 0] for dt in (0.1, 0.3, 0.5)]
    assert d2[0] > 9.49 > d2[2]
    assert d2[0] > d2[1] > d2[2]
    assert model.distance(mean, cov, np.zeros((0, 4))).shape == (1, 0)


def test_a_new_tracks_velocity_is_uncertain_by_body_heights_on_both_axes():
    """People walk sideways as fast as towards the camera: a narrow box is as free to
    move across the picture as up or down it."""
    model = MotionModel()
    _, cov = model.initiate(np.array([[100.0, 200.0, 40.0, 100.0]]))
    assert np.sqrt(cov[0, 4, 4]) == pytest.approx(np.sqrt(cov[0, 5, 5])) == pytest.approx(100.0)
