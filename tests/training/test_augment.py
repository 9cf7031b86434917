"""Augmentations keep shape, pixel scale, aspect ratio and sample order (hence labels)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")

from ainu_engine.training.augment import AugmentConfig, augment  # noqa: E402

NONE = AugmentConfig(flip=0, rot90=False, rotate=0, intensity=0, contrast=0, gridmask=0)


@pytest.fixture(autouse=True)
def _threads(torch_threads):
    """Two torch threads for every test here (tests/training/conftest.py)."""


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_shape_dtype_and_seed():
    x = torch.rand(6, 2, 48, 48)
    a = augment(x, generator=gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, augment(x, generator=gen(1)))
    assert not torch.equal(a, augment(x, generator=gen(2)))
    assert torch.equal(augment(x, NONE, generator=gen(1)), x)


def test_dihedral_transforms_keep_each_sample_in_its_place():
    x = torch.rand(8, 1, 16, 16)
    cfg = AugmentConfig(flip=0.5, rot90=True, rotate=0, intensity=0, contrast=0, gridmask=0)
    out = augment(x, cfg, generator=gen(3))
    for i in range(8):
        variants = [
            torch.rot90(v, k, dims=(-2, -1))
            for v in (x[i], x[i].flip(-1), x[i].flip(-2), x[i].flip(-1).flip(-2))
            for k in range(4)
        ]
        assert any(torch.equal(out[i], v) for v in variants)  # sample i is still sample i
        assert torch.isclose(out[i].sum(), x[i].sum())


def _dot(h, w, cy, cx, s=1.5):
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))


def _centroid(img):
    h, w = img.shape
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    m = img.sum()
    return float((img * yy).sum() / m), float((img * xx).sum() / m)


@pytest.mark.parametrize("h,w", [(64, 64), (48, 80)])
def test_rotation_keeps_distances_in_pixels(h, w):
    """A dot 15 px from the centre stays 15 px from it (±0.5 px) after arbitrary rotations,
    on square and non-square images: no scaling and no anisotropic distortion."""
    cfg = AugmentConfig(
        flip=0, rot90=False, rotate=1.0, rotate_deg=180, intensity=0, contrast=0, gridmask=0
    )
    x = _dot(h, w, h / 2, w / 2 + 15).expand(16, 1, h, w).clone()
    out = augment(x, cfg, generator=gen(5))
    for i in range(16):
        cy, cx = _centroid(out[i, 0])
        assert math.hypot(cy - h / 2, cx - w / 2) == pytest.approx(15, abs=0.5)
        assert float(out[i, 0].sum()) == pytest.approx(
            float(x[i, 0].sum()), rel=0.02
        )  # nothing stretched


def test_rotation_fills_the_corners():
    cfg = AugmentConfig(
        flip=0,
        rot90=False,
        rotate=1.0,
        rotate_deg=45,
        intensity=0,
        contrast=0,
        gridmask=0,
        fill=0.75,
    )
    x = torch.zeros(4, 1, 32, 32)
    out = augment(x, cfg, generator=gen(7))
    corners = out[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners > 0.1).float().mean() > 0.5  # rotated-in corners take the fill value


def test_gridmask_masks_the_stated_fraction():
    cfg = AugmentConfig(
        flip=0,
        rot90=False,
        rotate=0,
        intensity=0,
        contrast=0,
        gridmask=1.0,
        grid_ratio=0.3,
        fill=-1.0,
    )
    x = torch.ones(20, 2, 128, 128)
    out = augment(x, cfg, generator=gen(9))
    frac = (out == -1).float().mean(dim=(1, 2, 3))
    assert torch.all((out == -1) | (out == 1))
    assert frac.mean() == pytest.approx(0.09, abs=0.03)  # ~ratio² of each grid unit
    assert torch.equal(out[:, 0] == -1, out[:, 1] == -1)  # the same mask on all channels


def test_intensity_jitter_never_goes_negative():
    cfg = AugmentConfig(flip=0, rot90=False, rotate=0, intensity=0.5, contrast=0.9, gridmask=0)
    out = augment(torch.rand(16, 1, 16, 16), cfg, generator=gen(11))
    assert out.min() >= 0


def test_rejects_non_batches():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        augment(torch.rand(3, 16, 16))
