"""Occlusion kernels on an NVIDIA GPU (Numba-CUDA): the occluded batch is written straight into a
device buffer (the backend's input, e.g. bound through ONNX Runtime's IO binding), and window
deltas are accumulated on the device — only the model's outputs cross to the host.

Same rule as :mod:`ainu_engine.kernels._occlusion` (Captum's). Under ``NUMBA_ENABLE_CUDASIM=1``
the kernels
run in Numba's simulator, which is how the test suite checks them without a GPU.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import cuda

__all__ = ["fill_occluded_cuda", "accumulate_deltas_cuda", "BLOCK"]

BLOCK = (8, 32)  #: threads per block (rows, columns); one thread per (row, column) of one image


@lru_cache(maxsize=1)
def _kernels():
    @cuda.jit
    def fill(image, baseline, tops, lefts, wh, ww, out):
        # grid: (batch * channels, ceil(H / 8), ceil(W / 32)) blocks
        bc = cuda.blockIdx.x
        c_n = image.shape[0]
        b = bc // c_n
        c = bc - b * c_n
        i = cuda.blockIdx.y * cuda.blockDim.x + cuda.threadIdx.x
        j = cuda.blockIdx.z * cuda.blockDim.y + cuda.threadIdx.y
        if b >= tops.shape[0] or i >= image.shape[1] or j >= image.shape[2]:
            return
        t0 = tops[b]
        l0 = lefts[b]
        if t0 <= i < t0 + wh and l0 <= j < l0 + ww:
            out[b, c, i, j] = baseline[c, i, j]
        else:
            out[b, c, i, j] = image[c, i, j]

    @cuda.jit
    def accumulate(deltas, tops, lefts, wh, ww, attr, counts):
        # one thread per pixel; loops over the windows (no atomics: each thread owns its pixel)
        i, j = cuda.grid(2)
        n_t, h, w = attr.shape
        if i >= h or j >= w:
            return
        for b in range(tops.shape[0]):
            if tops[b] <= i < tops[b] + wh and lefts[b] <= j < lefts[b] + ww:
                counts[i, j] += 1
                for t in range(n_t):
                    attr[t, i, j] += deltas[b, t]

    return fill, accumulate


def fill_occluded_cuda(image, baseline, tops, lefts, wh: int, ww: int, out) -> None:
    """Device version of :func:`ainu_engine.kernels._occlusion.fill_occluded` (all arrays on the
    device,
    or host arrays copied once; ``out`` a device array (B, C, H, W) float32).

    Parameters
    ----------
    image : array, shape (C, H, W)
        The image.
    baseline : array or float
        What occluded pixels become.
    tops, lefts : array of int
        The windows' corners, one per copy.
    wh, ww : int
        The window's height and width.
    out : device array, shape (B, C, H, W), float32
        The occluded copies (written).
    """
    fill, _ = _kernels()
    c_n, h, w = image.shape
    n = int(tops.shape[0])
    if n == 0:
        return
    grid = (n * c_n, math.ceil(h / BLOCK[0]), math.ceil(w / BLOCK[1]))
    fill[grid, BLOCK](image, baseline, tops, lefts, np.int64(wh), np.int64(ww), out)


def accumulate_deltas_cuda(deltas, tops, lefts, wh: int, ww: int, attr, counts) -> None:
    """Device version of :func:`ainu_engine.kernels._occlusion.accumulate_deltas` (attr float64
    (T, H, W),
    counts int64 (H, W), both on the device).

    Parameters
    ----------
    deltas : device array, shape (B, T)
        The output drop of each occluded copy, per target.
    tops, lefts : device array of int
        The windows' corners.
    wh, ww : int
        The window's height and width.
    attr : device array, shape (T, H, W), float64
        The attribution sums (added to).
    counts : device array, shape (H, W), int64
        The windows covering each pixel (added to).
    """
    _, acc = _kernels()
    _, h, w = attr.shape
    threads = (16, 16)
    grid = (math.ceil(h / threads[0]), math.ceil(w / threads[1]))
    acc[grid, threads](deltas, tops, lefts, np.int64(wh), np.int64(ww), attr, counts)
