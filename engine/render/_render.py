"""render(): localizations -> (C, H, W) float32 image, on the CPU or a CUDA GPU."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import RenderError
from ..io import Localizations
from ._spec import RenderSpec

__all__ = [
    "Rendered",
    "render",
    "render_grid",
    "finish_render",
    "channel_index",
    "kde_sigma",
    "select_device",
    "nucleus_mask",
    "MAX_PIXELS",
]

#: Largest raw render (pixels x channels) accepted: 2**28 float32 values = 1 GiB.
MAX_PIXELS = 2**28


@dataclass
class Rendered:
    """A rendered nucleus and what is needed to map its pixels back to nm.

    Attributes
    ----------
    image : numpy.ndarray
        float32 (C, H, W). Pixel (i, j) covers [x0 + j·p, x0 + (j+1)·p) x [y0 + i·p, ...).
    origin_nm : (float, float)
        (x0, y0): the corner of pixel (0, 0) in nm.
    pixel_nm : float
        p, the same on both axes.
    mask : numpy.ndarray
        bool (H, W): pixels inside the nucleus.
    area_um2 : float
        Nucleus area (mask of the raw render) in µm².
    spec : RenderSpec
    device : str
        "cpu" or "cuda".
    device_note : str or None
        Why ``device="auto"`` chose the CPU (never silent).
    n_localizations : dict
        Localizations rendered per image channel.
    raw_shape : tuple
        (C, H, W) of the raw render before resizing.
    seconds : dict
        Time of each step.
    warnings : list of str
        Scale checks (the coordinates are probably not in nm).
    """

    image: np.ndarray
    origin_nm: tuple[float, float]
    pixel_nm: float
    mask: np.ndarray
    area_um2: float
    spec: RenderSpec
    device: str
    device_note: str | None
    n_localizations: dict[int, int]
    raw_shape: tuple[int, int, int]
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def pixel_to_nm(self, i: float, j: float) -> tuple[float, float]:
        """Centre of pixel (row i, column j) in nm."""
        return (
            self.origin_nm[0] + (j + 0.5) * self.pixel_nm,
            self.origin_nm[1] + (i + 0.5) * self.pixel_nm,
        )

    def sidecar(self) -> dict:
        """JSON-serialisable description (written beside image files)."""
        return {
            "render_spec": self.spec.to_dict(),
            "render_spec_hash": self.spec.hash(),
            "origin_nm": [float(v) for v in self.origin_nm],
            "pixel_nm": float(self.pixel_nm),
            "shape": list(self.image.shape),
            "raw_shape": list(self.raw_shape),
            "area_um2": round(float(self.area_um2), 4),
            "device": self.device,
            "n_localizations": {str(k): v for k, v in self.n_localizations.items()},
            "pixel_convention": "pixel (i, j) covers [x0 + j*p, x0 + (j+1)*p) x [y0 + i*p, y0 + "
            "(i+1)*p)",
            "warnings": list(self.warnings),
        }


def select_device(device: str) -> tuple[str, str | None]:
    """Resolve ``auto|cpu|cuda`` to the device that will run, and a note when ``auto`` falls
    back to the CPU.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        What was asked for.

    Returns
    -------
    (str, str or None)
        The device, and the note (None when nothing fell back).

    Raises
    ------
    ValueError
        Another device name.
    ainu_engine.errors.RenderError
        ``cuda`` asked for where no CUDA GPU is usable.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cpu":
        return "cpu", None
    from ainu_engine.kernels import cuda_available

    if device == "cuda":
        if not cuda_available(allow_simulator=True):
            raise RenderError(
                "device 'cuda' requested but no CUDA GPU is available",
                hint="install the cuda12/cuda13 extra on a GPU machine, or use --device cpu",
            )
        return "cuda", None
    if cuda_available():
        return "cuda", None
    return "cpu", "no CUDA GPU found (numba.cuda.is_available() is False); rendering on the CPU"


