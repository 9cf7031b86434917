"""How unlike its training nuclei a nucleus is, from its localizations alone: per-nucleus input
statistics (density, area, localization precision, photons, nearest-neighbour distance, the
share of repeated localizations of one emitter), a reference of them over a model's training
nuclei, and a score that names the statistic furthest out ("median precision 2.4 nm; training
11–18 nm").

The model's own view adds two more: its penultimate-layer features (the exported ONNX graph's
second output, ``embedding``) against class-conditional Gaussians of its training nuclei's
features in their principal subspace, with a shared Ledoit-Wolf covariance (Mahalanobis distance,
Lee et al., NeurIPS 2018), and the part of the features outside that subspace (the residual, as in
ViM, Wang et al., CVPR 2022): data unlike the training data often move features where training
never put any. :class:`OodReference` joins the three; each is divided by its threshold, set on
held-out in-distribution nuclei at a stated false-alarm rate, and the largest ratio is the
``ood_score`` (1 = the threshold; above it the call is flagged ``unfamiliar``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "STATISTICS",
    "FeatureReference",
    "OodReference",
    "OodResult",
    "StatisticsReference",
    "model_statistics",
    "nucleus_statistics",
]

#: the statistics, with how a message names them and their unit
STATISTICS = {
    "localizations": ("localizations", ""),
    "area_um2": ("area", " µm²"),
    "density_per_um2": ("density", " /µm²"),
    "median_precision_nm": ("median precision", " nm"),
    "median_photons": ("median photons", ""),
    "median_nn_nm": ("nearest-neighbour spacing", " nm"),
    "repeat_fraction": ("repeated-localization fraction", ""),
}
#: the smallest robust scale of a statistic: 10 % for those scored in log space, 0.02 for the
#: repeated-localization fraction
MIN_SCALE_LOG, MIN_SCALE_LINEAR = 0.1, 0.02
#: a repeated localization: another within this distance (nm) ...
REPEAT_NM = 30.0
#: ... in one of the next this many frames (a blink seen again, not merged)
REPEAT_FRAMES = 3
#: the statistics are estimated on strided samples: the nearest-neighbour distance of this many
#: localizations, the repeated-localization fraction of this many (each against all), and the
#: medians of precision and photons of this many
NN_SAMPLE, REPEAT_SAMPLE, MEDIAN_SAMPLE = 250, 600, 1000
#: the version of the statistics' definitions: a reference of another version is not compared
#: (2: estimated on samples)
STATISTICS_VERSION = 2


def nucleus_statistics(locs, area_um2: float | None = None) -> dict[str, float]:
    """The input statistics of one nucleus' localizations (those the model sees): count, area
    and density, median localization precision and photons where the table has them, the
    nearest-neighbour spacing (the median nearest-neighbour distance in an evenly strided sample
    of 250 localizations, times sqrt(250 / n): the distance a Poisson process of the nucleus's
    density would have, lowered by clustering), and the share of localizations with another
    within 30 nm in one of the 3 frames before or after (blinks of one emitter not merged into
    one localization; absent without frames). Medians and the share are estimated on evenly
    strided samples (:data:`MEDIAN_SAMPLE`, :data:`REPEAT_SAMPLE`): the statistics cost about a
    millisecond whatever the nucleus's size.

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
    from scipy.spatial import ConvexHull

    from .kernels import nearest_other_distances

    n = int(locs.n)
    out: dict[str, float] = {"localizations": float(n)}
    if n == 0:
        return out
    # the columns as they are (no float64 copy of every localization: only samples are
    # converted, so that a live session's statistics cost O(samples) at any size)
    x, y = np.asarray(locs.x_nm), np.asarray(locs.y_nm)
    if area_um2 is None and n >= 3:
        try:
            area_um2 = ConvexHull(np.column_stack([x, y]).astype(np.float64)).volume / 1e6
        except Exception:  # noqa: BLE001 - collinear points: no area
            area_um2 = None
    if area_um2:
        out["area_um2"] = float(area_um2)
        out["density_per_um2"] = n / float(area_um2)
    # on samples: a nucleus of 10^5 localizations costs what one of a few thousand does
    # (the score must cost the screen next to nothing)
    med = _sample(n, MEDIAN_SAMPLE)
    for col, key in ((locs.precision_nm, "median_precision_nm"), (locs.photons, "median_photons")):
        if col is not None:
            v = np.asarray(col)[med]
            v = v[np.isfinite(v)]
            if len(v):
                out[key] = float(np.median(v))
    if n >= 2:
        # the sample's nearest-neighbour distance scaled by sqrt(m / n): a Poisson process's
        # goes as 1 / sqrt(density)
        idx = _sample(n, NN_SAMPLE)
        d = nearest_other_distances(np.asarray(x[idx], np.float64), np.asarray(y[idx], np.float64))
        out["median_nn_nm"] = float(np.median(d) * np.sqrt(len(d) / n))
        if locs.frame is not None:
            out["repeat_fraction"] = _repeat_fraction(x, y, np.asarray(locs.frame))
    return out


