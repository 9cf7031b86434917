"""How unlike its training nuclei a nucleus is, from its localizations alone: per-nucleus input
statistics (density, area, localization precision, photons, nearest-neighbour distance, the
share of repeated localizations of one emitter), a reference of them over a model's training
nuclei, and a score that names the statistic furthest out ("median precision 2.4 nm; training
11–18 nm").

This is the input half of the out-of-distribution score of issue 33; the embedding half (the
model's penultimate-layer features) and the wiring into every call are not built yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "STATISTICS",
    "nucleus_statistics",
    "StatisticsReference",
]

#: the statistics, with how a message names them and their unit
STATISTICS = {
    "localizations": ("localizations", ""),
    "area_um2": ("area", " µm²"),
    "density_per_um2": ("density", " /µm²"),
    "median_precision_nm": ("median precision", " nm"),
    "median_photons": ("median photons", ""),
    "median_nn_nm": ("median nearest-neighbour distance", " nm"),
    "repeat_fraction": ("repeated-localization fraction", ""),
}
#: the smallest robust scale of a statistic: 10 % for those scored in log space, 0.02 for the
#: repeated-localization fraction
MIN_SCALE_LOG, MIN_SCALE_LINEAR = 0.1, 0.02
#: a repeated localization: another within this distance (nm) ...
REPEAT_NM = 30.0
#: ... in one of the next this many frames (a blink seen again, not merged)
REPEAT_FRAMES = 3


def nucleus_statistics(locs, area_um2: float | None = None) -> dict[str, float]:
    """The input statistics of one nucleus' localizations (those the model sees): count, area
    and density, median localization precision and photons where the table has them, the median
    nearest-neighbour distance, and the share of localizations with another within 30 nm in one
    of the next 3 frames (blinks of one emitter not merged into one localization; absent without
    frames).

    Parameters
    ----------
    locs : Localizations
        One nucleus.
    area_um2 : float, optional
        Its area (the render's mask); without it, the area of the convex hull.

    Returns
    -------
    dict of str to float
        Keys of :data:`STATISTICS`; those the table cannot give are left out.

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.io import Localizations
    >>> rng = np.random.default_rng(0)
    >>> s = nucleus_statistics(Localizations(*rng.uniform(0, 10_000, (2, 5000))))
    >>> round(s["density_per_um2"]), "median_precision_nm" in s
    (50, False)
    """
    from scipy.spatial import ConvexHull, cKDTree

    n = int(locs.n)
    out: dict[str, float] = {"localizations": float(n)}
    if n == 0:
        return out
    xy = np.column_stack([locs.x_nm, locs.y_nm]).astype(np.float64)
    if area_um2 is None and n >= 3:
        try:
            area_um2 = ConvexHull(xy).volume / 1e6
        except Exception:  # noqa: BLE001 - collinear points: no area
            area_um2 = None
    if area_um2:
        out["area_um2"] = float(area_um2)
        out["density_per_um2"] = n / float(area_um2)
    if locs.precision_nm is not None and np.isfinite(locs.precision_nm).any():
        out["median_precision_nm"] = float(np.nanmedian(locs.precision_nm))
    if locs.photons is not None and np.isfinite(locs.photons).any():
        out["median_photons"] = float(np.nanmedian(locs.photons))
    if n >= 2:
        tree = cKDTree(xy)
        d, _ = tree.query(xy, k=2)
        out["median_nn_nm"] = float(np.median(d[:, 1]))
        if locs.frame is not None:
            out["repeat_fraction"] = _repeat_fraction(tree, xy, np.asarray(locs.frame))
    return out


def _repeat_fraction(tree, xy: np.ndarray, frame: np.ndarray) -> float:
    """Share of localizations with another within :data:`REPEAT_NM` in one of the next
    :data:`REPEAT_FRAMES` frames."""
    pairs = tree.query_pairs(REPEAT_NM, output_type="ndarray")
    if not len(pairs):
        return 0.0
    gap = np.abs(frame[pairs[:, 0]].astype(np.int64) - frame[pairs[:, 1]].astype(np.int64))
    near = pairs[(gap >= 1) & (gap <= REPEAT_FRAMES)]
    hit = np.zeros(len(xy), bool)
    hit[near.ravel()] = True
    return float(hit.mean())


@dataclass(frozen=True)
class StatisticsReference:
    """The input statistics of a model's training nuclei: per statistic the 1st, 50th and 99th
    percentile and a robust scale (of the log for positive statistics), to score how far a new
    nucleus lies from them.

    Attributes
    ----------
    quantiles : dict
        Statistic -> {"p01", "p50", "p99", "scale", "log"}.
    n : int
        Training nuclei.
    """

    quantiles: Mapping[str, Mapping[str, float]]
    n: int

    @classmethod
    def from_statistics(cls, rows: Iterable[Mapping[str, float]]) -> StatisticsReference:
        """The reference of the statistics of many nuclei (:func:`nucleus_statistics`).

        Parameters
        ----------
        rows : iterable of mapping
            One mapping per training nucleus.

        Returns
        -------
        StatisticsReference
        """
        rows = list(rows)
        q: dict[str, dict[str, float]] = {}
        for name in STATISTICS:
            v = np.array([r[name] for r in rows if name in r and np.isfinite(r[name])], float)
            if len(v) < 2:
                continue
            log = bool(np.all(v > 0)) and name != "repeat_fraction"
            w = np.log(v) if log else v
            mad = float(np.median(np.abs(w - np.median(w)))) * 1.4826
            # a floor: training nuclei of one acquisition can agree closely (a simulator's
            # median precision varies by 1 %), and a few % off must not look like a shift
            scale = max(mad, MIN_SCALE_LOG if log else MIN_SCALE_LINEAR)
            q[name] = {"p01": float(np.percentile(v, 1)), "p50": float(np.median(v)),
                       "p99": float(np.percentile(v, 99)), "scale": scale,
                       "log": float(log)}  # fmt: skip
        return cls(q, len(rows))

    def score(self, stats: Mapping[str, float]) -> tuple[float, str | None, str]:
        """How far ``stats`` lie from the training nuclei: the largest robust z-score over the
        statistics both have (0 inside the training range's middle), the statistic that gives
        it, and a message naming it against the training range.

        Parameters
        ----------
        stats : mapping
            A nucleus' statistics (:func:`nucleus_statistics`).

        Returns
        -------
        (float, str or None, str)

        Examples
        --------
        >>> ref = StatisticsReference.from_statistics(
        ...     [{"median_precision_nm": p} for p in (11.0, 13.0, 14.0, 15.0, 18.0)])
        >>> z, name, text = ref.score({"median_precision_nm": 2.4})
        >>> name, text
        ('median_precision_nm', 'median precision 2.4 nm; training 11.1–17.9 nm')
        """
        best, worst = 0.0, None
        for name, q in self.quantiles.items():
            if name not in stats or not np.isfinite(stats[name]):
                continue
            v = float(stats[name])
            if q["log"]:
                w, c = np.log(max(v, 1e-12)), np.log(q["p50"])
            else:
                w, c = v, q["p50"]
            z = abs(w - c) / q["scale"]
            if z > best:
                best, worst = float(z), name
        if worst is None:
            return 0.0, None, "no statistic to compare"
        label, unit = STATISTICS[worst]
        q = self.quantiles[worst]
        text = (f"{label} {_fmt(stats[worst])}{unit}; training {_fmt(q['p01'])}–"
                f"{_fmt(q['p99'])}{unit}")  # fmt: skip
        return best, worst, text

    def to_dict(self) -> dict:
        """Plain data for a model's metadata.

        Returns
        -------
        dict
        """
        return {"n": self.n, "quantiles": {k: dict(v) for k, v in self.quantiles.items()}}

    @classmethod
    def from_dict(cls, d: Mapping) -> StatisticsReference:
        """The reference :meth:`to_dict` wrote.

        Parameters
        ----------
        d : mapping
            From :meth:`to_dict`.

        Returns
        -------
        StatisticsReference
        """
        return cls({k: dict(v) for k, v in d["quantiles"].items()}, int(d["n"]))


def _fmt(v: float) -> str:
    v = float(v)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
