"""SCENMED's features: the layouts' sizes and order, and each family equal to mahotas called
with the specification's parameters."""

from __future__ import annotations

import mahotas
import numpy as np
import pytest

from ainu_engine.scenmed import feature_names, nucleus_features


def _nucleus(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:128, :128]
    m = ((yy - 60) / 40) ** 2 + ((xx - 66) / 28) ** 2 < 1
    return np.where(m, rng.integers(300, 5000, (128, 128)), 0).astype(np.float64), m


def test_layout_sizes():
    assert len(feature_names("paper")) == 104 and len(feature_names("paper", shape=False)) == 99
    assert len(feature_names("code")) == 120 and len(feature_names("code", shape=False)) == 115
    with pytest.raises(ValueError, match="layout"):
        feature_names("other")


@pytest.mark.parametrize("layout, radius, degree", [("paper", 3, 4), ("code", 4, 8)])
def test_families_equal_mahotas(layout, radius, degree):
    img, m = _nucleus()
    v = nucleus_features(img, layout=layout)
    names = feature_names(layout)
    u16 = np.clip(img, 0, 4095).astype(np.uint16)  # the code clips to 12 bit
    part = {f: v[[i for i, n in enumerate(names) if n.startswith(f + "_")]] for f in
            ("shape", "lbp", "pftas", "zernike")}  # fmt: skip
    np.testing.assert_allclose(part["lbp"], mahotas.features.lbp(u16, radius, 8, ignore_zeros=True),
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(part["pftas"], mahotas.features.pftas(u16), rtol=1e-6)
    zern = mahotas.features.zernike_moments(u16, 8, degree=degree)
    np.testing.assert_allclose(part["zernike"], zern, rtol=1e-6)
    area = u16[m].sum() if layout == "code" else m.sum()
    assert part["shape"][0] == pytest.approx(area)
    # mahotas' ellipse_axes (as the code uses them): the semi-axes, 40 and 28 px
    assert part["shape"][2] == pytest.approx(40, rel=0.05)
    assert part["shape"][3] == pytest.approx(28, rel=0.05)
    assert 0 < part["shape"][1] < 1 and 0 < part["shape"][4] <= 1


def test_patch_features_have_no_shape():
    img, _ = _nucleus(1)
    full = nucleus_features(img)
    patch = nucleus_features(img, shape=False)
    np.testing.assert_allclose(patch, full[5:])