def _sample(n: int, m: int):
    """m of n indices, evenly strided (all of them when n <= m): a table in frame order is
    sampled evenly over the acquisition, and the same table always gives the same sample."""
    if n <= m:
        return slice(None)
    return np.linspace(0, n - 1, m).astype(np.int64)


def model_statistics(locs, spec, area_um2: float | None = None) -> dict[str, float]:
    """:func:`nucleus_statistics` of the localizations a model sees of ``locs``: those of the
    channels ``spec`` (the model's RenderSpec with the file's channel ids) renders — the one
    rule training and every call follow.

    Parameters
    ----------
    locs : Localizations
        One nucleus, all channels.
    spec : RenderSpec
        The RenderSpec it is rendered with.
    area_um2 : float, optional
        Its area (the render's mask).

    Returns
    -------
    dict of str to float
    """
    seen = locs
    if spec.channels is not None and locs.channel is not None:
        keep = np.isin(locs.channel, spec.channels)
        if not keep.all():  # (a copy of every column only where some channel is not the model's)
            seen = locs[keep]
    return nucleus_statistics(seen, area_um2=area_um2)


def _repeat_fraction(x: np.ndarray, y: np.ndarray, frame: np.ndarray) -> float:
    """Share of localizations with another within :data:`REPEAT_NM` in one of the 3 frames
    before or after (:data:`REPEAT_FRAMES`), estimated on an evenly strided sample of
    :data:`REPEAT_SAMPLE` localizations (each against all): candidates by frame (sorted), then
    by distance (:func:`ainu_engine.kernels.repeat_hits`)."""
    from .kernels import repeat_hits

    n = len(x)
    f = np.asarray(frame, np.int64)  # no copy of an int64 column
    xs, ys = x, y
    if np.any(f[1:] < f[:-1]):  # most tables are in frame order already
        order = np.argsort(f, kind="stable")
        f, xs, ys = f[order], x[order], y[order]
    q = np.arange(n) if n <= REPEAT_SAMPLE else _sample(n, REPEAT_SAMPLE)  # (no O(n) arange)
    hit = repeat_hits(f, xs, ys, np.asarray(q, np.int64), REPEAT_FRAMES, REPEAT_NM)
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
        return {"n": self.n, "quantiles": {k: dict(v) for k, v in self.quantiles.items()},
                "version": STATISTICS_VERSION}  # fmt: skip

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


def _pack(a: np.ndarray) -> dict:
    """A float32 array as plain data (base64 of its bytes, little-endian, and its shape)."""
    a = np.ascontiguousarray(a, "<f4")
    return {"shape": list(a.shape), "f4": base64.b64encode(a.tobytes()).decode("ascii")}


def _unpack(d: Mapping) -> np.ndarray:
    a = np.frombuffer(base64.b64decode(d["f4"]), "<f4").astype(np.float64)
    return a.reshape(d["shape"])


