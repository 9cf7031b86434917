"""Attribution against ground-truth structures, overlays, and the paper's nucleoli-replacement
test (Fig. 4: replace the nucleoli by regions cloned from non-nucleolar parts of the same
nucleus and see whether the calls change)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = [
    "truth_for",
    "structure_masks",
    "outline_masks",
    "rim_localizations",
    "replace_rim",
    "structure_fractions",
    "replace_nucleoli",
    "write_overlay",
]


def truth_for(path: str | os.PathLike) -> dict | None:
    """The simulator's ground truth beside a data file (``NAME.truth.json``), or None.

    Parameters
    ----------
    path : str or os.PathLike
        A data file.

    Returns
    -------
    dict or None
    """
    p = Path(path)
    cand = p.with_name(p.name.split(".")[0] + ".truth.json")
    return json.loads(cand.read_text()) if cand.is_file() else None


def structure_masks(
    truth_nucleus: dict, *, shape: tuple[int, int], origin_nm, pixel_nm: float
) -> dict:
    """Boolean (H, W) masks of ``nucleus`` (outline), ``nucleoli`` and ``periphery`` (a band
    inside the outline as wide as the simulator's periphery) on an image grid whose pixel
    (i, j) covers [x0 + j·p, x0 + (j+1)·p) x [y0 + i·p, ...) nm (a Rendered's origin/pixel)."""
    from scipy import ndimage

    from ainu_engine.kernels import polygon_mask

    def mask(poly):
        px = (np.asarray(poly, np.float64) - np.asarray(origin_nm, np.float64)) / pixel_nm
        return polygon_mask(px, shape)

    nucleus = mask(truth_nucleus["outline_nm"])
    nucleoli = np.zeros(shape, bool)
    for poly in truth_nucleus.get("nucleoli_nm", []):
        nucleoli |= mask(poly)
    width_nm = (truth_nucleus.get("params", {}).get("cell_state", {}) or {}).get(
        "periphery_width_nm", 500.0
    )
    steps = max(1, int(round(width_nm / pixel_nm)))
    inner = ndimage.binary_erosion(nucleus, iterations=steps)
    return {"nucleus": nucleus, "nucleoli": nucleoli & nucleus, "periphery": nucleus & ~inner}


def outline_masks(
    outline_nm, *, rim_nm: float, shape: tuple[int, int], origin_nm, pixel_nm: float
) -> dict:
    """Boolean (H, W) masks of a nucleus' ``nucleus`` (its outline: an ROI or the one detection
    found) and ``rim`` (the band ``rim_nm`` wide inside the outline: the nuclear envelope and what
    lies along it) on a rendered image's grid (as :func:`structure_masks`).

    Parameters
    ----------
    outline_nm : array (V, 2)
        The outline (nm).
    rim_nm : float
        The band's width (nm).
    shape : (int, int)
        The image's (H, W).
    origin_nm : (float, float)
        The image's origin (a Rendered's).
    pixel_nm : float
        Its pixel.

    Returns
    -------
    dict of str to ndarray
    """
    from scipy import ndimage

    from ainu_engine.kernels import polygon_mask

    px = (np.asarray(outline_nm, np.float64) - np.asarray(origin_nm, np.float64)) / pixel_nm
    nucleus = polygon_mask(px, shape)
    inner = ndimage.binary_erosion(nucleus, iterations=max(1, int(round(rim_nm / pixel_nm))))
    return {"nucleus": nucleus, "rim": nucleus & ~inner}


def rim_localizations(x, y, outline_nm, rim_nm: float) -> np.ndarray:
    """Which localizations lie in the band ``rim_nm`` wide along the outline (inside it, or
    outside it: the envelope's localizations spread both ways), by their distance to the
    outline's edges.

    Parameters
    ----------
    x, y : array
        Coordinates (nm).
    outline_nm : array (V, 2)
        The outline (nm).
    rim_nm : float
        The band's width (nm).

    Returns
    -------
    ndarray of bool
    """
    p = np.asarray(outline_nm, np.float64)
    a, b = p, np.roll(p, -1, axis=0)
    ab = b - a
    len2 = np.maximum((ab**2).sum(axis=1), 1e-12)
    pts = np.column_stack([np.asarray(x, np.float64), np.asarray(y, np.float64)])
    near = np.zeros(len(pts), bool)
    for s in range(0, len(pts), 4096):  # (points x edges) in chunks
        q = pts[s : s + 4096, None, :]
        t = np.clip(((q - a) * ab).sum(axis=2) / len2, 0.0, 1.0)
        d2 = ((q - (a + t[..., None] * ab)) ** 2).sum(axis=2)
        near[s : s + 4096] = d2.min(axis=1) <= rim_nm**2
    return near


def replace_rim(locs, outline_nm, *, rim_nm: float, rng: np.random.Generator,
                jitter_nm: float = 20.0):  # fmt: skip
    """A copy of one nucleus' localizations whose rim localizations (:func:`rim_localizations`)
    are replaced, one for one, by localizations drawn from the interior (with replacement, moved
    by a Gaussian of ``jitter_nm`` so that no two coincide): the same number of localizations,
    none left along the outline — the rim analogue of the paper's nucleoli replacement. None
    when the nucleus has no rim or no interior localization.

    Parameters
    ----------
    locs : Localizations
        One nucleus.
    outline_nm : array (V, 2)
        Its outline (nm).
    rim_nm : float
        The band's width (nm).
    rng : numpy.random.Generator
        The draws.
    jitter_nm : float
        The draws' displacement (sd, nm).

    Returns
    -------
    Localizations or None
    """
    rim = rim_localizations(locs.x_nm, locs.y_nm, outline_nm, rim_nm)
    inner = np.flatnonzero(~rim)
    if not rim.any() or not len(inner):
        return None
    out = locs[np.arange(locs.n)]  # a copy
    src = rng.choice(inner, size=int(rim.sum()), replace=True)
    out.x_nm[rim] = locs.x_nm[src] + rng.normal(0.0, jitter_nm, len(src))
    out.y_nm[rim] = locs.y_nm[src] + rng.normal(0.0, jitter_nm, len(src))
    return out


def structure_fractions(amap: np.ndarray, masks: dict) -> dict:
    """For each structure: the fraction of the positive attribution inside the nucleus that falls
    in it, its area fraction of the nucleus, and their ratio (enrichment; > 1 = the attribution
    concentrates there)."""
    nucleus = masks["nucleus"]
    pos = np.clip(amap, 0, None) * nucleus
    total = float(pos.sum())
    area = float(nucleus.sum())
    out = {}
    for name, m in masks.items():
        if name == "nucleus":
            continue
        frac = float(pos[m].sum()) / total if total > 0 else float("nan")
        area_frac = float((m & nucleus).sum()) / area if area else float("nan")
        out[name] = {
            "positive_attribution_fraction": frac,
            "area_fraction": area_frac,
            "enrichment": frac / area_frac if area_frac else float("nan"),
        }
    return out


def replace_nucleoli(
    image: np.ndarray, masks: dict, *, rng: np.random.Generator, tries: int = 200
) -> np.ndarray:
    """A copy of ``image`` whose nucleoli are replaced, each by the pixels of a region of the
    same shape cloned from elsewhere in the same nucleus, outside every nucleolus (the paper's
    validation of the occlusion maps). A nucleolus with no such place is left as it is."""
    from scipy import ndimage

    out = image.copy()
    nucleus, nucleoli = masks["nucleus"], masks["nucleoli"]
    labels, n = ndimage.label(nucleoli)
    allowed = nucleus & ~ndimage.binary_dilation(nucleoli, iterations=2)
    h, w = nucleus.shape
    for k in range(1, n + 1):
        rows, cols = np.nonzero(labels == k)
        r0, c0 = rows.min(), cols.min()
        for _ in range(tries):
            dr = int(rng.integers(-r0, h - rows.max())) if h - rows.max() > -r0 else 0
            dc = int(rng.integers(-c0, w - cols.max())) if w - cols.max() > -c0 else 0
            if allowed[rows + dr, cols + dc].all():
                out[:, rows, cols] = image[:, rows + dr, cols + dc]
                break
    return out


#: the attribution colour map: positive (evidence for the call) blue, negative red, as in the
#: AINU paper's occlusion figures
ATTRIBUTION_CMAP = "RdBu"


def write_overlay(
    path: str | os.PathLike, image: np.ndarray, amap: np.ndarray, *, title: str = ""
) -> Path:
    """PNG: the rendered nucleus (channels averaged, grey) under the attribution in a diverging
    colour map centred on 0 — blue = evidence for the class, red = against, as in the paper's
    figures — with a colour bar that says so.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG.
    image : ndarray, shape (C, H, W)
        The model input.
    amap : ndarray, shape (H, W)
        The attribution.
    title : str
        The figure's title.

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    from ..io import atomic_path

    grey = np.asarray(image, np.float32).mean(axis=0)
    lim = float(np.abs(amap).max()) or 1.0
    fig = Figure(figsize=(8.4, 4))
    axes = fig.subplots(1, 2)
    axes[0].imshow(grey, cmap="gray")
    axes[0].set_title("render")
    axes[1].imshow(grey, cmap="gray")
    im = axes[1].imshow(amap, cmap=ATTRIBUTION_CMAP, vmin=-lim, vmax=lim, alpha=0.6)
    axes[1].set_title(title or "attribution")
    for ax in axes:
        ax.axis("off")
    bar = fig.colorbar(im, ax=axes[1], fraction=0.046)
    bar.set_label("blue: evidence for the class · red: against", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
