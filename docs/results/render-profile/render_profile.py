"""Where the exact CPU render spends its time: the band sort against the band render, at 5, 4
and 3 sigma, 10^7 localizations on 16 nm pixels (sigma 20 nm), all cores.

    python docs/results/render-profile/render_profile.py
"""

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


if __name__ == "__main__":
    main()
