"""Polygon rasterisation (nucleus ROIs) by scanline filling, with an even-odd reference."""

from __future__ import annotations

import numpy as np

__all__ = ["polygon_mask", "polygon_mask_reference"]


def polygon_mask(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the pixels whose centres (j + 0.5, i + 0.5) lie inside the
    polygon (even-odd rule). ``poly`` is (K, 2) in pixel units (x, y), closed implicitly.
    Cost O(H·K + H·W) — one scanline per row."""
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
        xs = np.sort(x1[cross] + (yc - y1[cross]) * (x2[cross] - x1[cross]) / (y2[cross] - y1[cross]))
        # pixel centres left of an odd number of crossings are inside
        n_left = np.searchsorted(xs, cx, side="right")
        mask[i] = (len(xs) - n_left) % 2 == 1
    return mask


def polygon_mask_reference(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Brute-force even-odd test of every pixel centre against every edge."""
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
