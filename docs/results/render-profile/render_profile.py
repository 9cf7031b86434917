"""Where the exact CPU render spends its time: the band sort against the band render, at 5, 4
and 3 sigma, 10^7 localizations on 16 nm pixels (sigma 20 nm), all cores; with ``--diagnose``,
the 5-sigma band render again with parts of its work taken out (diagnostic kernels that draw
WRONG images, for timing only): without the exponentials, without the image's memory (every
localization added into one small L1-resident tile), and without both.

    python docs/results/render-profile/render_profile.py [--diagnose]
"""

import sys
import time

import numba
import numpy as np

from ainu_engine.kernels import _kde as kde
from ainu_engine.kernels import render_kde_cpu

N, PIXEL, SIGMA, ORIGIN = 10_000_000, 16.0, 20.0, -100.0


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 30000, N).astype(np.float32)
    y = rng.uniform(0, 30000, N).astype(np.float32)
    side = int(30000 / PIXEL) + 20
    shape = (1, side, side)
    sig, ch = np.array([SIGMA]), np.zeros(N, np.int32)
    for trunc in (5.0, 4.0, 3.0):
        render_kde_cpu(x[:1000], y[:1000], sig, ch[:1000], shape=shape,
                       origin_nm=(ORIGIN, ORIGIN), pixel_nm=PIXEL, truncate=trunc)  # fmt: skip
        sort_s, bands_s = [], []
        for _ in range(3):
            out = np.zeros(shape, np.float32)
            rows = kde.band_rows_for(SIGMA, PIXEL, trunc)
            t0 = time.perf_counter()
            starts, xy, ss, cs = kde._sort_by_band(x, y, sig, ch, 1, ORIGIN, PIXEL, side, rows,
                                                   4 * numba.get_num_threads())  # fmt: skip
            t1 = time.perf_counter()
            for phase in range(3):
                kde._render_bands(xy, ss, cs, out, ORIGIN, ORIGIN, PIXEL, trunc, starts, phase)
            sort_s.append(t1 - t0)
            bands_s.append(time.perf_counter() - t1)
        w = 2 * int(np.ceil(trunc * SIGMA / PIXEL)) + 1
        rate = N * w * w / np.median(bands_s) / 1e9
        print(f"{trunc}σ: sort {np.median(sort_s):.3f} s, bands {np.median(bands_s):.3f} s, "
              f"window <= {w}x{w} = {w * w} px/loc, {rate:.2f} G pixel updates/s")  # fmt: skip


@numba.njit(inline="always")
def _weights_without_exp(first_centre, u, inv_sigma, step, norm, half_q, q, count, out):
    """The recurrence of kde._weights_run with its two exponentials replaced by arithmetic that
    still depends on the localization (so that nothing is hoisted): wrong weights."""
    d = (first_centre - u) * inv_sigma
    wgt = norm * (1.0 + 1e-9 * d)
    ratio = half_q * (1.0 - 1e-9 * d)
    for t in range(count):
        out[t] = wgt
        wgt *= ratio
        ratio *= q


def _diagnostic(no_exp: bool, one_tile: bool):
    """kde._render_bands (one channel, one sigma) with the exponentials and/or the image's memory
    taken out."""
    weights = _weights_without_exp if no_exp else kde._weights_run

    @numba.njit(parallel=True, nogil=True)
    def bands(xy, ss, img, x0, y0, pixel, truncate, starts, phase):
        h, w = img.shape[1], img.shape[2]
        n_tasks = (starts.shape[0] - 1 - phase + 2) // 3
        for task in numba.prange(n_tasks):
            b = phase + 3 * task
            wx = np.empty(w + 1, np.float32)
            wy = np.empty(h + 1, np.float32)
            tile = np.zeros((64, 64), np.float32)
            inv_s, step, norm, half_q, q = kde._sigma_constants(ss[0], pixel)
            reach = truncate * ss[0]
            for t in range(starts[b], starts[b + 1]):
                xt, yt = np.float64(xy[t, 0]), np.float64(xy[t, 1])
                jlo, jhi = kde._axis_window(xt, reach, x0, pixel, w)
                ilo, ihi = kde._axis_window(yt, reach, y0, pixel, h)
                nx = jhi - jlo + 1
                if nx <= 0 or ihi < ilo:
                    continue
                weights(x0 + (jlo + 0.5) * pixel, xt, inv_s, step, norm, half_q, q, nx, wx)
                weights(y0 + (ilo + 0.5) * pixel, yt, inv_s, step, norm, half_q, q,
                        ihi - ilo + 1, wy)  # fmt: skip
                for i in range(ihi - ilo + 1):
                    f = wy[i]
                    if one_tile:
                        seg = tile[i, jlo % 32 : jlo % 32 + nx]
                    else:
                        seg = img[0, ilo + i, jlo : jlo + nx]
                    for j in range(nx):
                        seg[j] += f * wx[j]
            img[0, b, 0] += tile.sum()  # keep the tile's work

    return bands


def diagnose() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 30000, N).astype(np.float32)
    y = rng.uniform(0, 30000, N).astype(np.float32)
    side = int(30000 / PIXEL) + 20
    sig, ch = np.array([SIGMA]), np.zeros(N, np.int32)
    rows = kde.band_rows_for(SIGMA, PIXEL, 5.0)
    starts, xy, ss, _ = kde._sort_by_band(x, y, sig, ch, 1, ORIGIN, PIXEL, side, rows,
                                          4 * numba.get_num_threads())  # fmt: skip
    variants = {"the kernel as it is": None, "without the exponentials": (True, False),
                "without the image's memory": (False, True), "without both": (True, True)}
    for name, flags in variants.items():
        times = []
        f = None if flags is None else _diagnostic(*flags)
        for _ in range(4):  # the first compiles
            out = np.zeros((1, side, side), np.float32)
            t0 = time.perf_counter()
            for phase in range(3):
                if f is None:
                    kde._render_bands(xy, ss, np.zeros(1, np.int32), out, ORIGIN, ORIGIN, PIXEL,
                                      5.0, starts, phase)  # fmt: skip
                else:
                    f(xy, ss, out, ORIGIN, ORIGIN, PIXEL, 5.0, starts, phase)
            times.append(time.perf_counter() - t0)
        print(f"5σ band render, {name}: {np.median(times[1:]):.3f} s")


if __name__ == "__main__":
    diagnose() if "--diagnose" in sys.argv[1:] else main()
