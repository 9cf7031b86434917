"""Resizing that keeps physical meaning: area-weighted resampling and padding to a square.

Output pixel k along an axis covers input interval [k·s, (k+1)·s) with s = n_in / n_out;
its value is the mean of the input over that interval (each input pixel weighted by its
overlap). Downsampling conserves the mean density; upsampling repeats values (piecewise
constant). The aspect ratio is kept by resizing both axes by the same factor.

:func:`area_matrix` writes the weights as a sparse matrix (the definition, and what the tests
compare against); :func:`resize_area` applies the same weights, rows then columns in float64,
with a Numba kernel parallel over output rows.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._threads import threads_for

__all__ = [
    "area_matrix",
    "area_weights",
    "resize_area",
    "resize_area_reference",
    "fit_longest",
    "pad_to_square",
]


def area_matrix(n_in: int, n_out: int, scale: float | None = None):
    """Sparse (n_out, n_in) matrix whose rows average the overlapped input pixels.

    Output pixel k covers [k·scale, (k+1)·scale) input pixels (default scale n_in/n_out);
    the part beyond the input counts as 0, so one ``scale`` can serve both axes exactly.

    Parameters
    ----------
    n_in, n_out : int
        Input and output lengths.
    scale : float, optional
        Input pixels per output pixel (default n_in / n_out).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_out, n_in)
    """
    from scipy import sparse

    first, count, weights = area_weights(n_in, n_out, scale)
    offset = np.arange(weights.shape[1])[None, :]
    keep = offset < count[:, None]
    rows = np.broadcast_to(np.arange(n_out)[:, None], keep.shape)[keep]
    return sparse.csr_matrix(
        (weights[keep], (rows, (first[:, None] + offset)[keep])), shape=(n_out, n_in)
    )


def area_weights(n_in: int, n_out: int, scale: float | None = None):
    """The rows of :func:`area_matrix` as (first input index, count, weights (n_out, K)).

    Output k averages inputs ``first[k] .. first[k] + count[k] - 1`` with weights
    ``weights[k, :count[k]]`` (the overlapped inputs are contiguous).

    Parameters
    ----------
    n_in, n_out : int
        Input and output lengths.
    scale : float, optional
        Input pixels per output pixel.

    Returns
    -------
    (ndarray, ndarray, ndarray)
        First input index, count, weights (n_out, K).
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be >= 1, got n_in={n_in}, n_out={n_out}")
    s = n_in / n_out if scale is None else float(scale)
    # output k overlaps inputs floor(k·s) .. ceil((k+1)·s) - 1: at most ceil(s) + 1 of them
    a = np.arange(n_out, dtype=np.float64) * s
    b = np.arange(1, n_out + 1, dtype=np.float64) * s
    first = np.floor(a).astype(np.int64)
    i = first[:, None] + np.arange(int(math.ceil(s)) + 1)[None, :]
    overlap = np.minimum(b[:, None], i + 1) - np.maximum(a[:, None], i)
    keep = (overlap > 0) & (i < n_in)  # a prefix of each row: the overlap shrinks along it
    return first, keep.sum(axis=1).astype(np.int64), np.where(keep, overlap / s, 0.0)


#: Input pixels (all channels) from which the resize runs on all Numba threads (one below: see
#: :mod:`ainu_engine.kernels._threads`); a few ms of one thread's work.
PARALLEL_FROM_PIXELS = 4 * 2048 * 2048


@numba.njit(parallel=True, cache=True, nogil=True)
def _resize_rows_cols(img, y_first, y_count, y_w, x_first, x_count, x_w, out):
    """out[c, k, q] = sum_j x_w[q] * (sum_i y_w[k] * img[c, i, j]), in float64, one task per
    output row (the order of each sum is that of scipy's CSR product, so the results are the
    same)."""
    c_n, h, w = img.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for task in numba.prange(c_n * out_h):
        c = task // out_h
        k = task - c * out_h
        tmp = np.zeros(w, np.float64)
        for m in range(y_count[k]):
            f = y_w[k, m]
            row = img[c, y_first[k] + m]
            for j in range(w):
                tmp[j] += f * row[j]
        for q in range(out_w):
            acc = 0.0
            j0 = x_first[q]
            for m in range(x_count[q]):
                acc += x_w[q, m] * tmp[j0 + m]
            out[c, k, q] = acc


def resize_area(img: np.ndarray, out_h: int, out_w: int, scale: float | None = None) -> np.ndarray:
    """Area-resample a (C, H, W) image to (C, out_h, out_w); float32 out, float64 inside.

    With ``scale`` (input pixels per output pixel, both axes) the physical pixel size is
    exactly ``scale`` times the input's on both axes. ``img`` may be float32, float64 or
    bool (a mask: the fraction of each output pixel inside).

    Parameters
    ----------
    img : ndarray, shape (C, H, W)
        The image.
    out_h, out_w : int
        The output's size.
    scale : float, optional
        Input pixels per output pixel (both axes).

    Returns
    -------
    ndarray, shape (C, out_h, out_w), float32
    """
    c_n, h, w = img.shape
    if img.dtype == np.bool_:
        img = img.view(np.uint8)
    img = np.ascontiguousarray(img)
    out = np.empty((c_n, out_h, out_w), np.float32)
    with threads_for(img.size, PARALLEL_FROM_PIXELS):
        _resize_rows_cols(img, *area_weights(h, out_h, scale), *area_weights(w, out_w, scale),
                          out)  # fmt: skip
    return out


def resize_area_reference(
    img: np.ndarray, out_h: int, out_w: int, scale: float | None = None
) -> np.ndarray:
    """Slow float64 reference: integrate the piecewise-constant input over each output cell.

    Parameters
    ----------
    img : ndarray, shape (C, H, W)
        The image.
    out_h, out_w : int
        The output's size.
    scale : float, optional
        Input pixels per output pixel.

    Returns
    -------
    ndarray, float64
    """
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
    side is rounded up, its last pixel partly beyond the input).

    Parameters
    ----------
    h, w : int
        The input.
    size : int
        The longest output side.

    Returns
    -------
    (int, int, float)
        Output height, width, and the scale.

    Examples
    --------
    >>> fit_longest(100, 50, 64)
    (64, 32, 1.5625)
    """
    scale = max(h, w) / size
    return (
        min(size, max(1, int(np.ceil(h / scale - 1e-9)))),
        min(size, max(1, int(np.ceil(w / scale - 1e-9)))),
        scale,
    )


def pad_to_square(img: np.ndarray, size: int, value: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre a (C, h, w) image in a (C, size, size) canvas filled with ``value``; returns the
    canvas and the (top, left) offset of the image in it.

    Parameters
    ----------
    img : ndarray, shape (C, h, w)
        The image.
    size : int
        The canvas's side.
    value : float
        The fill.

    Returns
    -------
    (ndarray, (int, int))
    """
    c_n, h, w = img.shape
    if h > size or w > size:
        raise ValueError(f"image {h}x{w} does not fit in {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2
    out = np.full((c_n, size, size), value, np.float32)
    out[:, top : top + h, left : left + w] = img
    return out, (top, left)
