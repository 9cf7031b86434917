"""The h-maxima of a small float image (scikit-image's ``h_maxima`` with its 3x3 footprint),
by a sequential reconstruction by dilation: the same pixels, in microseconds where scikit-image's
general n-D implementation takes a couple of milliseconds on a nucleus' 60x60 distance map —
half of a small nucleus' preparation, once per nucleus (the field check)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["h_maxima", "reconstruct_by_dilation"]


@numba.njit(cache=True, nogil=True)
def _sweep(rec, mask, step):  # pragma: no cover - compiled
    """One raster pass (``step`` 1: from the top left, the neighbours above and to the left;
    -1: from the bottom right, those below and to the right); whether a pixel rose."""
    h, w = rec.shape
    changed = False
    rows = range(h) if step == 1 else range(h - 1, -1, -1)
    for i in rows:
        cols = range(w) if step == 1 else range(w - 1, -1, -1)
        for j in cols:
            v = rec[i, j]
            jp, ip = j - step, i - step
            if 0 <= jp < w:
                v = max(v, rec[i, jp])
            if 0 <= ip < h:
                for jj in range(max(0, j - 1), min(w, j + 2)):
                    v = max(v, rec[ip, jj])
            v = min(v, mask[i, j])
            if v > rec[i, j]:
                rec[i, j] = v
                changed = True
    return changed


@numba.njit(cache=True, nogil=True)
def reconstruct_by_dilation(seed, mask):  # pragma: no cover - compiled
    """Morphological reconstruction by dilation of ``seed`` under ``mask`` (2-D, float64, seed
    <= mask, 8-connected): raster and anti-raster passes until nothing changes (Vincent 1993).
    Only maxima and minima of the inputs' values are taken, so the result is exact.

    Parameters
    ----------
    seed, mask : 2-D float64 arrays of one shape

    Returns
    -------
    2-D float64 array
    """
    rec = np.minimum(seed, mask)
    while True:
        up = _sweep(rec, mask, 1)
        down = _sweep(rec, mask, -1)
        if not (up or down):
            return rec


def h_maxima(image: np.ndarray, h: float) -> np.ndarray:
    """The maxima of height >= ``h`` of a 2-D float image (and its global maxima), as
    ``skimage.morphology.h_maxima(image, h)`` finds them with its default footprint: the image
    lowered by ``h`` (less a rounding margin of 2 float64 resolutions times the value),
    reconstructed by dilation under the image, and the pixels at least ``h`` above the
    reconstruction.

    Parameters
    ----------
    image : 2-D array
        Converted to float64.
    h : float
        Positive.

    Returns
    -------
    2-D uint8 array
        1 at the maxima.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((5, 9)); img[2, 2], img[2, 6] = 3.0, 1.0
    >>> np.argwhere(h_maxima(img, 2.0)).tolist()
    [[2, 2]]
    """
    image = np.ascontiguousarray(image, np.float64)
    if image.ndim != 2:
        raise ValueError(f"h_maxima takes a 2-D image, got {image.ndim} dimensions")
    if h <= 0:
        raise ValueError(f"h must be positive, got {h!r}")
    if image.size == 0 or h > np.ptp(image):
        return np.zeros(image.shape, np.uint8)
    resolution = 2 * np.finfo(np.float64).resolution * np.abs(image)
    rec = reconstruct_by_dilation(image - h - resolution, image)
    return ((image - rec) >= h).astype(np.uint8)
