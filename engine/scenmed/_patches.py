"""Patches of nucleus crops: SCENMED's 32 × 32 patches (stride 16, ≥ 85 % nucleus, no
over-exposure) and PatchNet's small patches (11² / 17²)."""

from __future__ import annotations

import numpy as np

__all__ = ["patch_offsets", "extract_patches"]


def patch_offsets(side: int, size: int, stride: int, *, code_layout: bool = False) -> list[int]:
    """Top-left offsets along one axis: ``0, stride, …`` up to ``side - size`` inclusive.

    ``code_layout`` reproduces the public code's loop (``while offset < side - size``), which
    never uses the last offset (6 × 6 instead of 7 × 7 positions for 32 px in 128 px).

    Parameters
    ----------
    side, size, stride : int
        The crop's side, the patch's side and the stride (px).
    code_layout : bool
        The public code's loop.

    Returns
    -------
    list of int

    Examples
    --------
    >>> len(patch_offsets(128, 32, 16)), len(patch_offsets(128, 32, 16, code_layout=True))
    (7, 6)
    """
    if size > side:
        return []
    stop = side - size if code_layout else side - size + 1
    return list(range(0, stop, stride))


def extract_patches(
    crop: np.ndarray,
    *,
    size: int = 32,
    stride: int = 16,
    min_occupied: float = 0.85,
    overexposed_adu: float = 3700.0,
    overexposed_fraction: float = 0.25,
    code_layout: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The patches of one crop (pixels outside the nucleus are 0) that are at least
    ``min_occupied`` nucleus (non-zero) and not over-exposed (fewer than
    ``overexposed_fraction`` of their pixels above ``overexposed_adu``).

    Parameters
    ----------
    crop : ndarray, shape (S, S)
        A centred crop (:func:`segment_field`).
    size, stride : int
        The patch's side and the stride (px).
    min_occupied : float
        The nucleus fraction a patch needs (the paper 0.85, the code 0.8).
    overexposed_adu, overexposed_fraction : float
        The over-exposure rule.
    code_layout : bool
        The public code's offsets (:func:`patch_offsets`).

    Returns
    -------
    patches : ndarray, shape (N, size, size), float32
    offsets : ndarray, shape (N, 2), int
        Row, column of each patch.

    Examples
    --------

    >>> import numpy as np
    >>> crop = np.zeros((128, 128), np.float32); crop[16:112, 16:112] = 1000
    >>> p, off = extract_patches(crop)
    >>> p.shape, off[0].tolist()
    ((25, 32, 32), [16, 16])
    """
    crop = np.asarray(crop, dtype=np.float32)
    if crop.ndim != 2:
        raise ValueError(f"expected a 2-D crop, got shape {crop.shape}")
    if not 0.0 <= min_occupied <= 1.0:
        raise ValueError(f"min_occupied must lie in [0, 1], got {min_occupied!r}")
    from numpy.lib.stride_tricks import sliding_window_view

    rows = patch_offsets(crop.shape[0], size, stride, code_layout=code_layout)
    cols = patch_offsets(crop.shape[1], size, stride, code_layout=code_layout)
    if not rows or not cols:
        return np.zeros((0, size, size), np.float32), np.zeros((0, 2), int)
    win = sliding_window_view(crop, (size, size))[np.ix_(rows, cols)]  # (R, C, s, s)
    occ = (win > 0).mean(axis=(2, 3))
    over = (win > overexposed_adu).mean(axis=(2, 3))
    keep = (occ >= min_occupied) & (over < overexposed_fraction)
    r, c = np.nonzero(keep)
    offsets = np.stack([np.asarray(rows)[r], np.asarray(cols)[c]], axis=1)
    return np.ascontiguousarray(win[r, c]), offsets
