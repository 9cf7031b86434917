"""SCENMED's hand-crafted nucleus features: 5 shape + LBP + PFTAS + Zernike (mahotas).

Two layouts (``methods/scenmed_and_nucleus_prediction.md`` §1.6):

- ``paper`` (default): the paper's 104 features for a nucleus (99 for a patch, no shape):
  area as a pixel count, eccentricity, major and minor axis, roundness; LBP radius 3,
  8 points (36 rotation-invariant bins); PFTAS (54); Zernike moments radius 8, degree 4 (9).
- ``code``: the public code's 120 (115): area as the integrated intensity, LBP radius 4,
  Zernike degree 8 (25).

As in the code, the image is clipped to 4095, cast to uint16, and the nucleus is the
non-zero pixels (crops from :func:`~ainu_engine.scenmed.segment_field` are 0 outside).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LAYOUTS", "FAMILIES", "feature_names", "nucleus_features"]

LAYOUTS = {
    "paper": {"area": "pixels", "lbp_radius": 3, "zernike_degree": 4},
    "code": {"area": "intensity", "lbp_radius": 4, "zernike_degree": 8},
}
FAMILIES = ("shape", "lbp", "pftas", "zernike")
_SHAPE = ("area", "eccentricity", "semi_major_axis", "semi_minor_axis", "roundness")


def _n_zernike(degree: int) -> int:
    return sum(n // 2 + 1 for n in range(degree + 1))


def feature_names(layout: str = "paper", *, shape: bool = True) -> list[str]:
    """Column names in order: ``shape_*``, ``lbp_00…35``, ``pftas_00…53``, ``zernike_*``.

    Parameters
    ----------
    layout : {"paper", "code"}
        104 features (the paper's) or 120 (the code's).
    shape : bool, default True
        With the 5 shape features (patches have none).

    Returns
    -------
    list of str

    Examples
    --------

    >>> len(feature_names("paper")), len(feature_names("code")), len(feature_names(shape=False))
    (104, 120, 99)
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    nz = _n_zernike(LAYOUTS[layout]["zernike_degree"])
    names = [f"shape_{s}" for s in _SHAPE] if shape else []
    names += [f"lbp_{i:02d}" for i in range(36)]
    names += [f"pftas_{i:02d}" for i in range(54)]
    names += [f"zernike_{i:02d}" for i in range(nz)]
    return names


def nucleus_features(image: np.ndarray, *, layout: str = "paper", shape: bool = True) -> np.ndarray:
    """The feature vector (float64) of one crop or patch, in :func:`feature_names` order.

    ``shape=False`` leaves out the 5 shape features (the paper's patch features).

    Parameters
    ----------
    image : ndarray, shape (S, S)
        A crop or patch (12-bit values, 0 outside the nucleus).
    layout : {"paper", "code"}
        See :func:`feature_names`.
    shape : bool, default True
        With the shape features.

    Returns
    -------
    ndarray, float64

    Raises
    ------
    ValueError
        An unknown layout, or not a 2-D image.
    """
    try:
        import mahotas
        from mahotas.features import shape as mshape
    except ImportError as err:  # pragma: no cover - mahotas is a dependency
        raise ImportError("widefield features need mahotas: pip install mahotas") from err
    cfg = LAYOUTS.get(layout)
    if cfg is None:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    img = np.clip(np.asarray(image, dtype=np.float64), 0, 4095).astype(np.uint16)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    mask = img > 0
    parts = []
    if shape:
        if mask.sum() < 2:
            parts.append(np.full(5, np.nan))
        else:
            area = float(img[mask].sum()) if cfg["area"] == "intensity" else float(mask.sum())
            major, minor = mshape.ellipse_axes(mask)
            parts.append(
                np.array(
                    [area, mshape.eccentricity(mask), major, minor, mshape.roundness(mask)],
                    float,
                )
            )
    parts.append(mahotas.features.lbp(img, cfg["lbp_radius"], 8, ignore_zeros=True))
    parts.append(mahotas.features.pftas(img))
    parts.append(mahotas.features.zernike_moments(img, 8, degree=cfg["zernike_degree"]))
    return np.concatenate([np.asarray(p, float) for p in parts])
