"""Augmentations that never change the aspect ratio or the pixel scale (the paper forbids
distorting spatial relations): flips, 90° rotations, arbitrary rotations about the centre with
background fill, intensity/contrast jitter, and GridMask-style dropout (AINU: "GridMask, ratio
0.3, grid unit 128-384 px" at 512 px). Batched tensor ops on the training device; no extra
dependency (torch only)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "AugmentConfig",
    "LocAugmentConfig",
    "augment",
    "augment_localizations",
    "merge_repeats",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (per image).

    ``grid_unit`` is the GridMask period as a fraction of the image side (0.25-0.75 = the
    paper's 128-384 px at 512 px); in each period a square of side ``grid_ratio`` x unit is
    set to ``fill`` (masked area fraction ~ grid_ratio²). ``rotate_deg`` is the largest
    arbitrary rotation; rotated-in corners get ``fill``.

    Attributes
    ----------
    flip : float
        Probability of a horizontal and a vertical flip (each).
    rot90 : bool
        A random multiple of 90° per image.
    rotate : float
        Probability of an arbitrary rotation.
    rotate_deg : float
        The largest arbitrary rotation (degrees).
    intensity : float
        The largest relative change of intensity.
    contrast : float
        The largest relative change of contrast.
    gridmask : float
        Probability of GridMask.
    grid_ratio : float
        GridMask's square side as a fraction of its period.
    grid_unit : tuple[float, float]
        GridMask's period as a fraction of the side, uniform range.
    fill : float
        The value of masked and rotated-in pixels.
    """

    flip: float = 0.5
    rot90: bool = True
    rotate: float = 0.5
    rotate_deg: float = 180.0
    intensity: float = 0.2
    contrast: float = 0.2
    gridmask: float = 0.5
    grid_ratio: float = 0.3
    grid_unit: tuple[float, float] = (0.25, 0.75)
    fill: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def augment(x, cfg: AugmentConfig = AugmentConfig(), *, generator=None):
    """Augment a batch ``x`` (N, C, H, W) of images; returns a new tensor of the same shape.

    Each image draws its own transforms from ``generator`` (a ``torch.Generator`` on the
    batch's device, for reproducibility). Labels are untouched: no augmentation can change
    the class of a nucleus (no scaling, no shearing, no cropping of the nucleus).

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
        The batch.
    cfg : AugmentConfig
        Probabilities and ranges.
    generator : torch.Generator
        The random stream, on the batch's device.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> import torch
    >>> from ainu_engine.training.augment import augment
    >>> x = torch.rand(4, 2, 64, 64)
    >>> augment(x, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4, 2, 64, 64])
    """
    import torch
    from torch.nn import functional as F

    if x.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) batch, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    dev = x.device
    g = generator

    def rand(*shape):
        return torch.rand(*shape, generator=g, device=dev)

    out = x.clone()
    if cfg.flip > 0:
        fh = rand(n) < cfg.flip
        fv = rand(n) < cfg.flip
        out[fh] = out[fh].flip(-1)
        out[fv] = out[fv].flip(-2)
    if cfg.rot90 and h == w:
        k = (rand(n) * 4).long().clamp(max=3)
        for q in (1, 2, 3):
            sel = k == q
            if sel.any():
                out[sel] = torch.rot90(out[sel], q, dims=(-2, -1))
    if cfg.rotate > 0 and cfg.rotate_deg > 0:
        sel = rand(n) < cfg.rotate
        if sel.any():
            ang = (rand(int(sel.sum())) * 2 - 1) * math.radians(cfg.rotate_deg)
            cos, sin = torch.cos(ang), torch.sin(ang)
            # rotation about the centre in pixel units (aspect-correct for non-square images)
            theta = torch.zeros(len(ang), 2, 3, device=dev, dtype=out.dtype)
            theta[:, 0, 0] = cos
            theta[:, 0, 1] = -sin * h / w
            theta[:, 1, 0] = sin * w / h
            theta[:, 1, 1] = cos
            grid = F.affine_grid(theta, (len(ang), c, h, w), align_corners=False)
            src = out[sel]
            rotated = F.grid_sample(
                src, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
            inside = F.grid_sample(
                torch.ones_like(src[:, :1]),
                grid,
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )
            out[sel] = rotated + (1 - inside) * cfg.fill
    if cfg.intensity > 0 or cfg.contrast > 0:
        gain = 1 + (rand(n, 1, 1, 1) * 2 - 1) * cfg.intensity
        con = 1 + (rand(n, 1, 1, 1) * 2 - 1) * cfg.contrast
        mean = out.mean(dim=(-2, -1), keepdim=True)
        out = ((out - mean) * con + mean) * gain
        out = out.clamp(min=0)
    if cfg.gridmask > 0:
        sel = torch.nonzero(rand(n) < cfg.gridmask).flatten()
        yy = torch.arange(h, device=dev).view(h, 1)
        xx = torch.arange(w, device=dev).view(1, w)
        for i in sel.tolist():
            lo, hi = cfg.grid_unit
            unit = max(2, int(round((lo + (hi - lo) * float(rand(1))) * min(h, w))))
            side = max(1, int(round(cfg.grid_ratio * unit)))
            dy, dx = (int(v) for v in (rand(2) * unit).long())
            mask = (((yy + dy) % unit) < side) & (((xx + dx) % unit) < side)
            out[i][:, mask] = cfg.fill
    return out


# -- on localizations, before rendering (issue 34) ----------------------------------------------


@dataclass(frozen=True)
class LocAugmentConfig:
    """Augmentations of a nucleus's localizations before it is rendered: what another
    acquisition, or another localizer, would have given of the same nucleus. None changes the
    aspect ratio or the scale of the nucleus (rotations are rigid, about its centroid, and an
    arbitrary angle is used only where the rotated nucleus still fits the render without
    shrinking; else a multiple of 90°).

    Each is applied with its probability, independently, per item and epoch.

    Attributes
    ----------
    partial : float
        Probability of keeping a window of the acquisition's frames ...
    fraction : (float, float)
        ... of this fraction of its frame span (uniform), starting at frame 0 with probability
        ``prefix`` (what a live session has seen) or anywhere.
    prefix : float
        See ``fraction``.
    subsample : float
        Probability of keeping a random share of the localizations ...
    keep : (float, float)
        ... in this range.
    noise : float
        Probability of extra localization noise: each localization moved by a Gaussian of
        sigma drawn per localization from ``noise_nm`` (its precision column grows to match).
    noise_nm : (float, float)
        See ``noise``.
    merge : float
        Probability of merging the repeated localizations of one emitter (another within
        ``merge_nm`` in the next ``merge_frames`` frames: linked, replaced by their
        precision-weighted mean; Picasso's "link").
    merge_nm, merge_frames
        See ``merge``.
    split : float
        Probability of splitting: a share (``split_fraction``) of the localizations is seen
        again in a nearby frame, displaced by its precision (more blinks per emitter).
    split_fraction : (float, float)
        See ``split``.
    rotate : float
        Probability of a rotation about the centroid (arbitrary where it fits, else k·90°).
    flip : float
        Probability of a mirror (x -> -x about the centroid).
    """

    partial: float = 0.5
    fraction: tuple[float, float] = (0.2, 1.0)
    prefix: float = 0.5
    subsample: float = 0.2
    keep: tuple[float, float] = (0.5, 1.0)
    noise: float = 0.2
    noise_nm: tuple[float, float] = (0.0, 15.0)
    merge: float = 0.15
    merge_nm: float = 30.0
    merge_frames: int = 3
    split: float = 0.15
    split_fraction: tuple[float, float] = (0.1, 0.5)
    rotate: float = 0.5
    flip: float = 0.5

    def __post_init__(self) -> None:
        for name in ("partial", "prefix", "subsample", "noise", "merge", "split", "rotate",
                     "flip"):  # fmt: skip
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {v!r}")
        for name, lo_min, hi_max in (("fraction", 0.0, 1.0), ("keep", 0.0, 1.0),
                                     ("noise_nm", 0.0, float("inf")),
                                     ("split_fraction", 0.0, 1.0)):  # fmt: skip
            lo, hi = getattr(self, name)
            if not lo_min < lo <= hi <= hi_max and not (name == "noise_nm" and 0 <= lo <= hi):
                raise ValueError(f"{name} must be a range lo-hi within ({lo_min}, {hi_max}], "
                                 f"got {lo}-{hi}")  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def parse(cls, text: str) -> LocAugmentConfig:
        """``"default"`` or ``KEY=VALUE,...`` over the defaults (ranges as ``lo-hi``), e.g.
        ``partial=0.7,fraction=0.1-1,merge=0``.

        Examples
        --------
        >>> LocAugmentConfig.parse("partial=0.7,fraction=0.1-1").fraction
        (0.1, 1.0)
        """
        kw: dict = {}
        names = {f: type(getattr(cls(), f)) for f in cls.__dataclass_fields__}
        for item in (t.strip() for t in text.split(",") if t.strip() and t.strip() != "default"):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise ValueError(f"expected KEY=VALUE with KEY among {', '.join(names)}; got "
                                 f"{item!r}")  # fmt: skip
            try:
                if names[key] is tuple:
                    lo, _, hi = value.partition("-")
                    kw[key] = (float(lo), float(hi or lo))
                elif names[key] is int:
                    kw[key] = int(value)
                else:
                    kw[key] = float(value)
            except ValueError as err:
                raise ValueError(f"{key}: not a number or a range lo-hi: {value!r}") from err
        return cls(**kw)


def augment_localizations(locs, cfg: LocAugmentConfig, rng: np.random.Generator, *,
                          fits_nm: float | None = None, roi_nm=None):  # fmt: skip
    """One augmented copy of a nucleus's localizations (:class:`LocAugmentConfig`).

    Parameters
    ----------
    locs : Localizations
        The nucleus (the localizations the model is given).
    cfg : LocAugmentConfig
    rng : numpy.random.Generator
        The random stream (the same seed gives the same copy).
    fits_nm : float, optional
        The largest extent an arbitrarily rotated nucleus may have (the render's side in nm):
        rotations that would make it larger, and so shrink it in the render, are replaced by
        multiples of 90°.
    roi_nm : array (V, 2), optional
        The nucleus's outline: rotated and mirrored with it, and returned beside it.

    Returns
    -------
    Localizations, or (Localizations, ndarray or None) with ``roi_nm``
        A new table (the input is not changed); the same table when no augmentation fires.

    Examples
    --------
    >>> from ainu_engine.io import Localizations
    >>> rng = np.random.default_rng(0)
    >>> locs = Localizations(*rng.uniform(0, 5000, (2, 1000)), frame=np.arange(1000))
    >>> out = augment_localizations(locs, LocAugmentConfig(), np.random.default_rng(1))
    >>> 0 < out.n <= 2000
    True
    """
    from ainu_engine.io import Localizations

    out = locs
    u = rng.random(7)
    if cfg.partial and u[0] < cfg.partial and locs.frame is not None and locs.n:
        out = _frame_window(out, cfg, rng)
    if cfg.subsample and u[1] < cfg.subsample and out.n:
        out = out[np.sort(rng.choice(out.n, max(1, int(out.n * rng.uniform(*cfg.keep))),
                                     replace=False))]  # fmt: skip
    if cfg.merge and u[2] < cfg.merge and out.frame is not None and out.n > 1:
        out = merge_repeats(out, cfg.merge_nm, cfg.merge_frames)
    if cfg.split and u[3] < cfg.split and out.n:
        out = _split(out, rng.uniform(*cfg.split_fraction), rng)
    if cfg.noise and u[4] < cfg.noise and out.n:
        sig = rng.uniform(*cfg.noise_nm, out.n)
        out = _moved(out, out.x_nm + rng.standard_normal(out.n) * sig,
                     out.y_nm + rng.standard_normal(out.n) * sig, extra_sigma=sig)  # fmt: skip
    roi = None if roi_nm is None else np.asarray(roi_nm, np.float64)
    if (cfg.rotate and u[5] < cfg.rotate) or (cfg.flip and u[6] < cfg.flip):
        if out is locs:
            out = locs[np.arange(locs.n)]
        out, roi = _rigid(out, rng, rotate=bool(cfg.rotate and u[5] < cfg.rotate),
                          flip=bool(cfg.flip and u[6] < cfg.flip), fits_nm=fits_nm,
                          roi=roi)  # fmt: skip
    out = out if isinstance(out, Localizations) else locs
    return out if roi_nm is None else (out, roi)


def _frame_window(locs, cfg: LocAugmentConfig, rng):
    f = np.asarray(locs.frame)
    lo, hi = int(f.min()), int(f.max())
    span = hi - lo + 1
    width = max(1, int(round(span * rng.uniform(*cfg.fraction))))
    start = lo if rng.random() < cfg.prefix else lo + int(rng.integers(0, span - width + 1))
    keep = (f >= start) & (f < start + width)
    return locs[keep] if keep.any() else locs


def _moved(locs, x, y, *, extra_sigma=None):
    out = locs[np.arange(locs.n)]
    out.x_nm = np.asarray(x, np.float32)
    out.y_nm = np.asarray(y, np.float32)
    if extra_sigma is not None and out.precision_nm is not None:
        out.precision_nm = np.sqrt(out.precision_nm.astype(np.float64) ** 2
                                   + extra_sigma**2).astype(np.float32)  # fmt: skip
    return out


def _split(locs, share: float, rng):
    """A share of the localizations seen once more, in one of the next 3 frames, displaced by
    their precision (10 nm where the table has none)."""
    from ainu_engine.io import Localizations

    pick = np.flatnonzero(rng.random(locs.n) < share)
    if not len(pick):
        return locs
    extra = locs[pick]
    p = extra.precision_nm if extra.precision_nm is not None else np.full(extra.n, 10.0)
    extra = _moved(extra, extra.x_nm + rng.standard_normal(extra.n) * p,
                   extra.y_nm + rng.standard_normal(extra.n) * p)  # fmt: skip
    if extra.frame is not None:
        extra.frame = extra.frame + rng.integers(1, 4, extra.n).astype(extra.frame.dtype)
    both = Localizations.concat([locs, extra])
    if both.frame is not None:
        both = both[np.argsort(both.frame, kind="stable")]
    return both


def _rigid(locs, rng, *, rotate: bool, flip: bool, fits_nm: float | None, roi=None):
    """Rotation about the centroid and/or a mirror (of the localizations and their outline);
    an arbitrary angle only where the rotated nucleus's extent stays within ``fits_nm`` (or its
    own extent), else k·90°."""
    x = locs.x_nm.astype(np.float64)
    y = locs.y_nm.astype(np.float64)
    cx, cy = x.mean(), y.mean()
    m = np.eye(2)
    if flip:
        m = np.array([[-1.0, 0.0], [0.0, 1.0]])
    if rotate:
        ang = rng.uniform(0, 2 * np.pi)
        r = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        d = np.stack([x - cx, y - cy])
        before = np.ptp(m @ d, axis=1)
        after = np.ptp(r @ m @ d, axis=1)
        if after.max() > max(before.max(), fits_nm or 0.0):  # it would be shrunk: k·90°
            k = int(rng.integers(0, 4))
            r = np.round(np.array([[np.cos(k * np.pi / 2), -np.sin(k * np.pi / 2)],
                                   [np.sin(k * np.pi / 2), np.cos(k * np.pi / 2)]]))  # fmt: skip
        m = r @ m
    d = m @ np.stack([x - cx, y - cy])
    locs.x_nm = (cx + d[0]).astype(np.float32)
    locs.y_nm = (cy + d[1]).astype(np.float32)
    if roi is not None:
        roi = (m @ (roi - [cx, cy]).T).T + [cx, cy]
    return locs, roi


def merge_repeats(locs, radius_nm: float = 30.0, max_frames: int = 3):
    """The repeated localizations of one emitter merged into one: localizations within
    ``radius_nm`` of another in one of the next ``max_frames`` frames are linked (transitively),
    and each linked group becomes one localization at the precision-weighted mean (equal weights
    without precision), with the group's first frame, summed photons and the combined precision
    (Picasso's "link" in its simplest form).

    Parameters
    ----------
    locs : Localizations
        With frames.
    radius_nm : float
    max_frames : int

    Returns
    -------
    Localizations

    Examples
    --------
    >>> from ainu_engine.io import Localizations
    >>> locs = Localizations([0.0, 5.0, 1000.0], [0.0, 5.0, 0.0], frame=[0, 1, 1])
    >>> merge_repeats(locs).n
    2
    """
    from ainu_engine.preprocess import link

    return link(locs, radius_nm, max(0, int(max_frames) - 1))
