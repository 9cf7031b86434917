"""Patches of a high-magnification render (AINU, Extended Data Fig. 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._render import Rendered

__all__ = ["Patch", "extract_patches", "scale_channels"]


@dataclass
class Patch:
    """One S x S patch: its pixels, its place in the render and in nm.

    Attributes
    ----------
    image : ndarray, shape (C, S, S), float32
        The pixels.
    row, col : int
        Its top row and left column in the render.
    origin_nm : (float, float)
        The corner of its pixel (0, 0), nm.
    occupied_fraction : float
        The fraction of its pixels that contain localizations.
    """

    image: np.ndarray
    row: int
    col: int
    origin_nm: tuple[float, float]
    occupied_fraction: float


def extract_patches(
    rendered: Rendered, size: int = 512, *, min_occupied: float = 0.75
) -> list[Patch]:
    """Non-overlapping ``size`` x ``size`` patches of a raw render, kept when more than
    ``min_occupied`` of their pixels contain localizations.

    A pixel "contains localizations" when any channel is > 0 there, i.e. it lies inside the
    truncated kernel window of at least one localization. Use a raw render (``size=0`` in
    the RenderSpec) at high magnification (the paper: x30, 5.33 nm pixels; S = 256, 512 or
    768). Patches start at the render's top-left corner.

    Parameters
    ----------
    rendered : Rendered
        A raw render.
    size : int, default 512
        The patch side (px).
    min_occupied : float, default 0.75
        The fraction of pixels with localizations a patch needs.

    Returns
    -------
    list of Patch

    Examples
    --------
    >>> from ainu_engine.io import read
    >>> from ainu_engine.render import RenderSpec, render, extract_patches
    >>> r = render(read("examples/data/nucleus.parquet"),
    ...            RenderSpec(pixel_nm=20, sigma_nm=40, size=0), device="cpu")
    >>> patches = extract_patches(r, 128, min_occupied=0.75)
    >>> all(p.image.shape == (1, 128, 128) and p.occupied_fraction > 0.75 for p in patches)
    True
    """
    if rendered.raw_shape != rendered.image.shape:
        raise ValueError("extract patches from a raw render (RenderSpec(size=0))")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size!r}")
    if not 0.0 <= min_occupied < 1.0:
        raise ValueError(f"min_occupied must lie in [0, 1), got {min_occupied!r}")
    img = rendered.image
    occupied = (img > 0).any(axis=0)
    _, h, w = img.shape
    out = []
    for r in range(0, h - size + 1, size):
        for c in range(0, w - size + 1, size):
            frac = float(occupied[r : r + size, c : c + size].mean())
            if frac > min_occupied:
                p = rendered.pixel_nm
                out.append(
                    Patch(
                        img[:, r : r + size, c : c + size].copy(),
                        r,
                        c,
                        (rendered.origin_nm[0] + c * p, rendered.origin_nm[1] + r * p),
                        frac,
                    )
                )
    return out


def scale_channels(img: np.ndarray, scaling: str, percentile: float = 99.5) -> np.ndarray:
    """Per-channel intensity scaling of a (C, H, W) float32 image in place, as ``render`` does:
    ``max`` divides by the channel maximum, ``percentile`` by that percentile and clips to [0, 1],
    ``none`` leaves it. Returns ``img``.

    Parameters
    ----------
    img : ndarray, shape (C, H, W), float32
        The image (scaled in place).
    scaling : {"max", "percentile", "none"}
        See above.
    percentile : float, default 99.5
        For ``percentile``.

    Returns
    -------
    ndarray
        ``img``.
    """
    if scaling == "none":
        return img
    for k in range(img.shape[0]):
        ref = float(img[k].max()) if scaling == "max" else float(np.percentile(img[k], percentile))
        if ref > 0:
            img[k] /= np.float32(ref)
            if scaling == "percentile":
                np.clip(img[k], 0.0, 1.0, out=img[k])
    return img