def channel_index(locs: Localizations, spec: RenderSpec) -> np.ndarray:
    """The image channel (0..C-1) of each localization under ``spec.channels``; -1: not rendered.

    Parameters
    ----------
    locs : Localizations
        The localizations.
    spec : RenderSpec
        Its ``channels`` (None: one channel of everything).

    Returns
    -------
    ndarray of int
    """
    if spec.channels is None:
        return np.zeros(locs.n, np.int32)
    if locs.channel is None:
        return np.full(locs.n, spec.channels.index(0) if 0 in spec.channels else -1, np.int32)
    ids = locs.channel
    lo, hi = (int(ids.min()), int(ids.max())) if locs.n else (0, 0)
    if lo >= 0 and hi < 1 << 16:  # the usual small ids: one table lookup
        lut = np.full(hi + 1, -1, np.int32)
        for k, cid in enumerate(spec.channels):
            if 0 <= cid <= hi:
                lut[cid] = k
        return lut[ids]
    out = np.full(locs.n, -1, np.int32)
    for k, cid in enumerate(spec.channels):
        out[ids == cid] = k
    return out


def kde_sigma(locs: Localizations, spec: RenderSpec) -> np.ndarray:
    """The KDE bandwidth (nm): one value, or one per localization from its precision (floored).

    Parameters
    ----------
    locs : Localizations
        The localizations (their ``precision_nm`` with ``spec.sigma_from_precision``).
    spec : RenderSpec
        The bandwidth rule.

    Returns
    -------
    ndarray
        One value, or one per localization.
    """
    if not spec.sigma_from_precision:
        return np.array([spec.sigma_nm], np.float64)
    if locs.precision_nm is None:
        raise RenderError(
            "sigma_from_precision needs a localization precision column",
            path=locs.meta.source_path,
            found=f"columns {locs.columns}",
            hint="use a fixed --sigma-nm",
        )
    prec = locs.precision_nm.astype(np.float64)
    return np.where(np.isfinite(prec), np.maximum(prec, spec.sigma_floor_nm), spec.sigma_floor_nm)


def nucleus_mask(
    x: np.ndarray,
    y: np.ndarray,
    *,
    shape: tuple[int, int],
    origin_nm,
    pixel_nm: float,
    cell_nm: float = 250.0,
    roi_nm: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean (H, W) nucleus mask on a render grid.

    From ``roi_nm`` (a (K, 2) polygon in nm) when given; otherwise from the localizations:
    a coarse occupancy map (cells of ``cell_nm``, enlarged by 1.4x steps until the 90th
    percentile of the occupied cells' counts is >= 12), cells with at least max(2, 15 % of
    that percentile), morphological closing (2 cells), hole filling, and the
    largest connected component. Pixels are inside when their centre's cell is.

    Parameters
    ----------
    x, y : ndarray
        The localizations (nm).
    shape : (int, int)
        (H, W) of the render.
    origin_nm : (float, float)
        The render's corner.
    pixel_nm : float
        Its pixel.
    cell_nm : float, default 250
        The occupancy map's starting cell.
    roi_nm : ndarray (K, 2), optional
        A polygon that is the mask instead.

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    from scipy import ndimage

    from ainu_engine.kernels import grid_counts, polygon_mask

    h, w = shape
    if roi_nm is not None:
        poly = (np.asarray(roi_nm, np.float64) - np.asarray(origin_nm)) / pixel_nm
        return polygon_mask(poly, (h, w))
    if len(x) == 0:
        return np.zeros((h, w), bool)
    x0, y0 = origin_nm
    ext_w, ext_h = w * pixel_nm, h * pixel_nm
    cell = cell_nm
    for _ in range(12):  # coarsen until the dense cells hold >= 12 localizations
        nx, ny = max(1, math.ceil(ext_w / cell)), max(1, math.ceil(ext_h / cell))
        counts = grid_counts(x, y, origin=(x0, y0), cell=cell, shape=(ny, nx))
        occupied = counts[counts > 0]
        if np.percentile(occupied, 90) >= 12 or max(nx, ny) <= 8:
            break
        cell *= 1.4
    thr = max(2.0, 0.15 * np.percentile(occupied, 90))
    occ = counts >= thr
    occ = ndimage.binary_closing(
        np.pad(occ, 3), structure=ndimage.generate_binary_structure(2, 1), iterations=2
    )[3:-3, 3:-3]
    occ = ndimage.binary_fill_holes(occ)
    labels, n_lab = ndimage.label(occ)
    if n_lab > 1:
        sizes = ndimage.sum_labels(occ, labels, index=np.arange(1, n_lab + 1))
        occ = labels == (1 + int(np.argmax(sizes)))
    rows = np.minimum(((np.arange(h) + 0.5) * pixel_nm / cell).astype(np.int64), ny - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * pixel_nm / cell).astype(np.int64), nx - 1)
    return occ.take(rows, axis=0).take(cols, axis=1)  # faster than occ[np.ix_(rows, cols)]


