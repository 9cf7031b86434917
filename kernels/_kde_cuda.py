"""Gaussian KDE rendering on an NVIDIA GPU (Numba-CUDA): a tiled gather.

Localizations are bucketed by the image tiles (TILE x TILE pixels) their windows touch;
one thread block renders one tile: it stages the tile's localizations in shared memory in
chunks together with their separable weights (TILE column and TILE row weights each, by the
same :func:`ainu_engine.kernels._kde.axis_weight` the CPU kernel uses, compiled here as a CUDA
device
function), and each thread sums weight products for its own pixel in a float64 register —
no atomics on the image.

This module imports numba.cuda; the engine imports it only when a GPU path is used. Under
``NUMBA_ENABLE_CUDASIM=1`` the same kernels
run in Numba's CUDA simulator (how the test suite checks them on machines without a GPU).
Inputs may be NumPy arrays or device arrays (anything with ``__cuda_array_interface__``, e.g.
CuPy); the output stays on the device unless asked for.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import cuda, float64, int32

from ._kde import axis_weight, axis_window

__all__ = ["render_kde_cuda", "cuda_available", "TILE", "CHUNK", "MAX_CHANNELS"]

TILE = 16  #: tile side in pixels = threads per block side (256 threads)
#: localizations staged in shared memory per step, with their TILE column and TILE row
#: weights (float64): 64·(3·8 + 4 + 2·16·8) bytes = 17.9 kB of the 48 kB static limit
CHUNK = 64
MAX_CHANNELS = 4  #: image channels rendered in one pass (per-thread accumulators)
COUNT_THREADS = 256  #: threads per block of the bucketing kernels


def cuda_available(*, allow_simulator: bool = False) -> bool:
    """True when a CUDA GPU can run the kernels (the simulator counts only when allowed).

    Parameters
    ----------
    allow_simulator : bool
        Count Numba's CUDA simulator as a GPU (the tests).

    Returns
    -------
    bool
    """
    from numba import config

    if config.ENABLE_CUDASIM:
        return allow_simulator
    try:
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken driver means "not available"
        return False


@lru_cache(maxsize=1)
def _kernels():
    """(bucket_tiles, gather), compiled on first use. `cuda` must be this module's global: the
    simulator swaps it for its fake module."""
    weight = cuda.jit(device=True)(axis_weight)
    window = cuda.jit(device=True)(axis_window)
    return _bucket_kernel(window), _gather_kernel(weight)


def _bucket_kernel(window):
    @cuda.jit(device=True)
    def tile_range(x, y, s, c, n_channels, x0, y0, pixel, h, w, truncate):
        # tiles (ty0, ty1, tx0, tx1) touched by a localization's window; empty when none
        if c < 0 or c >= n_channels:
            return 0, -1, 0, -1
        reach = truncate * s
        ilo, ihi = window(y, reach, y0, pixel, h)
        jlo, jhi = window(x, reach, x0, pixel, w)
        if ilo > ihi or jlo > jhi:
            return 0, -1, 0, -1
        return ilo // TILE, ihi // TILE, jlo // TILE, jhi // TILE

    @cuda.jit
    def bucket_tiles(
        x, y, sigma, chan, n_channels, x0, y0, pixel, h, w, truncate, tiles_x, cursor, index, fill
    ):
        # pass 1 (fill=False): count the localizations of each tile into cursor[tile + 1];
        # pass 2 (fill=True): cursor holds the tile starts; write each index into its slots
        k = cuda.grid(1)
        if k >= x.shape[0]:
            return
        s = sigma[k] if sigma.shape[0] > 1 else sigma[0]
        ty0, ty1, tx0, tx1 = tile_range(
            x[k], y[k], s, chan[k], n_channels, x0, y0, pixel, h, w, truncate
        )
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                if fill:
                    index[cuda.atomic.add(cursor, ty * tiles_x + tx, 1)] = k
                else:
                    cuda.atomic.add(cursor, ty * tiles_x + tx + 1, 1)

    return bucket_tiles


def _gather_kernel(weight):
    @cuda.jit
    def gather(x, y, sigma, chan, starts, index, img, x0, y0, pixel, truncate, tiles_x):
        # Separable weights: a localization's contribution to the tile's pixel (i, j) is
        # wx[j]·wy[i], so the block first computes each staged localization's TILE column and
        # TILE row weights once (2·TILE exponentials per localization and tile instead of
        # TILE²), then every thread adds one product per localization to its own pixel.
        c_n, h, w = img.shape
        tile = cuda.blockIdx.x
        i0 = (tile // tiles_x) * TILE
        j0 = (tile % tiles_x) * TILE
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        lane = ty * TILE + tx
        sx = cuda.shared.array(CHUNK, float64)
        sy = cuda.shared.array(CHUNK, float64)
        ss = cuda.shared.array(CHUNK, float64)
        sc = cuda.shared.array(CHUNK, int32)
        wxs = cuda.shared.array((CHUNK, TILE), float64)
        wys = cuda.shared.array((CHUNK, TILE), float64)
        acc = cuda.local.array(MAX_CHANNELS, float64)
        for c in range(MAX_CHANNELS):
            acc[c] = 0.0
        first = starts[tile]
        last = starts[tile + 1]
        per_sigma = sigma.shape[0] > 1
        for base in range(first, last, CHUNK):
            m = min(CHUNK, last - base)
            if lane < m:
                k = index[base + lane]
                sx[lane] = x[k]
                sy[lane] = y[k]
                ss[lane] = sigma[k] if per_sigma else sigma[0]
                sc[lane] = chan[k]
            cuda.syncthreads()
            for e in range(lane, 2 * CHUNK * TILE, TILE * TILE):
                u = e // (2 * TILE)
                t = e % TILE
                if u < m:
                    s = ss[u]
                    reach = truncate * s
                    # the same window rule as before: centre within reach on each axis
                    if (e // TILE) % 2 == 0:
                        cxp = x0 + (j0 + t + 0.5) * pixel
                        wxs[u, t] = (
                            weight(cxp, sx[u], s, pixel) if abs(cxp - sx[u]) <= reach else 0.0
                        )
                    else:
                        cyp = y0 + (i0 + t + 0.5) * pixel
                        wys[u, t] = (
                            weight(cyp, sy[u], s, pixel) if abs(cyp - sy[u]) <= reach else 0.0
                        )
            cuda.syncthreads()
            for u in range(m):
                acc[sc[u]] += wxs[u, tx] * wys[u, ty]
            cuda.syncthreads()
        i, j = i0 + ty, j0 + tx
        if i < h and j < w:
            for c in range(c_n):
                img[c, i, j] += acc[c]

    return gather


def _on_device(a) -> bool:
    """A device array (Numba's, CuPy's, or the CUDA simulator's, which has no array interface):
    ``out=`` is then added to in place."""
    return hasattr(a, "__cuda_array_interface__") or hasattr(a, "copy_to_host")


def _device(a, dtype):
    if hasattr(a, "__cuda_array_interface__"):
        d = cuda.as_cuda_array(a)
        if d.dtype != dtype:
            raise TypeError(f"device input must be {np.dtype(dtype).name}, got {d.dtype}")
        return d
    return cuda.to_device(np.ascontiguousarray(a, dtype))


def render_kde_cuda(
    x, y, sigma, channel, *, shape, origin_nm, pixel_nm, truncate=5.0, out=None, to_host=True
):
    """Render localizations into a float32 (C, H, W) image on the GPU.

    Same arguments and result as :func:`ainu_engine.kernels.render_kde_cpu`. ``x``, ``y`` (float64),
    ``sigma`` (float64, one value or one per localization) and ``channel`` (int32) may
    already be on the device. ``out`` may be a device array to add into. With
    ``to_host=False`` the device array is returned (it can feed inference without a copy).

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
        Window half-width in σ.
    out : device array, optional
        Added to in place.
    to_host : bool, default True
        Return a NumPy array (False: the device array).

    Returns
    -------
    ndarray or numba.cuda device array, shape (C, H, W), float32
    """
    if truncate is None or not math.isfinite(truncate) or truncate <= 0:
        raise ValueError(f"truncate must be a positive finite number of sigmas, got {truncate!r}")
    c_n, h, w = (int(v) for v in shape)
    if c_n > MAX_CHANNELS:
        raise ValueError(f"the CUDA kernel renders at most {MAX_CHANNELS} channels, got {c_n}")
    sig_host = (
        None
        if hasattr(sigma, "__cuda_array_interface__")
        else np.atleast_1d(np.asarray(sigma, np.float64))
    )
    if sig_host is not None and sig_host.size and not np.all(sig_host > 0):
        raise ValueError("sigma must be positive")
    dx, dy = _device(x, np.float64), _device(y, np.float64)
    ds = _device(sig_host if sig_host is not None else sigma, np.float64)
    dc = _device(channel, np.int32)
    n = dx.shape[0]
    if out is None:
        d_img = cuda.to_device(np.zeros((c_n, h, w), np.float32))
    else:
        d_img = out if _on_device(out) else cuda.to_device(out)
    if n and h and w:
        bucket_tiles, gather = _kernels()
        tiles_y, tiles_x = -(-h // TILE), -(-w // TILE)
        n_tiles = tiles_y * tiles_x
        args = (
            c_n,
            float(origin_nm[0]),
            float(origin_nm[1]),
            float(pixel_nm),
            h,
            w,
            float(truncate),
            tiles_x,
        )
        blocks = -(-n // COUNT_THREADS)
        counts = cuda.to_device(np.zeros(n_tiles + 1, np.int64))
        no_index = cuda.device_array(1, np.int64)
        bucket_tiles[blocks, COUNT_THREADS](dx, dy, ds, dc, *args, counts, no_index, False)
        # the prefix sum of a few thousand tile counts: on the host (a few kB each way)
        starts = np.cumsum(counts.copy_to_host())
        d_starts = cuda.to_device(starts)
        cursor = cuda.to_device(starts[:-1].copy())
        index = cuda.device_array(max(int(starts[-1]), 1), np.int64)
        bucket_tiles[blocks, COUNT_THREADS](dx, dy, ds, dc, *args, cursor, index, True)
        gather[n_tiles, (TILE, TILE)](
            dx,
            dy,
            ds,
            dc,
            d_starts,
            index,
            d_img,
            float(origin_nm[0]),
            float(origin_nm[1]),
            float(pixel_nm),
            float(truncate),
            tiles_x,
        )
    if to_host:
        return d_img.copy_to_host() if out is None or _on_device(out) else d_img.copy_to_host(out)
    return d_img
