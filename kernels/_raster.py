"""Polygon rasterisation (nucleus ROIs) by scanline filling, with an even-odd reference, and
the coarse 2-D histogram of localizations behind the nucleus mask."""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["polygon_mask", "polygon_mask_reference", "grid_counts"]


@numba.njit(cache=True, nogil=True)
def _grid_counts(x, y, x0, y0, cell, ny, nx, counts):  # pragma: no cover - compiled
    top_y, top_x = y0 + ny * cell, x0 + nx * cell
    for k in range(x.shape[0]):
        xv, yv = np.float64(x[k]), np.float64(y[k])
        if not (x0 <= xv <= top_x and y0 <= yv <= top_y):
            continue  # outside the grid (NaN included)
        i = min(int(math.floor((yv - y0) / cell)), ny - 1)  # the top edge belongs to the last cell
        j = min(int(math.floor((xv - x0) / cell)), nx - 1)
        counts[i, j] += 1


def grid_counts(x, y, *, origin, cell: float, shape: tuple[int, int]) -> np.ndarray:
    """Localizations per cell of a (ny, nx) grid of square ``cell``-sized cells from ``origin``
    (x0, y0): ``numpy.histogram2d(y, x, bins=shape, range=...)`` for uniform bins (points on
    the far edge in the last cell, points outside dropped) in one pass, without its sort.

    Parameters
    ----------
    x, y : ndarray
        Points.
    origin : (float, float)
        The grid's corner (x0, y0).
    cell : float
        The cell's side.
    shape : (int, int)
        (ny, nx).

    Returns
    -------
    ndarray, shape (ny, nx)
    """
    ny, nx = shape
    counts = np.zeros((ny, nx), np.int64)
    if len(x):
        _grid_counts(
            np.ascontiguousarray(x),
            np.ascontiguousarray(y),
            float(origin[0]),
            float(origin[1]),
            float(cell),
            int(ny),
            int(nx),
            counts,
        )
    return counts


def polygon_mask(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the pixels whose centres (j + 0.5, i + 0.5) lie inside the
    polygon (even-odd rule). ``poly`` is (K, 2) in pixel units (x, y), closed implicitly.
    Cost O(H·K + H·W) — one scanline per row.

    Parameters
    ----------
    poly : ndarray, shape (K, 2)
        The polygon (x, y; pixel units).
    shape : (int, int)
        (H, W).

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    h, w = shape
    mask = np.zeros((h, w), bool)
    p = np.asarray(poly, np.float64)
    if len(p) < 3 or h == 0 or w == 0:
        return mask
    x1, y1 = p[:, 0], p[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    cy = np.arange(h) + 0.5
    cx = np.arange(w) + 0.5
    for i in range(h):
        yc = cy[i]
        cross = (y1 > yc) != (y2 > yc)
        if not cross.any():
            continue
        xs = np.sort(
            x1[cross] + (yc - y1[cross]) * (x2[cross] - x1[cross]) / (y2[cross] - y1[cross])
        )
        # pixel centres left of an odd number of crossings are inside
        n_left = np.searchsorted(xs, cx, side="right")
        mask[i] = (len(xs) - n_left) % 2 == 1
    return mask


def polygon_mask_reference(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Brute-force even-odd test of every pixel centre against every edge.

    Parameters
    ----------
    poly : ndarray, shape (K, 2)
        The polygon.
    shape : (int, int)
        (H, W).

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    inside = np.zeros((h, w), bool)
    p = np.asarray(poly, np.float64)
    for k in range(len(p)):
        xa, ya = p[k - 1]
        xb, yb = p[k]
        cross = (ya > yy) != (yb > yy)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = xa + (yy - ya) * (xb - xa) / (yb - ya)
        inside ^= cross & (xx < xint)
    return inside
