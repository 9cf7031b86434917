"""Temperature scaling (issue 18): the fitted temperature undoes a known over-confidence, lowers
the calibration error, and a Classifier computes its probabilities at the model's temperature."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.scores import expected_calibration_error, fit_temperature, softmax


def test_the_fitted_temperature_undoes_a_known_overconfidence():
    rng = np.random.default_rng(0)
    z_true = rng.normal(0, 1.5, (4000, 3))
    p_true = softmax(z_true, axis=1)
    y = np.array([rng.choice(3, p=p) for p in p_true])
    t = fit_temperature(3.0 * z_true, y)  # logits three times too confident
    assert t == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(softmax(3.0 * z_true, axis=1), y)
    after = expected_calibration_error(softmax(3.0 * z_true / t, axis=1), y)
    assert after < 0.5 * before and after < 0.03


def test_ece_of_a_perfectly_calibrated_and_a_wrong_model():
    y = np.array([0, 0, 1, 1])
    assert expected_calibration_error(np.array([[1.0, 0], [1, 0], [0, 1], [0, 1]]), y) == 0.0
    assert expected_calibration_error(np.array([[0.0, 1], [0, 1], [1, 0], [1, 0]]), y) == 1.0
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((2, 2)), np.array([0]))


def test_a_classifier_divides_the_logits_by_the_models_temperature():
    from dataclasses import replace

    from ainu_engine.model import read_model_info, temperature_of

    info = read_model_info("examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx")
    fitted = info.metrics["calibration"]["temperature"]  # regenerated with the calibration prior
    assert temperature_of(info) == pytest.approx(fitted) and 0.05 < fitted < 20
    assert temperature_of(replace(info, metrics={})) == 1.0  # none recorded: the plain softmax
    assert temperature_of(replace(info, metrics={"calibration": {"temperature": 2.5}})) == 2.5
    for bad in (0.0, -1.0, float("nan"), "x", 1e9):
        assert temperature_of(replace(info, metrics={"calibration": {"temperature": bad}})) == 1.0


def test_a_separable_set_no_longer_drives_the_temperature_to_its_bound():
    """13 validation items all right with a margin (the case that put T at 0.05 in 4 committed
    runs): without the prior T runs towards 0, with it T stays within a factor ~3 of 1."""
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 6 + [0])
    z = np.zeros((13, 2))
    z[np.arange(13), y] = rng.uniform(1.0, 3.0, 13)
    assert fit_temperature(z, y, prior_sd=None) < 0.1
    t = fit_temperature(z, y)
    assert 0.35 < t < 1.0


def test_much_evidence_overrides_the_prior():
    """2000 items whose logits are 3x too confident: the prior hardly moves T from the ML fit."""
    rng = np.random.default_rng(1)
    z_true = rng.normal(0, 1.5, (2000, 3))
    y = np.array([rng.choice(3, p=softmax(r)) for r in z_true])
    ml = fit_temperature(3.0 * z_true, y, prior_sd=None)
    assert abs(fit_temperature(3.0 * z_true, y) - ml) < 0.05 * ml


def test_too_little_evidence_is_not_calibrated_and_says_why():
    from ainu_engine.scores import calibrate_temperature

    z = np.array([[2.0, 0.0]] * 12)
    assert calibrate_temperature(z[:5], np.zeros(5, int)) == (
        1.0, "too few items to calibrate on (5 < 10): T = 1")  # fmt: skip
    t, why = calibrate_temperature(z, np.zeros(12, int))
    assert t == 1.0 and "one class" in why
    t, why = calibrate_temperature(z, np.array([0, 1] * 6))
    assert why is None and t > 1.0  # half of the confident calls are wrong: soften


def test_brier_score():
    from ainu_engine.scores import brier_score

    y = np.array([0, 1])
    assert brier_score(np.array([[1.0, 0.0], [0.0, 1.0]]), y) == 0.0
    assert brier_score(np.array([[0.0, 1.0], [1.0, 0.0]]), y) == 2.0
