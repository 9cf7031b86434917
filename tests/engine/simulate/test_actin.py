"""The actin + nucleus simulator: files in the NuclearPrediction layout, ground truth that
agrees with the images, the position rule and its null controls."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import tifffile

from ainu_engine.simulate import ActinConfig, simulate_tile, simulate_tiles

SMALL = ActinConfig(tile_um=105.0, cells=(4, 8))


def test_tiles_are_written_in_the_public_layout(tmp_path):
    simulate_tiles(tmp_path, n_tiles=2, seed=3, config=SMALL)
    d = tmp_path / "tile0001"
    a = tifffile.imread(d / "Actin_tile0001.tif")
    n = tifffile.imread(d / "Nucleus_tile0001.tif")
    m = tifffile.imread(d / "Merged_tile0001.tif")
    assert a.shape == n.shape == m.shape == (256, 256, 3) and a.dtype == np.uint8
    assert a[..., 0].max() == 0 and n[..., 1].max() == 0  # actin green, nucleus red
    np.testing.assert_array_equal(m[..., 0], n[..., 0])
    truth = json.loads((tmp_path / "truth" / "tile0001.json").read_text())
    lab = tifffile.imread(tmp_path / "truth" / "tile0001_nuclei.tif")
    assert len(truth) == lab.max() >= 4
    for t in truth:  # the stated centre lies in the nucleus drawn there
        assert lab[int(round(t["nucleus_y"])), int(round(t["nucleus_x"]))] == t["cell"]
    again = tmp_path / "again"
    simulate_tiles(again, n_tiles=2, seed=3, config=SMALL)
    assert (again / "tile0001" / "Actin_tile0001.tif").read_bytes() == (
        d / "Actin_tile0001.tif"
    ).read_bytes()


def test_fibres_leaving_the_tile_do_not_pile_up_on_its_border():
    """Fibres that run out of the tile are cut there, not clipped onto the border rows (which
    drew bright frame lines that a generator learnt to reproduce at every tile edge)."""
    for seed in range(3):
        a = simulate_tile(np.random.default_rng(seed), ActinConfig()).actin
        for edge, inner in ((a[0], a[4:12]), (a[-1], a[-12:-4]), (a[:, 0], a[:, 4:12]),
                            (a[:, -1], a[:, -12:-4])):  # fmt: skip
            assert edge.mean() < 1.5 * inner.mean() + 0.01, seed


def _offsets(cfg, seeds):
    out = []
    for s in seeds:
        t = simulate_tile(np.random.default_rng(s), cfg)
        for c in t.truth:
            shift = cfg.rear_shift * c["r0_um"] / cfg.pixel_um
            ey = c["centroid_y"] - shift * np.sin(c["axis"])
            ex = c["centroid_x"] - shift * np.cos(c["axis"])
            out.append(np.hypot(c["nucleus_y"] - ey, c["nucleus_x"] - ex) * cfg.pixel_um)
    return np.asarray(out)


def test_the_position_rule_and_the_null_controls():
    rule = _offsets(ActinConfig(tile_um=105.0, cells=(4, 8), sigma_pos_um=1.0), range(4))
    null = _offsets(ActinConfig(tile_um=105.0, cells=(4, 8), null="random"), range(4))
    # σ_pos = 1 µm in 2-D: the median offset is 1.18 µm (clamping into the cell aside)
    assert np.median(rule) == pytest.approx(1.18, abs=0.5)
    assert np.median(null) > 3 * np.median(rule)
    with pytest.raises(ValueError, match="null"):
        ActinConfig(null="other")


@pytest.mark.parametrize("null", ["random", "shuffled"])
def test_a_null_control_moves_the_nucleus_and_keeps_the_actin(null):
    """A null tile's actin is the rule tile's of the same seed (cap fibres and shadow drawn at
    the rule's position), so the actin carries no information on the moved nucleus."""
    cfg = ActinConfig(tile_um=105.0, cells=(4, 8), shadow=0.3)
    for seed in range(3):
        rule = simulate_tile(np.random.default_rng(seed), cfg)
        moved = simulate_tile(np.random.default_rng(seed), replace(cfg, null=null))
        np.testing.assert_array_equal(moved.actin, rule.actin)
        np.testing.assert_array_equal(moved.cells, rule.cells)
        assert not np.array_equal(moved.nuclei, rule.nuclei)
        for r, m in zip(rule.truth, moved.truth, strict=True):
            assert (m["rule_y"], m["rule_x"]) == (r["nucleus_y"], r["nucleus_x"])


@pytest.mark.slow
def test_the_random_null_reproduces_the_chance_rate():
    """An oracle that knows where the actin puts each nucleus (the rule) lands within 4 µm of a
    random-null nucleus at the chance rate: the share of the cell's valid region (the cell
    eroded by the nucleus radius, as the simulator draws it) within 4 µm of the rule's point,
    summed over the cells; within 3 sd of its Poisson-binomial spread."""
    from scipy import ndimage as ndi

    cfg = ActinConfig(null="random")
    px, hits, expected, var = cfg.pixel_um, 0, 0.0, 0.0
    for seed in range(8):
        t = simulate_tile(np.random.default_rng(seed), cfg)
        yy, xx = np.mgrid[: t.cells.shape[0], : t.cells.shape[1]]
        for c in t.truth:
            valid = ndi.binary_erosion(
                t.cells == c["cell"], iterations=max(int(c["nucleus_radius_um"] / px), 1)
            )
            if not valid.any():
                continue
            near = np.hypot(yy - c["rule_y"], xx - c["rule_x"]) * px < 4.0
            p = (valid & near).sum() / valid.sum()
            d = np.hypot(c["nucleus_y"] - c["rule_y"], c["nucleus_x"] - c["rule_x"]) * px
            hits += d < 4.0
            expected += p
            var += p * (1 - p)
    assert expected > 5  # enough cells for the check to mean something
    assert abs(hits - expected) < 3 * np.sqrt(var), (hits, expected)
