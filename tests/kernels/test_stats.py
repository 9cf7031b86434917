"""The sample statistics' kernels against SciPy's KD-tree and the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ainu_engine.kernels import nearest_other_distances, repeat_hits, repeat_hits_reference


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nearest_other_distances_are_the_kd_trees(seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 5000, (250, 2))
    xy[10] = xy[11]  # a duplicate: distance 0
    d, _ = cKDTree(xy).query(xy, k=2)
    got = nearest_other_distances(xy[:, 0].copy(), xy[:, 1].copy())
    np.testing.assert_allclose(got, d[:, 1], rtol=1e-12, atol=0)
    assert got[10] == got[11] == 0.0
    assert np.isinf(nearest_other_distances(np.zeros(1), np.zeros(1))[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_repeat_hits_are_the_references(seed, dtype):
    rng = np.random.default_rng(seed)
    n = 4000
    frame = np.sort(rng.integers(0, 400, n)).astype(np.int64)
    x = rng.uniform(0, 3000, n).astype(dtype)
    y = rng.uniform(0, 3000, n).astype(dtype)
    # blinks: some localizations seen again 1-4 frames later a few nm away
    src = rng.choice(n - 50, 300, replace=False)
    for i in src:
        j = np.searchsorted(frame, frame[i] + rng.integers(1, 5))
        if j < n:
            x[j], y[j] = x[i] + 5, y[i] - 3
    q = np.linspace(0, n - 1, 600).astype(np.int64)
    want = repeat_hits_reference(frame, x, y, q, 3, 30.0)
    assert 0 < want.sum() < len(q)
    np.testing.assert_array_equal(repeat_hits(frame, x, y, q, 3, 30.0), want)
    # the same frame never counts: every localization alone in frame 0 and a twin in frame 0
    same = repeat_hits(np.zeros(2, np.int64), np.zeros(2), np.zeros(2), np.arange(2), 3, 30.0)
    assert not same.any()
