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
    assert temperature_of(info) == 1.0  # trained before calibration: the plain softmax
    assert temperature_of(replace(info, metrics={"calibration": {"temperature": 2.5}})) == 2.5
    for bad in (0.0, -1.0, float("nan"), "x", 1e9):
        assert temperature_of(replace(info, metrics={"calibration": {"temperature": bad}})) == 1.0
