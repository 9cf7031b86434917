"""The rim along a nucleus' outline: which localizations lie in it, its mask on a render's grid,
and the replacement of its localizations by interior ones."""

from __future__ import annotations

import numpy as np

from ainu_engine.explain import outline_masks, replace_rim, rim_localizations
from ainu_engine.io import Localizations


def _circle(r_nm: float = 4000.0, n: int = 256) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([r_nm * np.cos(t), r_nm * np.sin(t)]) + 5000.0


def test_rim_localizations_are_those_near_the_outline_on_either_side():
    outline = _circle()
    r = np.array([0.0, 2000.0, 3100.0, 3600.0, 4400.0, 5500.0])  # distance from the centre
    x, y = 5000.0 + r, np.full(len(r), 5000.0)
    # 1 µm band: within 1000 nm of the circle (3000-5000 nm from the centre)
    assert rim_localizations(x, y, outline, 1000.0).tolist() == [
        False, False, True, True, True, False]  # fmt: skip


def test_the_rim_mask_is_the_band_inside_the_outline():
    m = outline_masks(_circle(), rim_nm=1000.0, shape=(100, 100), origin_nm=(0.0, 0.0),
                      pixel_nm=100.0)  # fmt: skip
    # a disc of radius 40 px and the band 10 px wide inside it: (40² - 30²) / 40² of its area
    assert abs(m["nucleus"].sum() - np.pi * 40**2) < 0.02 * np.pi * 40**2
    assert abs(m["rim"].sum() / m["nucleus"].sum() - (40**2 - 30**2) / 40**2) < 0.05
    assert not (m["rim"] & ~m["nucleus"]).any()


def test_replacing_the_rim_keeps_every_localization_and_empties_the_band():
    rng = np.random.default_rng(1)
    outline = _circle()
    a = rng.uniform(0, 2 * np.pi, 3000)
    r = np.concatenate([rng.uniform(0, 2500, 1500), rng.uniform(3500, 4000, 1500)])
    locs = Localizations(5000 + r * np.cos(a), 5000 + r * np.sin(a), frame=np.arange(3000))
    out = replace_rim(locs, outline, rim_nm=1000.0, rng=np.random.default_rng(0), jitter_nm=20)
    assert out.n == locs.n and np.array_equal(out.frame, locs.frame)
    before = rim_localizations(locs.x_nm, locs.y_nm, outline, 1000.0)
    after = rim_localizations(out.x_nm, out.y_nm, outline, 1000.0)
    assert before.sum() == 1500 and after.sum() < 30  # a few interior ones jittered into it
    assert np.array_equal(out.x_nm[~before], locs.x_nm[~before])  # the interior is untouched
    assert locs.x_nm[before].std() > 0  # the input is not changed in place
    assert replace_rim(locs[~before], outline, rim_nm=1000.0, rng=rng) is None  # no rim
