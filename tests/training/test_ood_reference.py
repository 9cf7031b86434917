"""The out-of-distribution reference training fits (ainu_engine.training.ood): thresholds at the
stated false-alarm rate on held-out nuclei, far features and far statistics flagged."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.ood import OodReference, StatisticsReference
from ainu_engine.training.ood import fit_reference, threshold


def _stats(rng, n, precision=14.0):
    return [
        {"median_precision_nm": float(rng.lognormal(np.log(precision), 0.05)),
         "density_per_um2": float(rng.lognormal(np.log(150), 0.2))}
        for _ in range(n)
    ]  # fmt: skip


def test_thresholds_hold_the_false_alarm_rate_and_far_nuclei_are_flagged():
    rng = np.random.default_rng(0)
    d, k = 64, 2
    centres = rng.normal(0, 3, (k, d))
    y = rng.integers(0, k, 400)
    feats = centres[y] + rng.normal(0, 1, (400, d))
    stats = _stats(rng, 400)
    inputs = StatisticsReference.from_statistics(stats[:300]).to_dict()
    ref = fit_reference(feats[:300], y[:300], feats[300:340], np.arange(40), inputs, stats[:300],
                        stats[300:340], alpha=0.05)  # fmt: skip
    back = OodReference.from_training_stats({"ood": ref.to_dict(), "input_reference": inputs})
    assert back.thresholds == ref.thresholds and back.features.dim == d
    new = [back.score(s, f[None]) for s, f in zip(stats[340:], feats[340:], strict=True)]
    assert np.mean([r.unfamiliar for r in new]) <= 0.1  # 5 %, 60 nuclei: a margin for chance
    far = back.score(stats[340], feats[340][None] + 8.0)  # features moved off the training ones
    assert far.unfamiliar and far.component in ("features", "residual")
    assert "input statistic furthest out" in far.reason
    sharp = back.score({**stats[341], "median_precision_nm": 2.8}, feats[341][None])
    assert sharp.unfamiliar and sharp.component == "input" and sharp.statistic == (
        "median_precision_nm")  # fmt: skip


def test_a_threshold_extrapolates_beyond_few_held_out_values():
    v = np.random.default_rng(1).lognormal(0, 0.5, 12)
    t = threshold(v, 0.983)
    assert t >= np.quantile(v, 0.983) and t > v.max() * 0.9
    with pytest.raises(ValueError, match="alpha"):
        fit_reference(None, np.zeros(0), None, None, None, [], [], alpha=0.7)