#: The default RenderSpec: RenderSpec() (frozen, so one instance serves every call).
DEFAULT_SPEC = RenderSpec()


def render(
    locs: Localizations,
    spec: RenderSpec = DEFAULT_SPEC,
    *,
    device: str = "auto",
    roi_nm: np.ndarray | None = None,
) -> Rendered:
    """Render one nucleus's localizations into an image by a Gaussian KDE.

    Parameters
    ----------
    locs : Localizations
        The nucleus's localizations (nm).
    spec : RenderSpec
        Pixel size, bandwidth, truncation, channels, output size, scaling...
    device : {"auto", "cpu", "cuda"}
        ``auto`` uses a CUDA GPU when one is present and says so otherwise.
    roi_nm : array_like, optional
        Nucleus outline (K, 2) in nm: its bounding box (plus margin) is the render extent and
        it is the mask. Default: extent of the localizations, mask from their density.

    Returns
    -------
    Rendered
        float32 (C, H, W) image, origin and pixel size in nm, mask, area.

    Raises
    ------
    ainu_engine.errors.RenderError
        No localization in the selected channels, an image over :data:`MAX_PIXELS`, no GPU
        for ``device="cuda"``, no precision column for ``sigma_from_precision``.

    Notes
    -----
    The raw render evaluates the KDE at pixel centres with a square window of
    ``spec.truncate`` sigmas (see ``ainu_engine.kernels._kde``). With ``spec.size > 0`` it is
    area-resampled so that its longest side is ``size`` (one scale for both axes, so pixels
    stay square and the physical scale is recorded in ``pixel_nm``), padded to a square,
    scaled per channel, and pixels outside the mask set to ``spec.outside``.

    References
    ----------
    Carnevali et al., Nat. Mach. Intell. 6, 1021-1033 (2024), doi:10.1038/s42256-024-00883-x.

    Examples
    --------
    >>> from ainu_engine.io import read
    >>> from ainu_engine.render import RenderSpec, render
    >>> locs = read("examples/data/nucleus.parquet")
    >>> r = render(locs, RenderSpec(pixel_nm=50, sigma_nm=30, size=128), device="cpu")
    >>> r.image.shape, r.image.dtype.name, round(float(r.image.max()), 3)
    ((1, 128, 128), 'float32', 1.0)
    """
    from ainu_engine.kernels import render_kde_cpu

    t0 = time.perf_counter()
    dev, note = select_device(device)
    cam = None if locs.meta.camera_pixel_nm is None else locs.meta.camera_pixel_nm[0]
    try:
        pixel = spec.resolved_pixel_nm(cam)
    except ValueError as err:
        raise RenderError(str(err), path=locs.meta.source_path) from err
    chan = channel_index(locs, spec)
    sel = chan >= 0
    if not sel.any():
        want = "any channel" if spec.channels is None else f"channels {list(spec.channels)}"
        raise RenderError(
            f"no localizations in {want}",
            path=locs.meta.source_path,
            found=f"channels {sorted(locs.channel_counts())}",
        )
    sigma = kde_sigma(locs, spec)
    x, y = locs.x_nm, locs.y_nm  # float32: the CPU kernel reads them in place
    margin = spec.margin_nm if spec.margin_nm is not None else spec.truncate * float(sigma.max())
    xs, ys = (x, y) if sel.all() else (x[sel], y[sel])
    if roi_nm is not None:
        roi_nm = np.asarray(roi_nm, np.float64)
        lo, hi = roi_nm.min(axis=0), roi_nm.max(axis=0)
    else:
        lo = np.array([xs.min(), ys.min()], np.float64)
        hi = np.array([xs.max(), ys.max()], np.float64)
    warnings = scale_warnings(pixel, hi - lo)
    origin, h, w = render_grid(lo, hi, pixel, margin)
    c_n = spec.n_channels
    if c_n * h * w > MAX_PIXELS:
        raise RenderError(
            f"the raw render would be {c_n}x{h}x{w} pixels ({c_n * h * w * 4 / 2**30:.1f} GiB)",
            path=locs.meta.source_path,
            hint="use a larger pixel size or a ROI",
        )
    shape = (c_n, h, w)
    t1 = time.perf_counter()
    if dev == "cuda":
        from ainu_engine.kernels import render_kde_cuda

        raw = render_kde_cuda(
            x, y, sigma, chan, shape=shape, origin_nm=origin, pixel_nm=pixel, truncate=spec.truncate
        )
    else:
        raw = render_kde_cpu(
            x, y, sigma, chan, shape=shape, origin_nm=origin, pixel_nm=pixel, truncate=spec.truncate
        )
    counts = {k: int(np.count_nonzero(chan == k)) for k in range(c_n)}
    seconds = {"prepare": t1 - t0, "kde": time.perf_counter() - t1}
    return finish_render(
        raw, (float(origin[0]), float(origin[1])), pixel, spec, xs, ys, counts,
        roi_nm=roi_nm, device=dev, device_note=note, warnings=warnings, seconds=seconds,
    )  # fmt: skip


