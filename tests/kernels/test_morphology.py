"""h-maxima against scikit-image's, pixel for pixel: distance maps of random masks (what the
field check gives it), random images, plateaus and ties."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import h_maxima as skimage_h_maxima
from skimage.morphology import reconstruction

from ainu_engine.kernels import h_maxima, reconstruct_by_dilation


def _masks(rng, n):
    for _ in range(n):
        shape = tuple(rng.integers(8, 90, 2))
        blobs = ndi.gaussian_filter(rng.random(shape), rng.uniform(1, 6)) > rng.uniform(0.45, 0.55)
        yield ndi.binary_fill_holes(blobs)


@pytest.mark.parametrize("seed", range(4))
def test_the_distance_maps_maxima_are_scikit_images(seed):
    rng = np.random.default_rng(seed)
    for mask in _masks(rng, 25):
        dist = ndi.distance_transform_edt(mask)
        for h in (1.0, 2.5, rng.uniform(0.5, 6)):
            np.testing.assert_array_equal(h_maxima(dist, h), skimage_h_maxima(dist, h))


@pytest.mark.parametrize("seed", range(3))
def test_random_images_plateaus_and_the_reconstruction(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        img = rng.random(tuple(rng.integers(1, 40, 2)))
        img = np.round(img * rng.integers(2, 9)) / 3.0  # plateaus and ties
        for h in (0.2, 1.0 / 3.0, 1.0):
            np.testing.assert_array_equal(h_maxima(img, h), skimage_h_maxima(img, h))
        seed_img = img - rng.uniform(0, 1, img.shape)
        np.testing.assert_array_equal(reconstruct_by_dilation(seed_img, img),
                                      reconstruction(seed_img, img, method="dilation"))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        h_maxima(np.zeros(5), 1.0)
    with pytest.raises(ValueError, match="positive"):
        h_maxima(np.zeros((3, 3)), 0.0)
    assert not h_maxima(np.ones((3, 3)), 1.0).any()  # h above the image's range
