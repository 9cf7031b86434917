"""Patches against a brute-force reference; HC/EC exact on hand-built nuclei; the tests equal
scipy's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ainu_engine.scenmed import (
    HC_RULE,
    compare_ratios,
    extract_patches,
    hc_ec_ratio,
    nucleus_mask,
    patch_offsets,
)


def _brute(crop, size, stride, occ, last):
    out = []
    for r in range(0, crop.shape[0] - size + (1 if last else 0), stride):
        for c in range(0, crop.shape[1] - size + (1 if last else 0), stride):
            p = crop[r : r + size, c : c + size]
            if (p > 0).mean() >= occ and (p > 3700).mean() < 0.25:
                out.append((r, c))
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("size, stride, occ", [(32, 16, 0.85), (32, 16, 0.8), (11, 3, 0.85)])
def test_patches_equal_a_brute_force_reference(seed, size, stride, occ):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:128, :128]
    crop = ((yy - 64) / rng.uniform(30, 60)) ** 2 + ((xx - 64) / rng.uniform(30, 60)) ** 2 < 1
    crop = crop * rng.uniform(500, 4095, (128, 128))
    for last in (True, False):
        p, off = extract_patches(crop, size=size, stride=stride, min_occupied=occ,
                                 code_layout=not last)  # fmt: skip
        assert [tuple(o) for o in off] == _brute(crop, size, stride, occ, last)
        for patch, (r, c) in zip(p, off, strict=True):
            np.testing.assert_array_equal(
                patch, crop[r : r + size, c : c + size].astype(np.float32)
            )


def test_offsets_paper_and_code():
    assert patch_offsets(128, 32, 16) == [0, 16, 32, 48, 64, 80, 96]
    assert patch_offsets(128, 32, 16, code_layout=True) == [0, 16, 32, 48, 64, 80]
    assert patch_offsets(20, 32, 16) == []


def test_hc_ec_exact_on_a_built_nucleus():
    crop = np.zeros((20, 20))
    crop[5:15, 5:15] = 100.0  # 100 pixels of euchromatin
    crop[8:10, 8:10] = 400.0  # 4 pixels of heterochromatin
    mask = crop > 0
    vals = crop[mask]
    t = vals.mean() + vals.std()
    r = hc_ec_ratio(crop, mask)
    assert r["threshold"] == pytest.approx(t)
    assert r["hc_ec"] == pytest.approx(4 * 400 / (96 * 100))
    assert r["hc_fraction_px"] == pytest.approx(0.04)
    assert r["rule"] == HC_RULE and "assumed" in HC_RULE
    # alpha moves the threshold: with alpha = -10 every pixel is heterochromatin
    assert hc_ec_ratio(crop, mask, alpha=-10)["hc_ec"] == float("inf")
    # the Otsu mask finds the nucleus of a crop
    np.testing.assert_array_equal(nucleus_mask(crop), mask)
    assert np.isnan(hc_ec_ratio(crop, np.zeros_like(mask))["hc_ec"])


def test_comparison_equals_scipy():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(0.2, 0.02, 40), rng.normal(0.23, 0.03, 35), rng.normal(0.2, 0.02, 1)
    rows = compare_ratios({"BJ": a, "MCF10A": b, "one": c})
    ab = rows[0]
    assert (ab["a"], ab["b"], ab["n_a"], ab["n_b"]) == ("BJ", "MCF10A", 40, 35)
    assert ab["student_p"] == pytest.approx(stats.ttest_ind(a, b).pvalue)
    assert ab["welch_p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    u = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert ab["mann_whitney_u"] == u.statistic and ab["mann_whitney_p"] == pytest.approx(u.pvalue)
    assert "student_p" not in rows[1]  # one value: no test
