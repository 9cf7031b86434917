"""Resolution estimates (issue 35): NeNA recovers a known precision within 10 %; FRC agrees with
a plain full-plane implementation and grows with the precision; no estimate without a reason."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal.windows import tukey

from ainu_engine.io import Localizations
from ainu_engine.kernels import next_frame_distances
from ainu_engine.preprocess import frc, nena
from ainu_engine.preprocess._resolution import _halves


def _emitters(sigma, n=20_000, blinks=3, seed=0):
    """Emitters on consecutive frames, each localized ``blinks`` times with precision sigma."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(0, 10_000, (n, 2))
    xy = np.repeat(c, blinks, axis=0) + rng.normal(0, sigma, (n * blinks, 2))
    frame = np.repeat(rng.integers(0, 30_000, n), blinks) + np.tile(np.arange(blinks), n)
    return Localizations(xy[:, 0], xy[:, 1], frame=frame,
                         precision_nm=np.full(n * blinks, float(sigma)))  # fmt: skip


@pytest.mark.parametrize("sigma", [5.0, 12.0, 30.0])
def test_nena_recovers_a_known_precision_within_10_percent(sigma):
    r = nena(_emitters(sigma))
    assert r.value_nm == pytest.approx(sigma, rel=0.10)
    assert r.n > 30_000 and r.reason == ""


def test_next_frame_distances_match_a_kd_tree():
    from scipy.spatial import cKDTree

    locs = _emitters(10.0, n=2000)
    order = np.argsort(locs.frame, kind="stable")
    f, x, y = locs.frame[order], locs.x_nm[order].astype(float), locs.y_nm[order].astype(float)
    got = next_frame_distances(f, x, y, np.zeros(len(f), np.int64), 100.0)
    want = np.full(len(f), np.nan)
    for fr in np.unique(f):
        here, nxt = np.flatnonzero(f == fr), np.flatnonzero(f == fr + 1)
        if len(nxt):
            d, _ = cKDTree(np.column_stack([x[nxt], y[nxt]])).query(
                np.column_stack([x[here], y[here]]), distance_upper_bound=100.0)  # fmt: skip
            want[here] = np.where(np.isfinite(d), d, np.nan)
    assert np.allclose(got, want, equal_nan=True)


def _frc_full_plane(locs, half, pixel):
    """FRC over the full plane with a ring mask per radius: the plain reference."""
    x, y = locs.x_nm.astype(float), locs.y_nm.astype(float)
    n = int(np.ceil(max(np.ptp(x), np.ptp(y)) / pixel)) + 1
    n += n % 2
    ix = np.clip(((x - x.min()) / pixel).astype(int), 0, n - 1)
    iy = np.clip(((y - y.min()) / pixel).astype(int), 0, n - 1)
    win = np.outer(tukey(n, 0.25), tukey(n, 0.25))
    f = []
    for h in (half, ~half):
        img = np.zeros((n, n))
        np.add.at(img, (iy[h], ix[h]), 1.0)
        f.append(np.fft.fft2(img * win))
    k = np.fft.fftfreq(n) * n
    rad = np.rint(np.hypot(k[:, None], k[None, :]))
    out = []
    for r in range(n // 2):
        m = rad == r
        power = (np.abs(f[0][m]) ** 2).sum() * (np.abs(f[1][m]) ** 2).sum()
        out.append((f[0][m] * np.conj(f[1][m])).real.sum() / np.sqrt(power))
    return np.convolve(np.nan_to_num(out), np.ones(5) / 5, mode="same")


def test_frc_agrees_with_a_full_plane_reference_and_grows_with_the_precision():
    values = []
    for sigma in (8.0, 16.0, 32.0):
        locs = _emitters(sigma, n=8000)
        r = frc(locs, split="random", pixel_nm=10.0)
        ref = _frc_full_plane(locs, _halves(locs, "random", 500, 0), 10.0)
        assert np.allclose(r.curve["frc"], ref, atol=1e-6)
        values.append(r.value_nm)
    assert values[0] < values[1] < values[2]
    # a random split of repeated localizations correlates the halves: about 4-5 sigma
    assert 3 * 16.0 < values[1] < 7 * 16.0


def test_no_estimate_says_why():
    few = _emitters(10.0, n=30)
    assert nena(few).value_nm is None and "next-frame pairs" in nena(few).reason
    assert nena(Localizations([0.0], [0.0])).reason == "no frames"
    assert "localizations (< 100)" in frc(Localizations([0.0, 1.0], [0.0, 1.0])).reason
    # without structure, halves of different emitters do not correlate: no fine resolution
    assert frc(_emitters(10.0, n=8000), split="blocks").value_nm > 500
    with pytest.raises(ValueError, match="split must be"):
        frc(few, split="odd")