def render_grid(lo, hi, pixel_nm: float, margin_nm: float) -> tuple[np.ndarray, int, int]:
    """(origin (x0, y0), H, W) of the raw render of an extent [lo, hi] (nm): the extent plus the
    margin, out to whole pixels of a lattice anchored at 0 nm — so that two renders of one
    nucleus share their pixels, and a running render can grow without resampling.

    Parameters
    ----------
    lo, hi : array of 2 floats
        The extent's corners (x, y; nm).
    pixel_nm, margin_nm : float
        The pixel and the margin around the extent.

    Returns
    -------
    (ndarray, int, int)
        The origin (x0, y0), H and W.
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    origin = np.floor((lo - margin_nm) / pixel_nm) * pixel_nm
    w = int(math.ceil((hi[0] + margin_nm - origin[0]) / pixel_nm)) or 1
    h = int(math.ceil((hi[1] + margin_nm - origin[1]) / pixel_nm)) or 1
    return origin, h, w


def finish_render(
    raw: np.ndarray,
    origin_nm: tuple[float, float],
    pixel: float,
    spec: RenderSpec,
    xs: np.ndarray,
    ys: np.ndarray,
    counts: dict[int, int],
    *,
    roi_nm=None,
    device: str = "cpu",
    device_note: str | None = None,
    warnings: list[str] | None = None,
    seconds: dict | None = None,
) -> Rendered:
    """Everything :func:`render` does after the KDE, from a raw (C, H, W) render: the sklearn
    normalisation, the nucleus mask (from ``xs``, ``ys``, the rendered localizations, or
    ``roi_nm``), and with ``spec.size`` the resize, pad and scaling. ``raw`` is modified in
    place. Live sessions (:mod:`ainu_engine.live`) call it on their running render.

    Parameters
    ----------
    raw : ndarray, shape (C, H, W)
        The raw KDE (modified in place).
    origin_nm : (float, float)
        The corner of its pixel (0, 0).
    pixel : float
        Its pixel (nm).
    spec : RenderSpec
        How to finish.
    xs, ys : ndarray
        The rendered localizations (nm), for the mask.
    counts : dict of int to int
        Localizations per image channel.
    roi_nm : ndarray (K, 2), optional
        The nucleus outline (else the mask comes from the localizations).
    device : str
        Where the KDE ran.
    device_note : str, optional
        Why ``auto`` chose the CPU.
    warnings : list of str, optional
        Scale checks so far.
    seconds : dict, optional
        Time of the steps so far.

    Returns
    -------
    Rendered
    """
    from ainu_engine.kernels import fit_longest, pad_to_square, resize_area

    t2 = time.perf_counter()
    seconds = dict(seconds or {})
    warnings = list(warnings or [])
    shape = raw.shape
    _, h, w = shape
    if spec.normalization == "sklearn":
        for k in range(shape[0]):
            if counts.get(k):
                raw[k] /= np.float32(counts[k] * pixel * pixel)
    origin = (float(origin_nm[0]), float(origin_nm[1]))
    mask = nucleus_mask(
        xs, ys, shape=(h, w), origin_nm=origin, pixel_nm=pixel, cell_nm=spec.mask_cell_nm,
        roi_nm=roi_nm,
    )  # fmt: skip
    area = float(np.count_nonzero(mask)) * pixel * pixel / 1e6
    t3 = time.perf_counter()
    seconds["mask"] = t3 - t2
    dev, note = device, device_note
    if spec.size == 0:
        return Rendered(
            raw, origin, pixel, mask, area, spec, dev, note, counts, shape, seconds, warnings
        )
    h2, w2, scale = fit_longest(h, w, spec.size)
    img = resize_area(raw, h2, w2, scale)
    m2 = resize_area(mask[None], h2, w2, scale)[0] >= 0.5
    fill = spec.background if spec.outside is None else spec.outside
    img, (top, left) = pad_to_square(img, spec.size, fill)
    m3 = np.zeros((spec.size, spec.size), bool)
    m3[top : top + h2, left : left + w2] = m2
    out_pixel = pixel * scale
    out_origin = (float(origin[0] - left * out_pixel), float(origin[1] - top * out_pixel))
    _scale_intensity(img, m3, spec, h2, w2, top, left)
    if spec.outside is not None:
        img[:, ~m3] = np.float32(spec.outside)
    seconds["resize_scale"] = time.perf_counter() - t3
    return Rendered(
        img, out_origin, out_pixel, m3, area, spec, dev, note, counts, shape, seconds, warnings
    )


#: a nucleus is microns across and rendered at nanometre pixels: outside these the units are wrong
MIN_PIXEL_NM, MIN_FIELD_NM = 1.0, 1000.0


def scale_warnings(pixel_nm: float, extent_nm) -> list[str]:
    """Warnings for a render whose scale says the coordinates are probably not in nm.

    Parameters
    ----------
    pixel_nm : float
        The render's pixel.
    extent_nm : array of 2 floats
        The nucleus's extent.

    Returns
    -------
    list of str
    """
    out = []
    if pixel_nm < MIN_PIXEL_NM:
        out.append(f"render pixel of {pixel_nm:.3g} nm: are the coordinates in nm? "
                   "(check the unit and the camera pixel size)")  # fmt: skip
    field_nm = float(np.max(extent_nm))
    if field_nm < MIN_FIELD_NM:
        out.append(f"the localizations span {field_nm:.3g} nm, less than 1 µm: are the coordinates "
                   "in nm? (check the unit and the camera pixel size)")  # fmt: skip
    return out


def _scale_intensity(img, mask, spec: RenderSpec, h2, w2, top, left) -> None:
    if spec.scaling == "none":
        return
    inner = img[:, top : top + h2, left : left + w2]
    for k in range(img.shape[0]):
        if spec.scaling == "max":
            ref = float(inner[k].max())
        else:
            vals = img[k][mask] if mask.any() else inner[k].ravel()
            ref = float(np.percentile(vals, spec.percentile)) if vals.size else 0.0
        if ref > 0:
            inner[k] /= np.float32(ref)
            if spec.scaling == "percentile":
                np.clip(inner[k], 0.0, 1.0, out=inner[k])