@dataclass(frozen=True)
class FeatureReference:
    """Where a model put its training nuclei in its penultimate-layer feature space: the
    features' mean, their principal subspace (``components``, k x d), the class means in it, the
    inverse of a shared shrinkage covariance in it, and the typical norm of the part of a
    training feature outside the subspace.

    :meth:`distances` gives, per feature vector, the Mahalanobis distance to the nearest class
    mean in the subspace and the residual norm in units of the training residual (0 where the
    subspace is the whole space).

    Attributes
    ----------
    mean : ndarray, shape (d,)
    components : ndarray, shape (k, d)
        Orthonormal rows.
    class_means : ndarray, shape (K, k)
    precision : ndarray, shape (k, k)
    residual_scale : float
        Median residual norm of the training features (0: no residual).
    """

    mean: np.ndarray
    components: np.ndarray
    class_means: np.ndarray
    precision: np.ndarray
    residual_scale: float

    @property
    def dim(self) -> int:
        """d, the length of a feature vector."""
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, *, max_components: int = 32):
        """The reference of training features (N, d) with their classes.

        Parameters
        ----------
        features : ndarray, shape (N, d)
        labels : ndarray, shape (N,)
            Class index per row.
        max_components : int, default 32
            Largest subspace kept (also at most N - 1 and d): a covariance of more dimensions
            than a few hundred nuclei can estimate would be noise.

        Returns
        -------
        FeatureReference

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> f = rng.normal(size=(200, 8)); y = rng.integers(0, 2, 200)
        >>> ref = FeatureReference.fit(f, y, max_components=4)
        >>> d, r = ref.distances(np.vstack([f[:1], 10 + f[:1]]))
        >>> bool(d[1] > d[0] and r[0] < 3)
        True
        """
        from sklearn.covariance import LedoitWolf

        x = np.asarray(features, np.float64)
        y = np.asarray(labels)
        if x.ndim != 2 or len(x) < 3:
            raise ValueError(f"need (N >= 3, d) features, got shape {x.shape}")
        mean = x.mean(axis=0)
        xc = x - mean
        _, sv, vt = np.linalg.svd(xc, full_matrices=False)
        rank = int((sv > sv[0] * 1e-6).sum()) if sv.size and sv[0] > 0 else 0
        # at most half the nuclei: n points span n - 1 dimensions, and a subspace that holds
        # every training feature leaves no residual to compare with
        k = max(1, min(max_components, x.shape[1], (len(x) - 1) // 2, rank or 1))
        comp = vt[:k]
        z = xc @ comp.T
        classes = np.unique(y)
        means = np.stack([z[y == c].mean(axis=0) for c in classes])
        within = z - means[np.searchsorted(classes, y)]
        cov = LedoitWolf(assume_centered=True).fit(within).covariance_
        prec = np.linalg.pinv(cov)
        resid = np.linalg.norm(xc - z @ comp, axis=1)
        scale = float(np.median(resid)) if k < x.shape[1] else 0.0
        return cls(mean, comp, means, prec, scale if scale > 1e-12 else 0.0)

    def distances(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Mahalanobis distance to the nearest class mean, residual norm / training median)
        of each row of ``features`` (N, d).

        Parameters
        ----------
        features : ndarray, shape (N, d)

        Returns
        -------
        (ndarray, ndarray)
            Two arrays of N; the residual is 0 without a residual scale.
        """
        x = np.atleast_2d(np.asarray(features, np.float64))
        if x.shape[1] != self.dim:
            raise ValueError(f"features have {x.shape[1]} values; the reference has {self.dim}")
        xc = x - self.mean
        z = xc @ self.components.T
        diff = z[:, None, :] - self.class_means[None]
        m2 = np.einsum("nkd,de,nke->nk", diff, self.precision, diff)
        d = np.sqrt(np.maximum(m2.min(axis=1), 0.0))
        if self.residual_scale > 0:
            r = np.linalg.norm(xc - z @ self.components, axis=1) / self.residual_scale
        else:
            r = np.zeros(len(x))
        return d, r

    def to_dict(self) -> dict:
        """Plain data for a model's metadata (arrays as base64 float32).

        Returns
        -------
        dict
        """
        return {"mean": _pack(self.mean), "components": _pack(self.components),
                "class_means": _pack(self.class_means), "precision": _pack(self.precision),
                "residual_scale": self.residual_scale}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping) -> FeatureReference:
        """The reference :meth:`to_dict` wrote.

        Parameters
        ----------
        d : mapping

        Returns
        -------
        FeatureReference
        """
        return cls(_unpack(d["mean"]), _unpack(d["components"]), _unpack(d["class_means"]),
                   _unpack(d["precision"]), float(d["residual_scale"]))  # fmt: skip


#: the components of the score, and how a message names them
COMPONENTS = {
    "input": "input statistics",
    "features": "the model's features",
    "residual": "the model's features outside the training subspace",
}


@dataclass(frozen=True)
class OodResult:
    """How unlike the training nuclei one nucleus is.

    Attributes
    ----------
    score : float
        The largest component / its threshold (1 = the threshold).
    unfamiliar : bool
        ``score > 1``.
    component : str or None
        The component that gives the score (:data:`COMPONENTS`).
    statistic : str or None
        The input statistic furthest out (:data:`STATISTICS`).
    reason : str
        What is out, e.g. ``median precision 2.4 nm; training 11–18 nm``.
    components : dict
        Each component's ratio to its threshold.
    """

    score: float
    unfamiliar: bool
    component: str | None
    statistic: str | None
    reason: str
    components: Mapping[str, float]


@dataclass(frozen=True)
class OodReference:
    """A model's reference of its training nuclei and the thresholds of the out-of-distribution
    score (stored in its ``training_stats["ood"]``).

    Attributes
    ----------
    inputs : StatisticsReference or None
        The input statistics (``training_stats["input_reference"]``).
    features : FeatureReference or None
        The penultimate-layer features (models exported with an ``embedding`` output).
    thresholds : dict
        Component -> the value above which a held-out in-distribution nucleus is a false alarm at
        the rate ``alpha`` (split between the components).
    alpha : float
        The false-alarm rate the thresholds were set at.
    held_out : dict
        Where the thresholds come from (nuclei, the share of them flagged), and the test set's
        share flagged.
    """

    inputs: StatisticsReference | None
    features: FeatureReference | None
    thresholds: Mapping[str, float]
    alpha: float = 0.05
    held_out: Mapping = None  # type: ignore[assignment]

    @property
    def needs_embedding(self) -> bool:
        """The score uses the model's features."""
        return self.features is not None and "features" in self.thresholds

    def components(self, stats: Mapping[str, float] | None,
                   embedding: np.ndarray | None = None) -> dict[str, float]:  # fmt: skip
        """The raw component values (before division by the thresholds) of one nucleus:
        ``input`` (robust z of the input statistic furthest out), ``features`` and
        ``residual`` (the median over the nucleus's items, e.g. patches).

        Parameters
        ----------
        stats : mapping or None
            :func:`nucleus_statistics` (None: an image, no localizations).
        embedding : ndarray, shape (P, d), optional
            The model's features of the nucleus's P items.

        Returns
        -------
        dict of str to float
        """
        out: dict[str, float] = {}
        if self.inputs is not None and stats:
            out["input"] = self.inputs.score(stats)[0]
        if self.features is not None and embedding is not None and len(embedding):
            d, r = self.features.distances(embedding)
            out["features"] = float(np.median(d))
            if self.features.residual_scale > 0:
                out["residual"] = float(np.median(r))
        return out

    def score(self, stats: Mapping[str, float] | None,
              embedding: np.ndarray | None = None) -> OodResult:  # fmt: skip
        """The out-of-distribution score of one nucleus.

        Parameters
        ----------
        stats : mapping or None
            :func:`nucleus_statistics` of the localizations the model sees (None: an image).
        embedding : ndarray, shape (P, d), optional
            The model's features of its items.

        Returns
        -------
        OodResult

        Examples
        --------
        >>> ref = OodReference(StatisticsReference.from_statistics(
        ...     [{"median_precision_nm": p} for p in (11.0, 13.0, 14.0, 15.0, 18.0)]),
        ...     None, {"input": 4.0})
        >>> r = ref.score({"median_precision_nm": 2.4})
        >>> r.unfamiliar, r.reason
        (True, 'median precision 2.4 nm; training 11.1–17.9 nm')
        >>> ref.score({"median_precision_nm": 14.5}).unfamiliar
        False
        """
        raw = self.components(stats, embedding)
        ratios = {c: v / self.thresholds[c] for c, v in raw.items()
                  if self.thresholds.get(c, 0) > 0}  # fmt: skip
        stat_name, stat_text = None, ""
        if self.inputs is not None and stats:
            _, stat_name, stat_text = self.inputs.score(stats)
        if not ratios:
            return OodResult(float("nan"), False, None, stat_name, "nothing to compare", {})
        comp = max(ratios, key=ratios.get)
        score = float(ratios[comp])
        if comp == "input":
            reason = stat_text
        else:
            reason = (f"{COMPONENTS[comp]} {raw[comp]:.3g}; held-out training nuclei <= "
                      f"{self.thresholds[comp]:.3g}")  # fmt: skip
            if stat_name is not None:
                reason += f" (input statistic furthest out: {stat_text})"
        return OodResult(score, score > 1.0, comp, stat_name, reason, ratios)

    def to_dict(self) -> dict:
        """Plain data for ``training_stats["ood"]`` (the input reference is stored beside it,
        as ``training_stats["input_reference"]``).

        Returns
        -------
        dict
        """
        return {"version": 1, "alpha": self.alpha, "thresholds": dict(self.thresholds),
                "features": None if self.features is None else self.features.to_dict(),
                "held_out": dict(self.held_out or {})}  # fmt: skip

    @classmethod
    def from_training_stats(cls, stats: Mapping | None) -> OodReference | None:
        """The reference a model's ``training_stats`` hold, or None for a model from before
        the score existed (no ``ood`` key).

        Parameters
        ----------
        stats : mapping or None

        Returns
        -------
        OodReference or None
        """
        d = (stats or {}).get("ood")
        if not d:
            return None
        inp = (stats or {}).get("input_reference")
        if inp and int(inp.get("version", 1)) != STATISTICS_VERSION:
            inp = None  # statistics defined otherwise: not comparable (the features still are)
        return cls(
            StatisticsReference.from_dict(inp) if inp else None,
            FeatureReference.from_dict(d["features"]) if d.get("features") else None,
            {k: float(v) for k, v in d["thresholds"].items()},
            float(d.get("alpha", 0.05)),
            dict(d.get("held_out") or {}),
        )


def reason_subject(reason: str | None) -> str:
    """What an ``ood_reason`` is about: the statistic or component it names first.

    Parameters
    ----------
    reason : str or None

    Returns
    -------
    str

    Examples
    --------
    >>> reason_subject("median precision 2.4 nm; training 11–18 nm")
    'median precision'
    >>> reason_subject("the model's features 41.2; held-out training nuclei <= 9.1")
    "the model's features"
    """
    labels = [v[0] for v in STATISTICS.values()] + list(COMPONENTS.values())
    for label in sorted(labels, key=len, reverse=True):
        if (reason or "").startswith(label):
            return label
    return "?"


#: what a model from before the score carries instead of it
NO_REFERENCE_NOTE = (
    "this model has no out-of-distribution reference (exported before ainu-engine 0.2): "
    "ood_score is absent and nothing is flagged 'unfamiliar'; retrain to get it"
)
