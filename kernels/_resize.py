"""Resizing that keeps physical meaning: area-weighted resampling and padding to a square.

Output pixel k along an axis covers input interval [k·s, (k+1)·s) with s = n_in / n_out;
its value is the mean of the input over that interval (each input pixel weighted by its
overlap). Downsampling conserves the mean density; upsampling repeats values (piecewise
constant). The aspect ratio is kept by resizing both axes by the same factor.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["area_matrix", "resize_area", "resize_area_reference", "fit_longest", "pad_to_square"]


def area_matrix(n_in: int, n_out: int, scale: float | None = None):
    """Sparse (n_out, n_in) matrix whose rows average the overlapped input pixels.

    Output pixel k covers [k·scale, (k+1)·scale) input pixels (default scale n_in/n_out);
    the part beyond the input counts as 0, so one ``scale`` can serve both axes exactly."""
    from scipy import sparse

    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be >= 1, got n_in={n_in}, n_out={n_out}")
    s = n_in / n_out if scale is None else float(scale)
    # output k overlaps inputs floor(k·s) .. ceil((k+1)·s) - 1: at most ceil(s) + 1 of them
    a = np.arange(n_out, dtype=np.float64) * s
    b = np.arange(1, n_out + 1, dtype=np.float64) * s
    i = np.floor(a).astype(np.int64)[:, None] + np.arange(int(math.ceil(s)) + 1)[None, :]
    overlap = np.minimum(b[:, None], i + 1) - np.maximum(a[:, None], i)
    keep = (overlap > 0) & (i < n_in)
    rows = np.broadcast_to(np.arange(n_out)[:, None], i.shape)[keep]
    cols, vals = i[keep], overlap[keep] / s
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_out, n_in))


def resize_area(img: np.ndarray, out_h: int, out_w: int, scale: float | None = None) -> np.ndarray:
    """Area-resample a (C, H, W) image to (C, out_h, out_w); float32 out, float64 inside.

    With ``scale`` (input pixels per output pixel, both axes) the physical pixel size is
    exactly ``scale`` times the input's on both axes."""
    c_n, h, w = img.shape
    ry = area_matrix(h, out_h, scale)
    rx = area_matrix(w, out_w, scale)
    out = np.empty((c_n, out_h, out_w), np.float32)
    for c in range(c_n):
        tmp = ry @ img[c].astype(np.float64)  # (out_h, w)
        out[c] = (rx @ tmp.T).T
    return out


def resize_area_reference(img: np.ndarray, out_h: int, out_w: int, scale: float | None = None) -> np.ndarray:
    """Slow float64 reference: integrate the piecewise-constant input over each output cell."""
    c_n, h, w = img.shape
    sy, sx = (h / out_h, w / out_w) if scale is None else (scale, scale)
    out = np.zeros((c_n, out_h, out_w))
    for k in range(out_h):
        for m in range(out_w):
            y0, y1, x0, x1 = k * sy, (k + 1) * sy, m * sx, (m + 1) * sx
            for i in range(int(np.floor(y0)), min(int(np.ceil(y1)), h)):
                oy = min(y1, i + 1) - max(y0, i)
                for j in range(int(np.floor(x0)), min(int(np.ceil(x1)), w)):
                    ox = min(x1, j + 1) - max(x0, j)
                    if oy > 0 and ox > 0:
                        out[:, k, m] += img[:, i, j] * oy * ox
            out[:, k, m] /= sy * sx
    return out


def fit_longest(h: int, w: int, size: int) -> tuple[int, int, float]:
    """Output (h, w) with the longest side equal to ``size`` and the aspect ratio kept, and
    the scale factor (input pixels per output pixel, the same on both axes; the shorter
    side is rounded up, its last pixel partly beyond the input)."""
    scale = max(h, w) / size
    return (min(size, max(1, int(np.ceil(h / scale - 1e-9)))),
            min(size, max(1, int(np.ceil(w / scale - 1e-9)))), scale)


def pad_to_square(img: np.ndarray, size: int, value: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre a (C, h, w) image in a (C, size, size) canvas filled with ``value``; returns the
    canvas and the (top, left) offset of the image in it."""
    c_n, h, w = img.shape
    if h > size or w > size:
        raise ValueError(f"image {h}x{w} does not fit in {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2
    out = np.full((c_n, size, size), value, np.float32)
    out[:, top:top + h, left:left + w] = img
    return out, (top, left)
