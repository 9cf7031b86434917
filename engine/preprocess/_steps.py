"""The preprocessing steps in order — filters (localization precision, photons, PSF width, frame
range; on every channel or one), drift correction (RCC), linking the repeated localizations of
one blinking emitter into one (Picasso's "link") — and the resolution estimates, as one
:class:`Preprocess` that a model records and every call applies (:func:`apply_once`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..io import Localizations

if TYPE_CHECKING:
    from ._drift import Drift

__all__ = ["Preprocess", "apply", "apply_once", "filter_localizations", "link", "model_filters"]

#: The key of ``Localizations.meta.details`` that records the preprocessing a table had.
DONE_KEY = "preprocess"
DRIFT_METHODS = ("rcc",)


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
    drift : {"rcc"}, optional
        Correct the drift by redundant cross-correlation (:func:`estimate_drift`).
    drift_segment_frames : int, optional
        RCC's segment length (default: derived, :func:`estimate_drift`).
    resolution : bool
        Estimate the resolution (NeNA before linking, FRC after) for the QC columns.
    """

    precision_nm: tuple[float, float] | None = None
    photons: tuple[float, float] | None = None
    psf_nm: tuple[float, float] | None = None
    psf_column: str = "sigma [nm]"
    frames: tuple[float, float] | None = None
    channel: int | None = None
    link_nm: float | None = None
    link_dark_frames: int = 1
    drift: str | None = None
    drift_segment_frames: int | None = None
    resolution: bool = False

    def __post_init__(self) -> None:
        for name in ("precision_nm", "photons", "psf_nm", "frames"):
            object.__setattr__(self, name, _range(getattr(self, name), name))
        if self.link_nm is not None and not (np.isfinite(self.link_nm) and self.link_nm > 0):
            raise ValueError(f"link_nm must be a positive distance, got {self.link_nm!r}")
        if int(self.link_dark_frames) < 0:
            raise ValueError(f"link_dark_frames must be >= 0, got {self.link_dark_frames!r}")
        if self.drift is not None and self.drift not in DRIFT_METHODS:
            raise ValueError(f"drift must be one of {', '.join(DRIFT_METHODS)}, got {self.drift!r}")
        if self.drift_segment_frames is not None and int(self.drift_segment_frames) < 1:
            raise ValueError(
                f"drift_segment_frames must be >= 1, got {self.drift_segment_frames!r}"
            )

    @property
    def empty(self) -> bool:
        """Nothing to do."""
        return not self.resolution and all(getattr(self, k) is None for k in
                   ("precision_nm", "photons", "psf_nm", "frames", "link_nm", "drift"))  # fmt: skip

    @property
    def per_localization(self) -> bool:
        """Only filters: each localization is kept or not on its own (a live session filters
        each batch as it comes; linking, drift and resolution need the whole table)."""
        return self.link_nm is None and self.drift is None and not self.resolution

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
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown preprocessing {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")  # fmt: skip
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    @classmethod
    def parse(cls, text: str) -> Preprocess:
        """The preprocessing of a ``key=value,...`` string (ranges ``LO-HI``, either end open).

        Parameters
        ----------
        text : str
            E.g. ``"precision_nm=0-30,link_nm=30,drift=rcc,resolution=true"``.

        Returns
        -------
        Preprocess

        Raises
        ------
        ValueError
            An unknown key or a bad value, named.

        Examples
        --------
        >>> Preprocess.parse("precision_nm=0-30,link_nm=30").precision_nm
        (0.0, 30.0)
        """
        d: dict = {}
        for item in filter(None, (t.strip() for t in text.split(","))):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or key not in cls.__dataclass_fields__:
                keys = ", ".join(cls.__dataclass_fields__)
                raise ValueError(f"expected key=value with a key of {keys}; got {item!r}")
            try:
                d[key] = _parse_value(key, value)
            except ValueError:
                raise ValueError(f"{key}: bad value {value!r}") from None
        return cls(**d)

    def to_spec(self) -> str:
        """The ``key=value,...`` string of what is set (:meth:`parse` reads it back).

        Returns
        -------
        str

        Examples
        --------
        >>> Preprocess(precision_nm=(0, 30), drift="rcc").to_spec()
        'precision_nm=0-30,drift=rcc'
        """
        out = []
        for k, default in ((f.name, f.default) for f in self.__dataclass_fields__.values()):
            v = getattr(self, k)
            if v == default:
                continue
            if isinstance(v, tuple):
                lo, hi = (("" if not np.isfinite(x) else f"{x:g}") for x in v)
                v = f"{lo}-{hi}"
            elif isinstance(v, bool):
                v = str(v).lower()
            elif isinstance(v, float):
                v = f"{v:g}"
            out.append(f"{k}={v}")
        return ",".join(out)

    @classmethod
    def of_model(cls, preprocessing: Mapping | None) -> Preprocess | None:
        """The preprocessing a model records (``ModelInfo.preprocessing["localizations"]``);
        None for a model without (trained on the tables as read).

        Parameters
        ----------
        preprocessing : mapping or None

        Returns
        -------
        Preprocess or None
        """
        d = (preprocessing or {}).get("localizations")
        return cls.from_dict(d) if d else None


def range_of(value: str) -> tuple[float, float]:
    """A range written ``LO-HI``, either end open (``500-``, ``-30``), as two floats.

    Parameters
    ----------
    value : str

    Returns
    -------
    (float, float)
        An open end is -inf or inf.

    Raises
    ------
    ValueError
        Not ``LO-HI``.

    Examples
    --------
    >>> range_of("500-")
    (500.0, inf)
    """
    lo, sep, hi = value.partition("-")
    if not sep:
        raise ValueError(f"expected LO-HI (either may be empty), got {value!r}")
    return (float(lo) if lo else float("-inf"), float(hi) if hi else float("inf"))


def _parse_value(key: str, value: str):
    if key in ("precision_nm", "photons", "psf_nm", "frames"):
        return range_of(value)
    if key == "resolution":
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(value)
        return value.lower() in ("true", "1", "yes")
    if key in ("link_dark_frames", "channel", "drift_segment_frames"):
        return int(value)
    if key == "link_nm":
        return float(value)
    return value


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


def apply(
    locs: Localizations, pre: Preprocess, *, drift: Drift | None = None
) -> tuple[Localizations, dict]:
    """Filters, drift correction, linking (in this order) as ``pre`` says, and the resolution
    estimates (NeNA before linking, FRC after); with a report of what each step did.

    Parameters
    ----------
    locs : Localizations
    pre : Preprocess
    drift : Drift, optional
        A known trace to subtract (instead of ``pre.drift``'s estimate).

    Returns
    -------
    (Localizations, dict)
        The table, and ``{"in": n, "removed": {...}, "drift": summary or None, "linked":
        groups or None, "out": n}`` (+ ``"resolution": {"nena_nm", "frc_nm", "reasons"}``
        with ``pre.resolution``, and ``"drift_trace"``: the :class:`Drift` applied). The
        table's ``meta.details["preprocess"]`` records ``pre``: a model recording the same
        preprocessing does not apply it again (:func:`apply_once`).

    Raises
    ------
    SparseFieldError
        ``pre.drift`` on a table too sparse for RCC.
    ValueError
        A filter on a column the table lacks; drift or linking without frames.

    Examples
    --------
    >>> locs = Localizations([0.0, 5.0, 1000.0], [0.0, 5.0, 0.0], frame=[0, 1, 1],
    ...                      precision_nm=[10.0, 10.0, 90.0])
    >>> out, report = apply(locs, Preprocess(precision_nm=(0, 50), link_nm=30))
    >>> report["removed"], report["linked"], report["out"]
    ({'precision_nm': 1}, 1, 1)
    """
    from ._drift import correct_drift, estimate_drift

    n0 = locs.n
    out, removed = filter_localizations(locs, pre)
    if drift is None and pre.drift == "rcc":
        drift = estimate_drift(out, segment_frames=pre.drift_segment_frames)
    if drift is not None:
        out = correct_drift(out, drift)
    res = {}
    if pre.resolution:
        from ._resolution import nena

        r = nena(out)
        res = {"nena_nm": r.value_nm, "reasons": {"nena": r.reason} if r.reason else {}}
    linked = None
    if pre.link_nm is not None:
        out = link(out, pre.link_nm, pre.link_dark_frames)
        linked = out.n
    if pre.resolution:
        from ._resolution import frc

        px = res.get("nena_nm")  # bins of half the NeNA, as Picasso's FRC
        r = frc(out, split="random" if linked is not None or out.frame is None else "blocks",
                pixel_nm=None if px is None else float(np.clip(px / 2, 2.0, 20.0)))  # fmt: skip
        res["frc_nm"] = r.value_nm
        if r.reason:
            res["reasons"]["frc"] = r.reason
    report = {"in": n0, "removed": removed,
              "drift": None if drift is None else drift.summary(), "linked": linked,
              "out": out.n}  # fmt: skip
    if pre.resolution:
        report["resolution"] = res
    out = _marked(out, locs.meta, pre, report)
    report["drift_trace"] = drift
    return out, report


def _marked(out: Localizations, meta, pre: Preprocess, report: dict) -> Localizations:
    """``out`` with ``meta`` recording that it had ``pre`` (and the report): a model that
    records the same preprocessing does not apply it a second time (:func:`apply_once`)."""
    from dataclasses import replace

    plain = {k: v for k, v in report.items() if k != "drift_trace"}  # a copy, JSON types
    details = {**(meta.details or {}), DONE_KEY: {"preprocess": pre.to_dict(), "report": plain}}
    out.meta = replace(meta, details=details)
    return out


def apply_once(locs: Localizations, pre: Preprocess | None) -> tuple[Localizations, dict]:
    """A model's recorded preprocessing applied to a nucleus, once: a table that already had
    it (``meta.details["preprocess"]``) is returned as it is. A nucleus too sparse for the
    recorded drift correction keeps its other steps and is told (``drift_uncorrected`` with
    the reason in the report): never corrected silently, never dropped.

    Parameters
    ----------
    locs : Localizations
    pre : Preprocess or None
        None: nothing to do.

    Returns
    -------
    (Localizations, dict)
        The table (its ``meta.details["preprocess"]`` records ``pre`` and the report) and the
        report (:func:`apply`'s, JSON types; ``{}`` when nothing was done).

    Raises
    ------
    ainu_engine.errors.InputError
        A step that cannot run on the table (a filter on a column it lacks, drift correction or
        linking without frames), naming the file.
    """
    from dataclasses import replace

    from ._drift import SparseFieldError

    if pre is None or pre.empty:
        return locs, {}
    done = locs.meta.details.get(DONE_KEY) if locs.meta.details else None
    if done is not None and done.get("preprocess") == pre.to_dict():
        return locs, done["report"]
    try:
        try:
            out, report = apply(locs, pre)
        except SparseFieldError as err:
            out, report = apply(locs, replace(pre, drift=None))
            report["drift_uncorrected"] = str(err)
    except ValueError as err:  # a filter on a column the table lacks; drift without frames
        raise _model_error(err, locs) from None
    report.pop("drift_trace", None)
    return _marked(out, locs.meta, pre, report), report


def model_filters(locs: Localizations, pre: Preprocess) -> tuple[Localizations, dict]:
    """The filters of a model's recorded preprocessing alone (a live session's batch), as
    :func:`filter_localizations`, failing as :func:`apply_once` fails.

    Parameters
    ----------
    locs : Localizations
    pre : Preprocess

    Returns
    -------
    (Localizations, dict)
        The table, and how many each filter removed.

    Raises
    ------
    ainu_engine.errors.InputError
        A filter on a column the table lacks.
    """
    try:
        return filter_localizations(locs, pre)
    except ValueError as err:
        raise _model_error(err, locs) from None


def _model_error(err: ValueError, locs: Localizations):
    """A model's recorded preprocessing that cannot run on a table: one line naming the file."""
    from ..errors import InputError

    return InputError(f"the model's preprocessing: {err}", path=locs.meta.source_path,
                      hint="the model was trained on tables that had it")  # fmt: skip
