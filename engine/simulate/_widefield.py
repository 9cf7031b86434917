"""Simulated widefield DAPI fields of nuclei (SCENMED's inputs), with ground truth.

SCENMED (Radhakrishnan et al., Sci. Rep. 7:17946, 2017) classifies DAPI-stained nuclei imaged
on a widefield microscope (60×/0.7 air, 0.215 µm pixels, 512 × 512 fields, 12 bit). Its data
are not public, so this simulator writes fields of such nuclei whose classes differ in size,
shape irregularity, chromocentres and heterochromatin (HC) fraction, as the specification
(``methods/scenmed_and_nucleus_prediction.md`` §3.3) lays out, with instance and HC ground
truth. It proves the engine's code against known answers; it proves nothing about biology.

Public entry points: :data:`WIDEFIELD_CLASSES`, :class:`NucleusClass`,
:func:`effective_class`, :func:`simulate_field`, :func:`simulate_widefield`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ._common import seeded_rng, write_table

__all__ = [
    "PIXEL_UM",
    "WIDEFIELD_CLASSES",
    "NucleusClass",
    "SimulatedField",
    "effective_class",
    "simulate_field",
    "simulate_widefield",
]

#: SCENMED's pixel (DeltaVision, 60× air): 0.2150 µm.
PIXEL_UM = 0.215
FIELD_PX = 512
FULL_SCALE = 4095  # 12 bit
OVEREXPOSED_ADU = 3700


@dataclass(frozen=True)
class NucleusClass:
    """A DAPI-stained nucleus class: geometry and chromatin (lengths in µm).

    The values are typical, not measured (the paper gives none); they are chosen so that the
    orderings the paper reports hold (HC/EC: BJ < MCF10A ≤ MCF7; NIH/3T3 with bright
    chromocentres) and the paper's size limits apply (bounding box ≤ 128 px, area > 2000 px).

    Attributes
    ----------
    name : str
        The class's name (``NIH3T3``, ``BJ``, ...).
    major_axis_um : tuple[float, float]
        Full major axis, uniform range.
    aspect_ratio : tuple[float, float]
        Minor / major axis.
    irregularity : float
        Sd of the Fourier-mode amplitudes 2-6 of the outline (relative).
    n_chromocentres : tuple[int, int]
        Inclusive range.
    chromocentre_radius_um : tuple[float, float]
        Radius of a chromocentre, uniform range.
    chromocentre_gain : float
        Intensity of a chromocentre's centre / euchromatin.
    rim_width_um : float
        Peripheral (lamina-associated) heterochromatin band.
    rim_gain : float
        Intensity added in the band, relative to euchromatin.
    texture_cv : float
        Contrast of the euchromatin's random field.
    texture_corr_um : float
        Its correlation length.
    n_nucleoli : tuple[int, int]
        Nucleoli, inclusive range.
    nucleolus_axis_um : tuple[float, float]
        Full major axis of a nucleolus, uniform range.
    nucleolus_density : float
        Chromatin density in a nucleolus / euchromatin.
    """

    name: str
    major_axis_um: tuple[float, float]
    aspect_ratio: tuple[float, float]
    irregularity: float
    n_chromocentres: tuple[int, int]
    chromocentre_radius_um: tuple[float, float]
    chromocentre_gain: float
    rim_width_um: float
    rim_gain: float
    texture_cv: float
    texture_corr_um: float
    n_nucleoli: tuple[int, int] = (1, 3)
    nucleolus_axis_um: tuple[float, float] = (1.0, 3.0)
    nucleolus_density: float = 0.3


def _c(name, **kw) -> NucleusClass:
    return NucleusClass(name=name, **kw)


#: The classes of the paper's cell lines ("-like": simulated).
WIDEFIELD_CLASSES: dict[str, NucleusClass] = {
    c.name: c
    for c in (
        _c(
            "NIH3T3",
            major_axis_um=(14.0, 20.0),
            aspect_ratio=(0.55, 0.75),
            irregularity=0.02,
            n_chromocentres=(10, 25),
            chromocentre_radius_um=(0.3, 0.8),
            chromocentre_gain=2.8,
            rim_width_um=0.4,
            rim_gain=0.3,
            texture_cv=0.12,
            texture_corr_um=0.45,
        ),
        _c(
            "BJ",
            major_axis_um=(16.0, 22.0),
            aspect_ratio=(0.45, 0.7),
            irregularity=0.02,
            n_chromocentres=(0, 4),
            chromocentre_radius_um=(0.3, 0.5),
            chromocentre_gain=1.4,
            rim_width_um=0.3,
            rim_gain=0.2,
            texture_cv=0.10,
            texture_corr_um=0.4,
        ),
        _c(
            "MCF10A",
            major_axis_um=(12.5, 17.0),
            aspect_ratio=(0.7, 0.92),
            irregularity=0.035,
            n_chromocentres=(1, 6),
            chromocentre_radius_um=(0.3, 0.55),
            chromocentre_gain=1.6,
            rim_width_um=0.42,
            rim_gain=0.42,
            texture_cv=0.12,
            texture_corr_um=0.45,
        ),
        _c(
            "MCF7",
            major_axis_um=(13.0, 17.0),
            aspect_ratio=(0.75, 0.95),
            irregularity=0.06,
            n_chromocentres=(3, 10),
            chromocentre_radius_um=(0.3, 0.6),
            chromocentre_gain=2.0,
            rim_width_um=0.55,
            rim_gain=0.6,
            texture_cv=0.18,
            texture_corr_um=0.55,
        ),
        _c(
            "MDA-MB-231",
            major_axis_um=(13.0, 18.0),
            aspect_ratio=(0.6, 0.9),
            irregularity=0.10,
            n_chromocentres=(3, 10),
            chromocentre_radius_um=(0.3, 0.6),
            chromocentre_gain=1.9,
            rim_width_um=0.5,
            rim_gain=0.55,
            texture_cv=0.2,
            texture_corr_um=0.6,
        ),
    )
}

_SCALED = [
    f.name
    for f in fields(NucleusClass)
    if f.name not in ("name", "n_nucleoli", "nucleolus_axis_um", "nucleolus_density")
]


def effective_class(name: str, difficulty: float = 0.0) -> NucleusClass:
    """Class ``name`` with every class difference scaled by ``1 - difficulty``.

    Each parameter moves towards the mean over :data:`WIDEFIELD_CLASSES`:
    ``value = mean + (1 - difficulty) * (class_value - mean)`` (integer ranges rounded).
    ``difficulty=1`` makes all classes identical.

    Parameters
    ----------
    name : str
        A class of :data:`WIDEFIELD_CLASSES`.
    difficulty : float, default 0
        In [0, 1].

    Returns
    -------
    NucleusClass

    Raises
    ------
    ValueError
        An unknown class, or ``difficulty`` outside [0, 1].

    Examples
    --------
    >>> effective_class("BJ", 1.0).major_axis_um == effective_class("MCF7", 1.0).major_axis_um
    True
    """
    if name not in WIDEFIELD_CLASSES:
        raise ValueError(f"unknown widefield class {name!r}; known: {', '.join(WIDEFIELD_CLASSES)}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must lie in [0, 1], got {difficulty!r}")
    c = WIDEFIELD_CLASSES[name]
    k = 1.0 - difficulty
    out = {}
    for f in _SCALED:
        vals = [getattr(x, f) for x in WIDEFIELD_CLASSES.values()]
        v = getattr(c, f)
        if isinstance(v, tuple):
            mean = np.mean(vals, axis=0)
            new = mean + k * (np.asarray(v, float) - mean)
            out[f] = tuple(int(round(x)) for x in new) if isinstance(v[0], int) else tuple(new)
        else:
            mean = float(np.mean(vals))
            out[f] = mean + k * (v - mean)
    return replace(c, **out)


@dataclass
class SimulatedField:
    """One simulated field: the 12-bit image and its ground truth.

    Attributes
    ----------
    image : np.ndarray
        The 12-bit field, uint16 (512, 512).
    labels : np.ndarray
        Instances (0 background, nucleus k = k).
    hc : np.ndarray
        Heterochromatin pixels (chromocentres and the peripheral band).
    nuclei : list[dict]
        One dict per nucleus: id, class, centroid (px), area (px), overexposed, touches_edge.
    """

    image: np.ndarray
    labels: np.ndarray
    hc: np.ndarray
    nuclei: list[dict]


def _outline(rng, c: NucleusClass, pixel_um: float):
    major = rng.uniform(*c.major_axis_um) / pixel_um
    a = major / 2.0
    b = a * rng.uniform(*c.aspect_ratio)
    rot = rng.uniform(0, math.pi)
    amps = rng.normal(0.0, c.irregularity, 5)
    phases = rng.uniform(0, 2 * math.pi, 5)
    return a, b, rot, amps, phases


def _radius(theta, a, b, amps, phases):
    r = a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)
    mod = 1.0 + sum(amps[i] * np.cos((i + 2) * theta + phases[i]) for i in range(5))
    return r * np.clip(mod, 0.6, 1.4)


def _nucleus_density(rng, c: NucleusClass, pixel_um: float):
    """Density (euchromatin = 1) and masks of one nucleus on its own square grid."""
    a, b, rot, amps, phases = _outline(rng, c, pixel_um)
    half = int(math.ceil(a * 1.45)) + 4
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    xr = xx * math.cos(rot) + yy * math.sin(rot)
    yr = -xx * math.sin(rot) + yy * math.cos(rot)
    theta = np.arctan2(yr, xr)
    rho = np.hypot(xr, yr)
    mask = rho <= _radius(theta, a, b, amps, phases)
    mask = ndi.binary_fill_holes(mask)
    lab, n = ndi.label(mask)
    if n > 1:  # keep the main body (a strong lobe can pinch off a speck)
        sizes = ndi.sum(mask, lab, range(1, n + 1))
        mask = lab == (1 + int(np.argmax(sizes)))
    # euchromatin: a smooth random field
    corr = max(c.texture_corr_um / pixel_um, 0.5)
    field = ndi.gaussian_filter(rng.normal(size=mask.shape), corr)
    field /= field[mask].std() + 1e-12
    dens = 1.0 + c.texture_cv * field
    depth = ndi.distance_transform_edt(mask) * pixel_um
    # nucleoli: darker ellipses inside
    inner = depth > 1.5
    for _ in range(rng.integers(c.n_nucleoli[0], c.n_nucleoli[1] + 1)):
        ys, xs = np.nonzero(inner)
        if len(ys) == 0:
            break
        i = rng.integers(len(ys))
        ax = rng.uniform(*c.nucleolus_axis_um) / pixel_um / 2
        bx = ax * rng.uniform(0.6, 1.0)
        t = rng.uniform(0, math.pi)
        dx, dy = xx - (xs[i] - half), yy - (ys[i] - half)
        u = dx * math.cos(t) + dy * math.sin(t)
        v = -dx * math.sin(t) + dy * math.cos(t)
        nuc = (u / ax) ** 2 + (v / bx) ** 2 <= 1.0
        dens = np.where(nuc & mask, dens * c.nucleolus_density, dens)
    # heterochromatin: the peripheral band and chromocentres
    # a pixel's share of the band (continuous in the width, not a whole-pixel step)
    rim = np.where(mask, np.clip((c.rim_width_um - depth) / pixel_um + 1.0, 0.0, 1.0), 0.0)
    dens = dens + c.rim_gain * rim
    hc = rim >= 0.5
    n_cc = rng.integers(c.n_chromocentres[0], c.n_chromocentres[1] + 1)
    ys, xs = np.nonzero(depth > 0.8)
    for _ in range(n_cc if len(ys) else 0):
        i = rng.integers(len(ys))
        r = rng.uniform(*c.chromocentre_radius_um) / pixel_um
        d2 = (xx - (xs[i] - half)) ** 2 + (yy - (ys[i] - half)) ** 2
        blob = np.exp(-d2 / (2 * (r / 1.5) ** 2))
        dens = dens + (c.chromocentre_gain - 1.0) * blob
        hc |= d2 <= r * r
    dens = np.where(mask, np.clip(dens, 0.0, None), 0.0)
    return dens, mask, hc & mask


def simulate_field(
    rng: np.random.Generator,
    classes: list[NucleusClass],
    *,
    n_nuclei: tuple[int, int] = (3, 8),
    pixel_um: float = PIXEL_UM,
    size: int = FIELD_PX,
    brightness: float = 900.0,
    overexposed_fraction: float = 0.07,
    haze: float = 0.08,
    edge_band_px: int = 15,
    drift_blur_px: float = 0.0,
    batch_factor: float = 1.0,
) -> SimulatedField:
    """One ``size`` × ``size`` field of 3-8 nuclei, each of a class drawn from ``classes``.

    Imaging: in-focus PSF (σ 0.14 µm), an out-of-focus haze (``haze`` of the signal blurred
    over 2 µm; ~0.08 is "deconvolved-like", 0.3 raw widefield), a blurrier band of
    ``edge_band_px`` along the frame (the paper's deconvolution edge), optional linear drift
    blur, camera offset 100 ADU, shot and read noise, 12-bit clipping. A fraction of nuclei is
    over-exposed (≥ 25 % of their pixels above 3700 ADU), some touch the frame.

    Parameters
    ----------
    rng : numpy.random.Generator
        The field's random stream.
    classes : list of NucleusClass
        The classes nuclei are drawn from (:func:`effective_class`).
    n_nuclei : (int, int)
        Nuclei per field, an inclusive range.
    pixel_um : float
        The pixel (µm; SCENMED's 0.215).
    size : int
        The field's side (px).
    brightness : float
        Euchromatin intensity (ADU above the offset).
    overexposed_fraction : float
        The fraction of nuclei made over-exposed.
    haze : float
        The out-of-focus fraction of the signal.
    edge_band_px : int
        The blurrier band along the frame (px).
    drift_blur_px : float
        Linear drift blur (px).
    batch_factor : float
        The image set's brightness factor.

    Returns
    -------
    SimulatedField
        The 12-bit image, the instance labels, the heterochromatin mask and one dict per
        nucleus.

    Examples
    --------
    >>> f = simulate_field(np.random.default_rng(0), [effective_class("BJ")], size=256)
    >>> f.image.shape, f.image.dtype.name, int(f.labels.max()) == len(f.nuclei)
    ((256, 256), 'uint16', True)
    """
    signal = np.zeros((size, size))
    labels = np.zeros((size, size), np.uint16)
    hc_gt = np.zeros((size, size), bool)
    nuclei: list[dict] = []
    n_target = int(rng.integers(n_nuclei[0], n_nuclei[1] + 1))
    placed: list[tuple[float, float, float]] = []
    tries = 0
    while len(nuclei) < n_target and tries < 500:
        tries += 1
        c = classes[int(rng.integers(len(classes)))]
        dens, mask, hc = _nucleus_density(rng, c, pixel_um)
        h = dens.shape[0] // 2
        my, mx = np.nonzero(mask)
        rad = float(np.hypot(my - h, mx - h).max())  # a bounding circle: no two nuclei touch
        cy, cx = rng.uniform(-0.2 * h, size + 0.2 * h, 2)
        if any(math.hypot(cy - py, cx - px) < rad + pr + 6 for py, px, pr in placed):
            continue
        y0, x0 = int(round(cy)) - h, int(round(cx)) - h
        ys = slice(max(y0, 0), min(y0 + dens.shape[0], size))
        xs = slice(max(x0, 0), min(x0 + dens.shape[1], size))
        sub = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
        m = mask[sub]
        if m.sum() < 0.35 * mask.sum():  # mostly outside the frame: not placed
            continue
        content = rng.lognormal(0.0, 0.12) * (2.0 if rng.random() < 0.3 else 1.0) ** 0.5
        over = rng.random() < overexposed_fraction
        level = brightness * batch_factor * content * (4.0 if over else 1.0)
        k = len(nuclei) + 1
        signal[ys, xs] += level * dens[sub]
        labels[ys, xs][m] = k
        hc_gt[ys, xs] |= hc[sub]
        yy, xx = np.nonzero(labels == k)
        nuclei.append(
            {
                "id": k,
                "class": c.name,
                "centroid_y": float(yy.mean()),
                "centroid_x": float(xx.mean()),
                "area_px": int(len(yy)),
                "overexposed": bool(over),
                "touches_edge": bool(
                    yy.min() == 0 or xx.min() == 0 or yy.max() == size - 1 or xx.max() == size - 1
                ),
            }
        )
        placed.append((cy, cx, rad))
    psf = 0.14 / pixel_um
    img = ndi.gaussian_filter(signal, psf)
    img = (1 - haze) * img + haze * ndi.gaussian_filter(signal, 2.0 / pixel_um)
    if edge_band_px > 0:
        band = np.ones((size, size), bool)
        band[edge_band_px:-edge_band_px, edge_band_px:-edge_band_px] = False
        img = np.where(band, ndi.gaussian_filter(img, 2.0), img)
    if drift_blur_px > 0:
        n = max(int(round(drift_blur_px)), 1)
        kern = np.zeros((n, n))
        kern[np.arange(n), np.arange(n)] = 1.0 / n
        img = ndi.convolve(img, kern, mode="nearest")
    img = rng.poisson(np.clip(img, 0, None)).astype(float) + 100.0 + rng.normal(0, 3.0, img.shape)
    image = np.clip(np.round(img), 0, FULL_SCALE).astype(np.uint16)
    return SimulatedField(image, labels, hc_gt, nuclei)


def simulate_widefield(
    out: str | Path,
    *,
    classes: list[str],
    n_fields: int = 10,
    n_sets: int = 2,
    seed: int = 0,
    difficulty: float = 0.0,
    pixel_um: float = PIXEL_UM,
    n_nuclei: tuple[int, int] = (3, 8),
    overexposed_fraction: float = 0.07,
    haze: float = 0.08,
    drift_blur_px: float = 0.0,
    hdf5: bool = False,
    progress=None,
) -> dict:
    """Write ``n_fields`` fields per class (one class per field, as in the paper's image sets).

    Layout of ``out``: ``fields/CLASS_sS_NNNN.tif`` (uint16, 12-bit values, pixel size in the
    TIFF resolution tags and ImageJ metadata), ``truth/…_labels.tif`` (instances),
    ``truth/…_hc.tif`` (heterochromatin pixels), ``manifest.csv`` (path, label, group = the
    image set), ``nuclei.csv`` (one row per simulated nucleus), ``simulation.json``; with
    ``hdf5``, ``scenmed.h5`` in the public code's layout (``images``, ``CellType``).
    Fields of a class are spread over ``n_sets`` image sets (days), each with its own
    brightness factor (a batch effect for group-aware splits).

    Parameters
    ----------
    out : str or Path
        The output folder (created).
    classes : list of str
        Classes of :data:`WIDEFIELD_CLASSES`.
    n_fields, n_sets : int
        Fields per class, and the image sets they are spread over.
    seed : int
        The seed: the same seed, the same files.
    difficulty : float
        In [0, 1]: :func:`effective_class`.
    pixel_um, n_nuclei, overexposed_fraction, haze, drift_blur_px
        As :func:`simulate_field`.
    hdf5 : bool
        Also write ``scenmed.h5``.
    progress : callable, optional
        Called after each field.

    Returns
    -------
    dict
        What ``simulation.json`` holds (the parameters, counts, ``simulated: true``).

    Raises
    ------
    ValueError
        An unknown class, or ``difficulty`` outside [0, 1].
    """
    import tifffile

    out = Path(out)
    if not classes:
        raise ValueError("no classes given")
    specs = [effective_class(c, difficulty) for c in classes]
    (out / "fields").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    rows, truth_rows, images, labels = [], [], [], []
    res = (1.0 / pixel_um, 1.0 / pixel_um)  # pixels per µm (ImageJ's unit)
    meta = {"unit": "um"}
    for c in specs:
        set_factor = {
            s: seeded_rng(seed, f"{c.name}/set/{s}").lognormal(0, 0.1) for s in range(n_sets)
        }
        for i in range(n_fields):
            s = i % n_sets
            rng = seeded_rng(seed, f"{c.name}/{i}")
            f = simulate_field(
                rng,
                [c],
                n_nuclei=n_nuclei,
                pixel_um=pixel_um,
                overexposed_fraction=overexposed_fraction,
                haze=haze,
                drift_blur_px=drift_blur_px,
                batch_factor=set_factor[s],
            )
            stem = f"{c.name}_s{s}_{i:04d}"
            kw = {"resolution": res, "imagej": True, "metadata": meta}
            tifffile.imwrite(out / "fields" / f"{stem}.tif", f.image, **kw)
            tifffile.imwrite(out / "truth" / f"{stem}_labels.tif", f.labels, **kw)
            tifffile.imwrite(out / "truth" / f"{stem}_hc.tif", f.hc.astype(np.uint8), **kw)
            group = f"{c.name}_s{s}"
            rows.append({"path": f"fields/{stem}.tif", "label": c.name, "group": group})
            for n in f.nuclei:
                truth_rows.append({"field": f"fields/{stem}.tif", "group": group, **n})
            images.append(f.image)
            labels.append(c.name)
            if progress is not None:
                progress()
    write_table(out / "manifest.csv", rows)
    write_table(out / "nuclei.csv", truth_rows)
    if hdf5:
        import h5py

        with h5py.File(out / "scenmed.h5", "w") as h:
            h.create_dataset("images", data=np.stack(images), compression="gzip")
            h.create_dataset("CellType", data=np.array(labels, dtype="S"))
    info = {
        "simulator": "ainu_engine.simulate.simulate_widefield",
        "classes": [asdict(c) for c in specs],
        "difficulty": difficulty,
        "seed": seed,
        "n_fields_per_class": n_fields,
        "n_sets": n_sets,
        "pixel_um": pixel_um,
        "haze": haze,
        "drift_blur_px": drift_blur_px,
        "overexposed_fraction": overexposed_fraction,
        "n_nuclei": len(truth_rows),
        "simulated": True,
    }
    (out / "simulation.json").write_text(json.dumps(info, indent=2))
    return info

