"""Gaussian kernel density rendering of localizations: float64 reference and CPU kernel.

Conventions (DESIGN.md): the image is float32 (C, H, W); pixel (i, j) covers
[x0 + j·p, x0 + (j+1)·p) × [y0 + i·p, y0 + (i+1)·p) and its value is evaluated at its centre.
A localization at (x, y) with bandwidth σ contributes

    p² · N(centre; (x, y), σ² I) = [p/(√(2π)σ) e^{-(cx-x)²/2σ²}] · [p/(√(2π)σ) e^{-(cy-y)²/2σ²}]

to every pixel whose centre lies within ``truncate·σ`` of it along *each* axis (a square
window, so the weights are separable). The image of one localization sums to ≈ 1 (density
in localizations per pixel). The per-axis weight is written once (:func:`axis_weight`) and
compiled for the CPU here and for CUDA in :mod:`ainu_engine.kernels._kde_cuda`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._threads import threads_for

__all__ = ["kde_reference", "render_kde_cpu", "axis_weight", "axis_window", "BAND_ROWS"]

SQRT_2PI = math.sqrt(2.0 * math.pi)

#: Rows of the image owned by one parallel task of the CPU kernel.
BAND_ROWS = 16

#: Localizations from which the CPU kernel runs on all Numba threads (one below: see
#: :mod:`ainu_engine.kernels._threads`); about 10 ms of one thread's work.
PARALLEL_FROM_LOCS = 100_000


# -- the per-localization math, written once (plain Python, compiled per target) -------------


def axis_weight(centre, u, sigma, pixel):
    """Weight along one axis of a pixel whose centre is at ``centre`` for a localization at
    ``u``: p/(√(2π)σ)·exp(−(centre−u)²/(2σ²)).

    Parameters
    ----------
    centre : float
        The pixel centre along the axis (nm).
    u : float
        The localization's coordinate (nm).
    sigma, pixel : float
        The bandwidth and the pixel (nm).

    Returns
    -------
    float
    """
    d = (centre - u) / sigma
    return pixel / (SQRT_2PI * sigma) * math.exp(-0.5 * d * d)


def axis_window(u, reach, origin, pixel, n):
    """First and last pixel index (inclusive) whose centre lies within ``reach`` of ``u``,
    clipped to [0, n-1]; first > last when none does."""
    lo = math.ceil((u - reach - origin) / pixel - 0.5)
    hi = math.floor((u + reach - origin) / pixel - 0.5)
    if lo < 0:
        lo = 0
    if hi > n - 1:
        hi = n - 1
    return lo, hi


def sigma_constants(sigma, pixel):
    """Per-bandwidth constants of :func:`weights_run`: 1/σ, step = p/σ, norm = p/(√(2π)σ),
    half_q = exp(−step²/2), q = exp(−step²)."""
    step = pixel / sigma
    return (
        1.0 / sigma,
        step,
        pixel / (SQRT_2PI * sigma),
        math.exp(-0.5 * step * step),
        math.exp(-step * step),
    )


def weights_run(first_centre, u, inv_sigma, step, norm, half_q, q, count, out):
    """Weights of ``count`` consecutive pixels starting at centre ``first_centre``, written
    to ``out[:count]``: the values of :func:`axis_weight`, by the Gaussian recurrence
    w(d+p) = w(d)·r, r ← r·q with r = exp(−(2dp+p²)/2σ²) — two exponentials per run instead
    of one per pixel (relative drift ~1e-15 per step). Constants from :func:`sigma_constants`."""
    d = (first_centre - u) * inv_sigma
    wgt = norm * math.exp(-0.5 * d * d)
    ratio = math.exp(-d * step) * half_q
    for t in range(count):
        out[t] = wgt
        wgt *= ratio
        ratio *= q


_axis_weight = numba.njit(cache=True, inline="always")(axis_weight)
_axis_window = numba.njit(cache=True, inline="always")(axis_window)
_weights_run = numba.njit(cache=True, inline="always")(weights_run)
_sigma_constants = numba.njit(cache=True, inline="always")(sigma_constants)


# -- float64 NumPy reference ------------------------------------------------------------------


def kde_reference(x, y, sigma, channel, *, shape, origin_nm, pixel_nm, truncate=5.0):
    """Slow float64 renderer, the oracle of every kernel.

    Parameters
    ----------
    x, y : array_like
        Coordinates in nm.
    sigma : float or array_like
        Bandwidth in nm, one value or one per localization.
    channel : array_like of int
        Image channel of each localization (0..C-1); negative values are skipped.
    shape : (C, H, W)
    origin_nm : (x0, y0)
    pixel_nm : float
    truncate : float or None
        Window half-width in σ; None evaluates every pixel (untruncated KDE).

    Returns
    -------
    numpy.ndarray, float64, shape (C, H, W)
    """
    c_n, h, w = shape
    img = np.zeros((c_n, h, w), np.float64)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    sig = np.broadcast_to(np.asarray(sigma, np.float64), x.shape)
    ch = np.asarray(channel, np.int64)
    cx = origin_nm[0] + (np.arange(w) + 0.5) * pixel_nm
    cy = origin_nm[1] + (np.arange(h) + 0.5) * pixel_nm
    for k in range(x.size):
        if ch[k] < 0 or ch[k] >= c_n:
            continue
        s = sig[k]
        dx, dy = cx - x[k], cy - y[k]
        wx = pixel_nm / (np.sqrt(2 * np.pi) * s) * np.exp(-0.5 * (dx / s) ** 2)
        wy = pixel_nm / (np.sqrt(2 * np.pi) * s) * np.exp(-0.5 * (dy / s) ** 2)
        if truncate is not None:
            wx = np.where(np.abs(dx) <= truncate * s, wx, 0.0)
            wy = np.where(np.abs(dy) <= truncate * s, wy, 0.0)
        img[ch[k]] += np.outer(wy, wx)
    return img


# -- CPU kernel -------------------------------------------------------------------------------
#
# Each localization is assigned to the band of rows that holds its centre; bands are at least
# as tall as the kernel reaches, so a localization writes only into its own band and the two
# next to it. Bands b ≡ 0, 1, 2 (mod 3) are rendered in three parallel phases: within a phase
# no two tasks write the same row. A counting sort puts the localizations of a band next to
# each other, so every task reads contiguous memory and writes to a cache-resident strip of
# the image. Every localization is computed once.


@numba.njit(cache=True, inline="always")
def _band_key(y, c, n_channels, y0, pixel, h, band_rows):
    """Band of a localization's centre row (clipped to the image), or -1 when its channel is
    not rendered. Localizations whose window misses the image are dropped by the renderer."""
    if c < 0 or c >= n_channels:
        return -1
    row = min(max(int(math.floor((y - y0) / pixel)), 0), h - 1)
    return row // band_rows


@numba.njit(parallel=True, cache=True, nogil=True)
def _sort_by_band(x, y, sigma, chan, n_channels, y0, pixel, h, band_rows, n_chunks):
    """Parallel stable counting sort of the localizations by band; returns the band starts,
    the sorted coordinates as one (n, 2) array of (x, y) in the input dtype (one write stream
    per band and chunk instead of two), sigma (one value
    when shared) and channel (one value when the image has one channel). The order does not
    depend on ``n_chunks`` (bands major, chunks in order), so neither does the image."""
    n = x.shape[0]
    n_bands = (h + band_rows - 1) // band_rows
    per_sigma = sigma.shape[0] > 1
    multi = n_channels > 1
    size = (n + n_chunks - 1) // n_chunks
    keys = np.empty(n, np.int32)
    local = np.zeros((n_chunks, n_bands), np.int64)
    for c in numba.prange(n_chunks):
        for k in range(c * size, min(n, (c + 1) * size)):
            key = _band_key(y[k], chan[k], n_channels, y0, pixel, h, band_rows)
            keys[k] = key
            if key >= 0:
                local[c, key] += 1
    starts = np.empty(n_bands + 1, np.int64)
    total = 0
    for key in range(n_bands):
        starts[key] = total
        for c in range(n_chunks):
            count = local[c, key]
            local[c, key] = total
            total += count
    starts[n_bands] = total
    xy = np.empty((total, 2), x.dtype)
    ss = np.empty(total if per_sigma else 1, np.float64)
    cs = np.zeros(total if multi else 1, np.int32)
    if not per_sigma:
        ss[0] = sigma[0]
    for c in numba.prange(n_chunks):
        for k in range(c * size, min(n, (c + 1) * size)):
            key = keys[k]
            if key < 0:
                continue
            t = local[c, key]
            local[c, key] = t + 1
            xy[t, 0] = x[k]
            xy[t, 1] = y[k]
            if multi:
                cs[t] = chan[k]
            if per_sigma:
                ss[t] = sigma[k]
    return starts, xy, ss, cs


@numba.njit(parallel=True, cache=True, nogil=True)
def _render_bands(xy, ss, cs, img, x0, y0, pixel, truncate, starts, phase):
    c_n, h, w = img.shape
    n_bands = starts.shape[0] - 1
    per_sigma = ss.shape[0] > 1
    multi = c_n > 1  # as in _sort_by_band: one channel value per localization only then
    n_tasks = (n_bands - phase + 2) // 3
    for task in numba.prange(n_tasks):
        b = phase + 3 * task
        wx = np.empty(w + 1, np.float32)  # weights computed in float64, stored as float32
        wy = np.empty(h + 1, np.float32)
        s = ss[0]
        inv_s, step, norm, half_q, q = _sigma_constants(s, pixel)
        for t in range(starts[b], starts[b + 1]):
            if per_sigma:
                s = ss[t]
                inv_s, step, norm, half_q, q = _sigma_constants(s, pixel)
            reach = truncate * s
            xt = np.float64(xy[t, 0])
            yt = np.float64(xy[t, 1])
            jlo, jhi = _axis_window(xt, reach, x0, pixel, w)
            ilo, ihi = _axis_window(yt, reach, y0, pixel, h)
            nx = jhi - jlo + 1
            if nx <= 0 or ihi < ilo:
                continue  # the window misses the image
            _weights_run(x0 + (jlo + 0.5) * pixel, xt, inv_s, step, norm, half_q, q, nx, wx)
            _weights_run(
                y0 + (ilo + 0.5) * pixel, yt, inv_s, step, norm, half_q, q, ihi - ilo + 1, wy
            )
            plane = img[cs[t] if multi else 0]
            for i in range(ihi - ilo + 1):
                f = wy[i]
                # a slice, so the inner loop's index is provably >= 0: no wraparound test, and
                # LLVM vectorises it
                seg = plane[ilo + i, jlo : jlo + nx]
                for j in range(nx):
                    seg[j] += f * wx[j]


def band_rows_for(max_sigma_nm: float, pixel_nm: float, truncate: float) -> int:
    """Band height (rows) such that a localization only reaches its band and the two next."""
    return max(BAND_ROWS, int(math.ceil(truncate * max_sigma_nm / pixel_nm)) + 2)


def render_kde_cpu(x, y, sigma, channel, *, shape, origin_nm, pixel_nm, truncate=5.0, out=None):
    """Render localizations into a float32 (C, H, W) image on the CPU (Numba: all cores from
    ``PARALLEL_FROM_LOCS`` localizations, one thread below).

    Same arguments as :func:`kde_reference` (``truncate`` must be finite). ``out``
    (float32, C-contiguous, of ``shape``) is added to in place when given. No per-thread
    image copy and no atomics: see the comment above for the band scheme.

    Parameters
    ----------
    x, y : array_like
        Coordinates in nm.
    sigma : float or array_like
        Bandwidth in nm, one value or one per localization.
    channel : array_like of int
        Image channel of each localization (0..C-1); negative values are skipped.
    shape : (C, H, W)
        The image.
    origin_nm : (x0, y0)
        The corner of pixel (0, 0).
    pixel_nm : float
        The pixel.
    truncate : float, default 5
        Window half-width in σ (finite).
    out : ndarray, optional
        Added to in place.

    Returns
    -------
    ndarray, shape (C, H, W), float32
    """
    if truncate is None or not math.isfinite(truncate) or truncate <= 0:
        raise ValueError(f"truncate must be a positive finite number of sigmas, got {truncate!r}")
    # float32 coordinates (what Localizations holds) are used as they are, others as float64
    dt = (
        np.float32
        if getattr(x, "dtype", None) == np.float32 and getattr(y, "dtype", None) == np.float32
        else np.float64
    )
    x = np.ascontiguousarray(x, dt)
    y = np.ascontiguousarray(y, dt)
    sig = np.ascontiguousarray(np.atleast_1d(np.asarray(sigma, np.float64)))
    if sig.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"sigma must have 1 or {x.shape[0]} values, got {sig.shape[0]}")
    if sig.size and not np.all(sig > 0):
        raise ValueError("sigma must be positive")
    ch = np.ascontiguousarray(channel, np.int32)
    if ch.shape != x.shape or y.shape != x.shape:
        raise ValueError("x, y and channel must have the same length")
    if out is None:
        out = np.zeros(shape, np.float32)
    elif out.dtype != np.float32 or not out.flags.c_contiguous or out.shape != tuple(shape):
        raise ValueError("out must be a C-contiguous float32 array of the given shape")
    if x.size == 0 or out.size == 0:
        return out
    c_n, h, w = out.shape
    rows = band_rows_for(float(sig.max()), float(pixel_nm), float(truncate))
    with threads_for(x.size, PARALLEL_FROM_LOCS) as threads:
        starts, xy, ss, cs = _sort_by_band(
            x, y, sig, ch, c_n, float(origin_nm[1]), float(pixel_nm), h, rows, 4 * threads
        )
        for phase in range(3):
            _render_bands(xy, ss, cs, out, float(origin_nm[0]), float(origin_nm[1]),
                          float(pixel_nm), float(truncate), starts, phase)  # fmt: skip
    return out


@numba.njit(cache=True, nogil=True)
def _reference_f64(x, y, sigma, chan, img, x0, y0, pixel, truncate):  # pragma: no cover - compiled
    per_sigma = sigma.shape[0] > 1
    c_n, h, w = img.shape
    for k in range(x.shape[0]):
        c = chan[k]
        if c < 0 or c >= c_n:
            continue
        s = sigma[k] if per_sigma else sigma[0]
        jlo, jhi = _axis_window(x[k], truncate * s, x0, pixel, w)
        ilo, ihi = _axis_window(y[k], truncate * s, y0, pixel, h)
        for i in range(ilo, ihi + 1):
            wy = _axis_weight(y0 + (i + 0.5) * pixel, y[k], s, pixel)
            for j in range(jlo, jhi + 1):
                img[c, i, j] += wy * _axis_weight(x0 + (j + 0.5) * pixel, x[k], s, pixel)


def kde_reference_fast(x, y, sigma, channel, *, shape, origin_nm, pixel_nm, truncate=8.0):
    """Float64, serial, one exponential per pixel and axis: :func:`kde_reference` for inputs
    too large for NumPy loops (benchmarks). At ``truncate=8`` the neglected tail is below
    1.3e-14 of a kernel's peak, i.e. the untruncated KDE to float64 precision.

    Parameters
    ----------
    x, y : array_like
        Coordinates in nm.
    sigma : float or array_like
        Bandwidth in nm, one value or one per localization.
    channel : array_like of int
        Image channel of each localization (0..C-1); negative values are skipped.
    shape : (C, H, W)
        The image.
    origin_nm : (x0, y0)
        The corner of pixel (0, 0).
    pixel_nm : float
        The pixel.
    truncate : float, default 8
        Window half-width in σ.

    Returns
    -------
    ndarray, shape (C, H, W), float64
    """
    img = np.zeros(shape, np.float64)
    _reference_f64(
        np.ascontiguousarray(x, np.float64),
        np.ascontiguousarray(y, np.float64),
        np.ascontiguousarray(np.atleast_1d(np.asarray(sigma, np.float64))),
        np.ascontiguousarray(channel, np.int32),
        img,
        float(origin_nm[0]),
        float(origin_nm[1]),
        float(pixel_nm),
        float(truncate),
    )
    return img
