"""The paper's own computation, for fidelity checks: scikit-learn KernelDensity evaluated at
every pixel centre (slow: minutes for 1e5 localizations)."""

from __future__ import annotations

import numpy as np

from ..errors import RenderError
from ..io import Localizations
from ._render import Rendered, channel_index, nucleus_mask
from ._spec import RenderSpec

__all__ = ["render_sklearn"]


def render_sklearn(
    locs: Localizations,
    spec: RenderSpec,
    *,
    max_localizations: int = 200_000,
    like: Rendered | None = None,
) -> Rendered:
    """Render with ``sklearn.neighbors.KernelDensity(bandwidth=sigma).score_samples`` on the
    pixel centres (untruncated, exact), as AINU did; raw render only.

    The grid is that of ``like`` when given (to compare with a fast render), else the one
    :func:`ainu_engine.render.render` would use. Values follow ``spec.normalization``:
    ``sklearn`` gives exp(score_samples) (nm^-2), ``density`` multiplies by N·p² so that it
    is directly comparable with the KDE kernels. Needs scikit-learn (the ``train`` or
    ``bench`` extra).

    Parameters
    ----------
    locs : Localizations
        The nucleus.
    spec : RenderSpec
        A raw-render spec (``size=0``) with a fixed bandwidth.
    max_localizations : int
        Refuse more (the exact computation is O(N·pixels)).
    like : Rendered, optional
        Render on its grid.

    Returns
    -------
    Rendered

    Raises
    ------
    ainu_engine.errors.RenderError
        A resized or precision-bandwidth spec, too many localizations, or no scikit-learn.
    """
    from ..optional import require

    KernelDensity = require(  # noqa: N806 - the class, imported where it is used
        "sklearn.neighbors", "bench", why="method 'sklearn'", error=RenderError
    ).KernelDensity
    if spec.sigma_from_precision:
        raise RenderError(
            "method 'sklearn' uses one fixed bandwidth; set sigma_from_precision=False"
        )
    if locs.n > max_localizations:
        raise RenderError(
            f"method 'sklearn' is the slow reference: {locs.n:,} localizations "
            f"exceed max_localizations={max_localizations:,}",
            path=locs.meta.source_path,
            hint="use method 'kde' (exact to 2e-4)",
        )
    if like is None:
        from ._render import render

        like = render(locs, spec.raw(), device="cpu")
    c_n, h, w = like.raw_shape
    p = like.pixel_nm
    chan = channel_index(locs, spec)
    xs = like.origin_nm[0] + (np.arange(w) + 0.5) * p
    ys = like.origin_nm[1] + (np.arange(h) + 0.5) * p
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    img = np.zeros((c_n, h, w), np.float64)
    counts = {}
    for k in range(c_n):
        sel = chan == k
        counts[k] = int(sel.sum())
        if not counts[k]:
            continue
        pts = np.column_stack([locs.x_nm[sel], locs.y_nm[sel]]).astype(np.float64)
        kde = KernelDensity(bandwidth=spec.sigma_nm, kernel="gaussian").fit(pts)
        dens = np.exp(kde.score_samples(grid)).reshape(h, w)
        img[k] = dens if spec.normalization == "sklearn" else dens * counts[k] * p * p
    sel = chan >= 0
    mask = nucleus_mask(
        locs.x_nm[sel].astype(np.float64),
        locs.y_nm[sel].astype(np.float64),
        shape=(h, w),
        origin_nm=like.origin_nm,
        pixel_nm=p,
        cell_nm=spec.mask_cell_nm,
    )
    return Rendered(
        img.astype(np.float32),
        like.origin_nm,
        p,
        mask,
        float(mask.sum()) * p * p / 1e6,
        spec,
        "cpu",
        "scikit-learn KernelDensity",
        counts,
        (c_n, h, w),
    )
