"""Occlusion kernels: build occluded batches in place and accumulate window deltas into an
attribution map with coverage counts — no per-window Python loop, no per-window copy.

Captum's ``Occlusion`` rule (captum/attr/_core/occlusion.py), which these kernels reproduce:
along each image axis of length n, windows of length ``window`` start at k·stride for
k = 0 .. ceil((n − window)/stride), the last one clipped at the border; a window covers every
channel; the attribution of pixel p is Σ_k (f(x) − f(x with window k set to the baseline)) / K(p),
K(p) = number of windows covering p.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "window_starts",
    "window_grid",
    "fill_occluded",
    "accumulate_deltas",
    "occlusion_reference",
]


def window_starts(n: int, window: int, stride: int) -> np.ndarray:
    """Start indices of the windows along one axis (Captum's count: ceil((n−window)/stride)+1).

    Parameters
    ----------
    n : int
        The axis's length.
    window, stride : int
        Window and stride.

    Returns
    -------
    ndarray of int

    Examples
    --------
    >>> window_starts(10, 4, 3).tolist()
    [0, 3, 6]
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
    if window > n:
        raise ValueError(f"window {window} is larger than the image side {n}")
    if stride > window:
        raise ValueError(
            f"stride {stride} is larger than the window {window} (pixels would be skipped)"
        )
    count = int(math.ceil((n - window) / stride)) + 1
    return np.arange(count, dtype=np.int64) * stride


def window_grid(
    h: int, w: int, window: tuple[int, int], stride: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(tops, lefts) of every window, row-major (the order Captum numbers them in is
    column-major, which does not change the result).

    Parameters
    ----------
    h, w : int
        The image.
    window, stride : (int, int)
        Window and stride (rows, columns).

    Returns
    -------
    (ndarray, ndarray)
        The tops and the lefts.
    """
    t = window_starts(h, window[0], stride[0])
    left = window_starts(w, window[1], stride[1])
    tops, lefts = np.meshgrid(t, left, indexing="ij")
    return tops.ravel(), lefts.ravel()


@numba.njit(parallel=True, cache=True, nogil=True)
def fill_occluded(image, baseline, tops, lefts, wh, ww, out):  # pragma: no cover - compiled
    """``out[b] = image`` with window ``b`` (rows tops[b]:tops[b]+wh, columns lefts[b]:+ww,
    clipped) set to ``baseline`` (an array shaped like ``image``), for b < len(tops).
    ``out`` is the backend's input buffer (B >= len(tops), C, H, W)."""
    c_n, h, w = image.shape
    for b in numba.prange(tops.shape[0]):
        t0 = tops[b]
        l0 = lefts[b]
        t1 = min(t0 + wh, h)
        l1 = min(l0 + ww, w)
        for c in range(c_n):
            for i in range(h):
                src = image[c, i]
                dst = out[b, c, i]
                if t0 <= i < t1:
                    base = baseline[c, i]
                    for j in range(w):
                        dst[j] = base[j] if l0 <= j < l1 else src[j]
                else:
                    for j in range(w):
                        dst[j] = src[j]


@numba.njit(cache=True, nogil=True)
def accumulate_deltas(deltas, tops, lefts, wh, ww, attr, counts):  # pragma: no cover - compiled
    """Add ``deltas[b, t]`` over window b to ``attr[t]`` (T, H, W) and 1 to ``counts`` (H, W)."""
    n_t, h, w = attr.shape
    for b in range(tops.shape[0]):
        t1 = min(tops[b] + wh, h)
        l1 = min(lefts[b] + ww, w)
        for i in range(tops[b], t1):
            for j in range(lefts[b], l1):
                counts[i, j] += 1
                for t in range(n_t):
                    attr[t, i, j] += deltas[b, t]


def occlusion_reference(
    forward, image: np.ndarray, *, window: int, stride: int, target: int, baseline: float = 0.0
) -> np.ndarray:
    """Plain NumPy occlusion, one window at a time (the tests' oracle): (H, W) float64.

    Parameters
    ----------
    forward : callable
        (B, C, H, W) -> (B, K) outputs.
    image : ndarray, shape (C, H, W)
        The image.
    window, stride : int
        Square window and stride (px).
    target : int
        The output explained.
    baseline : float
        What occluded pixels become.

    Returns
    -------
    ndarray, shape (H, W), float64
    """
    c_n, h, w = image.shape
    f0 = float(forward(image[None])[0, target])
    attr = np.zeros((h, w))
    cnt = np.zeros((h, w))
    for top in window_starts(h, window, stride):
        for left in window_starts(w, window, stride):
            x = image.copy()
            x[:, top : top + window, left : left + window] = baseline
            attr[top : top + window, left : left + window] += f0 - float(
                forward(x[None])[0, target]
            )
            cnt[top : top + window, left : left + window] += 1
    return attr / cnt
