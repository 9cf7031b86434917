"""Area resampling and padding keep the mean and the physical scale; polygon rasterisation
equals the brute-force even-odd test."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.kernels._raster import grid_counts, polygon_mask, polygon_mask_reference
from ainu_engine.kernels._resize import (
    area_matrix,
    fit_longest,
    pad_to_square,
    resize_area,
    resize_area_reference,
)


@pytest.mark.parametrize(
    "shape,out",
    [((2, 37, 53), (12, 17)), ((1, 20, 20), (64, 64)), ((1, 9, 31), (3, 10)), ((1, 5, 5), (5, 5))],
)
def test_resize_matches_reference_and_keeps_mean(shape, out):
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    got = resize_area(img, *out)
    np.testing.assert_allclose(got, resize_area_reference(img, *out), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.mean(axis=(1, 2)), img.mean(axis=(1, 2)), rtol=1e-5)


@pytest.mark.parametrize(
    "shape,scale_to",
    [((2, 1128, 1127), 512), ((1, 300, 1000), 512), ((1, 20, 20), 64), ((3, 9, 31), 10)],
)
def test_resize_kernel_equals_the_sparse_product(shape, scale_to):
    """The Numba kernel applies area_matrix's weights in scipy's order: the same float32 bits,
    for float32, float64 and bool (mask) input."""
    rng = np.random.default_rng(1)
    h2, w2, scale = fit_longest(shape[1], shape[2], scale_to)
    ry, rx = area_matrix(shape[1], h2, scale), area_matrix(shape[2], w2, scale)
    for img in (rng.random(shape).astype(np.float32), rng.random(shape), rng.random(shape) > 0.5):
        want = np.stack([(rx @ (ry @ c.astype(np.float64)).T).T for c in img]).astype(np.float32)
        np.testing.assert_array_equal(resize_area(img, h2, w2, scale), want)


def test_resize_reads_views_and_rejects_empty_sizes():
    img = np.random.default_rng(2).random((2, 40, 60)).astype(np.float32)
    view = img[:, ::2, 1:]  # not contiguous
    np.testing.assert_array_equal(resize_area(view, 5, 7), resize_area(view.copy(), 5, 7))
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        resize_area(img, 0, 7)


def test_fit_longest_keeps_aspect_and_one_scale():
    h2, w2, scale = fit_longest(300, 1000, 512)
    assert w2 == 512 and scale == pytest.approx(1000 / 512)
    assert h2 == int(np.ceil(300 / scale))
    img = np.ones((1, 300, 1000), np.float32)
    out = resize_area(img, h2, w2, scale)
    # full output pixels average to 1; the last row reaches beyond the input (zeros there)
    np.testing.assert_allclose(out[0, :-1], 1.0, rtol=1e-6)
    assert 0 < out[0, -1].mean() <= 1.0


def test_pad_to_square_centres():
    img = np.ones((2, 3, 5), np.float32)
    sq, (top, left) = pad_to_square(img, 9, -1.0)
    assert sq.shape == (2, 9, 9) and (top, left) == (3, 2)
    assert (sq == 1).sum() == 2 * 15 and (sq == -1).sum() == 2 * (81 - 15)
    with pytest.raises(ValueError):
        pad_to_square(img, 4, 0.0)


@pytest.mark.parametrize("seed", range(4))
def test_polygon_mask_matches_even_odd_reference(seed):
    rng = np.random.default_rng(seed)
    k = 12
    th = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = rng.uniform(5, 18, k)
    poly = np.stack([20 + r * np.cos(th), 17 + r * np.sin(th)], axis=1)
    poly[0] = [20.5, 17.5]  # a vertex on a pixel centre
    np.testing.assert_array_equal(
        polygon_mask(poly, (35, 41)), polygon_mask_reference(poly, (35, 41))
    )


def _area_matrix_loop(n_in, n_out, scale=None):
    """The per-pixel loop the vectorised area_matrix replaced (dense)."""
    s = n_in / n_out if scale is None else float(scale)
    m = np.zeros((n_out, n_in))
    for k in range(n_out):
        a, b = k * s, (k + 1) * s
        for i in range(int(np.floor(a)), min(int(np.ceil(b)), n_in)):
            overlap = min(b, i + 1) - max(a, i)
            if overlap > 0:
                m[k, i] += overlap / s
    return m


@pytest.mark.parametrize(
    "n_in,n_out,scale",
    [
        (1128, 512, None),
        (1127, 511, 1128 / 512),
        (7, 3, None),
        (3, 8, None),
        (5, 5, None),
        (1, 4, None),
        (10, 3, 4.0),
    ],
)
def test_area_matrix_equals_the_loop(n_in, n_out, scale):
    np.testing.assert_array_equal(
        area_matrix(n_in, n_out, scale).toarray(), _area_matrix_loop(n_in, n_out, scale)
    )


def test_grid_counts_equals_histogram2d_on_edges_and_outside_points():
    rng = np.random.default_rng(0)
    x0, y0, cell, ny, nx = 100.0, -50.0, 250.0, 7, 9
    x = rng.uniform(x0 - 300, x0 + nx * cell + 300, 5000)
    y = rng.uniform(y0 - 300, y0 + ny * cell + 300, 5000)
    # points exactly on cell borders, on the far edges (counted in the last cell) and NaN
    x[:40] = x0 + cell * rng.integers(0, nx + 1, 40)
    y[40:80] = y0 + cell * rng.integers(0, ny + 1, 40)
    x[80], y[80] = x0 + nx * cell, y0 + ny * cell
    x[81] = np.nan
    ref, _, _ = np.histogram2d(
        y, x, bins=(ny, nx), range=((y0, y0 + ny * cell), (x0, x0 + nx * cell))
    )
    got = grid_counts(x, y, origin=(x0, y0), cell=cell, shape=(ny, nx))
    np.testing.assert_array_equal(got, ref)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)  # what Localizations hold
    ref32, _, _ = np.histogram2d(
        y32.astype(np.float64),
        x32.astype(np.float64),
        bins=(ny, nx),
        range=((y0, y0 + ny * cell), (x0, x0 + nx * cell)),
    )
    np.testing.assert_array_equal(
        grid_counts(x32, y32, origin=(x0, y0), cell=cell, shape=(ny, nx)), ref32
    )
    assert grid_counts(np.zeros(0), np.zeros(0), origin=(0, 0), cell=1.0, shape=(2, 3)).sum() == 0
