"""Nucleus position statistics: matching and distances exact on hand-built images, intervals
equal to scipy, log-space binomial tails, the chance model recovered by a null control, and the
paper's numbers recomputed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ainu_engine.nucleus_prediction import (
    bbox_iou,
    chance_circular_cell,
    chance_image,
    evaluate_positions,
    find_nuclei,
    image_metrics,
    log10_binomial_tail,
    match_nuclei,
    paper_numbers,
    proportion,
)


def _discs(centres, r=8, size=128):
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size))
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1.0
    return img


def test_distances_and_fractions_exact_on_built_images():
    real = _discs([(30, 30), (30, 90), (90, 60)])
    # shifted by 2 px, 6 px and 25 px (no overlap: unmatched); one small blob (< 50 px) ignored
    gen = _discs([(32, 30), (30, 96), (90, 85)]) + _discs([(120, 120)], r=3)
    r = evaluate_positions([(gen, real)], pixel_um=0.5)
    assert (r["n_real"], r["n_generated"], r["n_matched"]) == (3, 3, 2)
    assert sorted(r["distances_um"]) == pytest.approx([1.0, 3.0])
    assert r["within_4um"]["k"] == 2 and r["within_4um"]["n"] == 3
    assert r["within_1um"]["k"] == 0  # 1.0 µm is not < 1 µm
    assert r["within_4um"]["of_real"]["n"] == 3
    assert r["count_error_percent"] == 0.0


def test_greedy_can_match_one_real_nucleus_twice_hungarian_cannot():
    real = find_nuclei(_discs([(60, 60)], r=12))
    gen = find_nuclei(_discs([(60, 52), (60, 70)], r=8))
    greedy = match_nuclei(gen, real, method="greedy")
    assert [j for _, j, _ in greedy] == [0, 0]
    hung = match_nuclei(gen, real, method="hungarian")
    assert len(hung) == 1 and hung[0][1] == 0
    with pytest.raises(ValueError, match="greedy or hungarian"):
        match_nuclei(gen, real, method="nearest")


def test_bbox_iou():
    assert bbox_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert bbox_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert bbox_iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (5785, 8151)])
def test_clopper_pearson_equals_scipy(k, n):
    p = proportion(k, n)
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert p["ci95"] == pytest.approx([ci.low, ci.high]) and p["fraction"] == k / n
    w = proportion(k, n, method="wald")["ci95"]
    h = 1.96 * math.sqrt(k / n * (1 - k / n) / n)
    assert w == pytest.approx([max(k / n - h, 0), min(k / n + h, 1)], abs=1e-4)


@pytest.mark.parametrize("k, n, p0", [(7, 20, 0.2), (40, 100, 0.5), (1, 50, 0.01), (300, 400, 0.5)])
def test_log_binomial_tail_equals_scipy_where_scipy_can(k, n, p0):
    assert log10_binomial_tail(k, n, p0) == pytest.approx(math.log10(stats.binom.sf(k - 1, n, p0)))


def test_the_papers_numbers_recomputed():
    r = paper_numbers()
    assert r["within_4um"]["ci95"] == pytest.approx([0.6997, 0.7196], abs=1e-4)
    assert r["within_1um"]["ci95"] == pytest.approx([0.2758, 0.2956], abs=1e-4)
    assert 1 / r["chance_image_p0"] == pytest.approx(505.5, abs=0.1)
    assert round(r["log10_p_image_level"]) == -13485  # the paper says about 1e-2170
    assert round(r["log10_p_cell_level_half"]) == -323  # the paper says 6.6e-130
    assert chance_circular_cell(4, 9.657, 4) == pytest.approx(0.5, abs=1e-3)
    assert chance_image(4, 159.41) == pytest.approx(math.pi * 16 / 159.41**2)


def test_a_null_control_recovers_the_chance_rate():
    """Nuclei placed uniformly at random in a circular cell (radius 12 µm, nucleus 4 µm): the
    fraction within 4 µm of the true position is the circular model's p0, inside its CI."""
    rng = np.random.default_rng(0)
    pixel, R, rn = 0.5, 12.0, 4.0
    p0 = chance_circular_cell(4.0, R, rn)  # (4 / 8)^2 = 0.25
    centre = np.array([64.0, 64.0])

    def point():
        while True:
            v = rng.uniform(-1, 1, 2) * (R - rn) / pixel
            if np.hypot(*v) <= (R - rn) / pixel:
                return centre + v

    r_px = int(rn / pixel)
    pairs = [(_discs([point()], r=r_px), _discs([point()], r=r_px)) for _ in range(150)]
    r = evaluate_positions(pairs, pixel_um=pixel, centre="mask")
    lo, hi = r["within_4um"]["ci95"]
    assert r["n_generated"] == 150 and lo <= p0 <= hi
    # matched only where the boxes overlap: every true neighbour within 4 µm overlaps
    assert r["n_matched"] <= 150


def test_image_metrics_equal_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(1)
    a = rng.random((256, 256))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    m = image_metrics(b, a)
    assert m["l1"] == pytest.approx(np.mean(np.abs(a - b)))
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), rel=1e-6)
    assert m["ssim"] == pytest.approx(structural_similarity(a, b, data_range=1.0, win_size=11),
                                      rel=1e-6)  # fmt: skip
