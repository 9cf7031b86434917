"""Preprocessing between a localizer's table and an analysis: filters (localization precision,
photons, PSF width, frame range; on every channel or one) and linking the repeated localizations
of one blinking emitter into one (Picasso's "link").

This is the first part of issue 35: the steps and their command (``ainu-engine preprocess``).
Drift correction, the resolution estimates (NeNA, FRC) and the preprocessing that ``train``
records in a model and every call applies are not built yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from ..io import Localizations

__all__ = ["Preprocess", "apply", "filter_localizations", "link"]


def _range(v, name: str) -> tuple[float, float] | None:
    if v is None:
        return None
    lo, hi = (float(x) for x in v)
    if np.isnan(lo) or np.isnan(hi) or lo > hi:
        raise ValueError(f"{name} must be a range lo-hi with lo <= hi, got {v!r}")
    return (lo, hi)


@dataclass(frozen=True)
class Preprocess:
    """The preprocessing of a table, as plain data.

    Attributes
    ----------
    precision_nm, photons, psf_nm, frames : (float, float), optional
        Keep localizations within these ranges (inclusive); a table without the column is an
        error when its filter is set. ``psf_nm`` reads the column ``psf_column``.
    psf_column : str
        The extra column with the PSF width in nm (ThunderSTORM's ``sigma [nm]``).
    channel : int, optional
        Apply the filters to this channel only (the others are kept as they are).
    link_nm : float, optional
        Link localizations within this distance (nm) ...
    link_dark_frames : int
        ... in frames at most this many dark frames apart (0: consecutive frames).
    """

    precision_nm: tuple[float, float] | None = None
    photons: tuple[float, float] | None = None
    psf_nm: tuple[float, float] | None = None
    psf_column: str = "sigma [nm]"
    frames: tuple[float, float] | None = None
    channel: int | None = None
    link_nm: float | None = None
    link_dark_frames: int = 1

    def __post_init__(self) -> None:
        for name in ("precision_nm", "photons", "psf_nm", "frames"):
            object.__setattr__(self, name, _range(getattr(self, name), name))
        if self.link_nm is not None and not (np.isfinite(self.link_nm) and self.link_nm > 0):
            raise ValueError(f"link_nm must be a positive distance, got {self.link_nm!r}")
        if int(self.link_dark_frames) < 0:
            raise ValueError(f"link_dark_frames must be >= 0, got {self.link_dark_frames!r}")

    @property
    def empty(self) -> bool:
        """Nothing to do."""
        return all(getattr(self, k) is None for k in
                   ("precision_nm", "photons", "psf_nm", "frames", "link_nm"))  # fmt: skip

    def to_dict(self) -> dict:
        """Plain data (for a run's record).

        Returns
        -------
        dict
        """
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping) -> Preprocess:
        """The preprocessing :meth:`to_dict` wrote.

        Parameters
        ----------
        d : mapping

        Returns
        -------
        Preprocess
        """
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def filter_localizations(locs: Localizations, pre: Preprocess) -> tuple[Localizations, dict]:
    """``locs`` within the filters of ``pre``, and how many each filter removed.

    Parameters
    ----------
    locs : Localizations
    pre : Preprocess

    Returns
    -------
    (Localizations, dict)

    Raises
    ------
    ValueError
        A filter on a column the table does not have.

    Examples
    --------
    >>> locs = Localizations([0.0, 1, 2], [0.0, 1, 2], precision_nm=[5.0, 15, 40])
    >>> out, removed = filter_localizations(locs, Preprocess(precision_nm=(0, 20)))
    >>> out.n, removed
    (2, {'precision_nm': 1})
    """
    keep = np.ones(locs.n, bool)
    removed = {}
    cols = {
        "precision_nm": locs.precision_nm,
        "photons": locs.photons,
        "psf_nm": locs.extra.get(pre.psf_column) if locs.extra else None,
        "frames": locs.frame,
    }
    scope = np.ones(locs.n, bool)
    if pre.channel is not None:
        if locs.channel is None:
            raise ValueError("a filter for one channel on a table without channels")
        scope = locs.channel == pre.channel
    for name, col in cols.items():
        rng = getattr(pre, name)
        if rng is None:
            continue
        if col is None:
            what = pre.psf_column if name == "psf_nm" else name
            raise ValueError(f"the table has no {what} column to filter on")
        v = np.asarray(col, np.float64)
        out = scope & ~((v >= rng[0]) & (v <= rng[1]))
        removed[name] = int((keep & out).sum())
        keep &= ~out
    return (locs if keep.all() else locs[keep]), removed


def link(locs: Localizations, radius_nm: float, max_dark_frames: int = 1) -> Localizations:
    """The repeated localizations of one emitter linked into one, as Picasso's ``link`` links
    them: in frame order, a chain goes on from its last localization to the first localization
    not yet linked, of the same channel, in one of the next ``max_dark_frames + 1`` frames and
    within ``radius_nm`` (:func:`ainu_engine.kernels.link_chains`). Each chain becomes one
    localization at the precision-weighted mean (equal weights without precision), with its
    first frame, summed photons, the combined precision and its length in ``n_linked``.

    Parameters
    ----------
    locs : Localizations
        With frames.
    radius_nm : float
    max_dark_frames : int, default 1

    Returns
    -------
    Localizations

    Raises
    ------
    ValueError
        A table without frames.

    Examples
    --------
    >>> locs = Localizations([0.0, 5.0, 1000.0], [0.0, 5.0, 0.0], frame=[0, 1, 1])
    >>> out = link(locs, 30.0)
    >>> out.n, out.extra["n_linked"].tolist()
    (2, [2, 1])
    """
    from ..kernels import link_chains

    if locs.frame is None:
        raise ValueError("linking needs frames; the table has none")
    n = locs.n
    if n < 2:
        return locs
    f = np.asarray(locs.frame).astype(np.int64)
    order = np.argsort(f, kind="quicksort")  # the order Picasso sorts in (pandas' quicksort)
    src = locs[order]
    group = np.zeros(n, np.int64) if src.channel is None else src.channel.astype(np.int64)
    xs, ys = src.x_nm.astype(np.float64), src.y_nm.astype(np.float64)
    label = link_chains(f[order], xs, ys, group, float(radius_nm), int(max_dark_frames))
    k = int(label.max()) + 1
    size = np.bincount(label, minlength=k)
    if k == n:
        src.extra = {**src.extra, "n_linked": np.ones(n, np.int32)}
        return src
    w = (1.0 / np.maximum(src.precision_nm.astype(np.float64), 1e-3) ** 2
         if src.precision_nm is not None else np.ones(n))  # fmt: skip
    wsum = np.bincount(label, w, k)
    first = np.full(k, n)
    np.minimum.at(first, label, np.arange(n))
    out = src[first]
    out.x_nm = (np.bincount(label, w * xs, k) / wsum).astype(np.float32)
    out.y_nm = (np.bincount(label, w * ys, k) / wsum).astype(np.float32)
    if src.z_nm is not None:
        out.z_nm = (np.bincount(label, w * src.z_nm.astype(np.float64), k) / wsum).astype(
            np.float32)  # fmt: skip
    if src.precision_nm is not None:
        out.precision_nm = (1.0 / np.sqrt(wsum)).astype(np.float32)
    if src.photons is not None:
        out.photons = np.bincount(label, src.photons.astype(np.float64), k).astype(np.float32)
    out.extra = {**out.extra, "n_linked": size.astype(np.int32)}
    return out  # chains are numbered in order of their first localization


def apply(locs: Localizations, pre: Preprocess) -> tuple[Localizations, dict]:
    """Filters, then linking, as ``pre`` says; with a report of what each step did.

    Parameters
    ----------
    locs : Localizations
    pre : Preprocess

    Returns
    -------
    (Localizations, dict)
        The table, and ``{"in": n, "removed": {...}, "linked": groups or None, "out": n}``.

    Examples
    --------
    >>> locs = Localizations([0.0, 5.0, 1000.0], [0.0, 5.0, 0.0], frame=[0, 1, 1],
    ...                      precision_nm=[10.0, 10.0, 90.0])
    >>> out, report = apply(locs, Preprocess(precision_nm=(0, 50), link_nm=30))
    >>> report
    {'in': 3, 'removed': {'precision_nm': 1}, 'linked': 1, 'out': 1}
    """
    n0 = locs.n
    out, removed = filter_localizations(locs, pre)
    linked = None
    if pre.link_nm is not None:
        out = link(out, pre.link_nm, pre.link_dark_frames)
        linked = out.n
    return out, {"in": n0, "removed": removed, "linked": linked, "out": out.n}
