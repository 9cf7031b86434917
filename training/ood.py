"""The out-of-distribution reference a trained classifier carries (:mod:`ainu_engine.ood`): the
penultimate-layer features of its training nuclei, and thresholds set on held-out nuclei.

The features' reference is fitted on the nuclei the weights were fitted on; the thresholds on
the validation nuclei (held out from the weights: features of training nuclei are tighter than
those of any new nucleus, so a threshold set on them would flag most new ones). The false-alarm
rate ``alpha`` is split evenly between the components (input statistics, features, residual):
each threshold is the ``1 - alpha / m`` quantile of its component over the held-out nuclei, so
that at most about ``alpha`` of in-distribution nuclei are flagged by any of them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ainu_engine.ood import FeatureReference, OodReference, StatisticsReference

__all__ = ["ALPHA", "MIN_HELD_OUT", "embeddings", "fit_reference", "threshold"]

#: the default false-alarm rate on in-distribution nuclei
ALPHA = 0.05
#: fewer held-out nuclei than this: thresholds from the training nuclei instead (stated)
MIN_HELD_OUT = 8


def embeddings(model, images: np.ndarray, *, device: str = "cpu",
               batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Logits (N, K) and penultimate-layer features (N, d) of ``images`` (N, C, S, S), in eval
    mode (``model.forward_with_embedding``).

    Parameters
    ----------
    model : torch.nn.Module
        A classifier of the registry.
    images : ndarray or sequence of arrays
        Items.
    device : str
    batch_size : int

    Returns
    -------
    (ndarray, ndarray)
    """
    import torch

    model.eval()
    logits, feats = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            batch = [np.asarray(a, np.float32) for a in images[i : i + batch_size]]
            x = torch.from_numpy(np.stack(batch)).to(device)
            z, e = model.forward_with_embedding(x)
            logits.append(z.float().cpu().numpy())
            feats.append(e.float().cpu().numpy())
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(logits), np.concatenate(feats)


def _per_nucleus(values: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """The median of ``values`` per nucleus (``owner``: each item's nucleus), in nucleus order."""
    return np.array([np.median(values[owner == o]) for o in np.unique(owner)])


def threshold(values: np.ndarray, level: float) -> float:
    """The ``level`` quantile of a component over held-out nuclei: the larger of the empirical
    quantile and that of a log-normal fitted to the values. A few dozen held-out nuclei put the
    empirical 98th percentile at about their maximum, which underestimates the tail; the
    log-normal's quantile extrapolates it (the components are positive and right-skewed).

    Parameters
    ----------
    values : ndarray
        The component over held-out nuclei.
    level : float
        The quantile (e.g. 0.983).

    Returns
    -------
    float

    Examples
    --------
    >>> v = np.random.default_rng(0).lognormal(0, 0.5, 10_000)
    >>> round(threshold(v, 0.95), 1)  # exp(1.645 * 0.5) = 2.28
    2.3
    """
    from scipy.stats import norm

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    emp = float(np.quantile(v, level))
    pos = v[v > 0]
    par = 0.0
    if len(pos) >= 3:
        lv = np.log(pos)
        par = float(np.exp(lv.mean() + norm.ppf(level) * lv.std(ddof=1)))
    return max(emp, par, 1e-6)


def fit_reference(
    fit_features: np.ndarray,
    fit_labels: np.ndarray,
    held_features: np.ndarray,
    held_owner: np.ndarray,
    input_reference: Mapping | None,
    input_stats: list[Mapping],
    held_input_stats: list[Mapping],
    *,
    alpha: float = ALPHA,
    max_components: int = 32,
) -> OodReference:
    """The out-of-distribution reference of a trained classifier.

    Parameters
    ----------
    fit_features : ndarray, shape (N, d)
        Features of the items the weights were fitted on.
    fit_labels : ndarray, shape (N,)
        Their classes.
    held_features : ndarray, shape (M, d)
        Features of held-out items (the validation split).
    held_owner : ndarray, shape (M,)
        Each held-out item's nucleus (patch mode: several items per nucleus).
    input_reference : mapping or None
        ``training_stats["input_reference"]`` (:class:`~ainu_engine.ood.StatisticsReference`).
    input_stats : list of mapping
        Input statistics of the training nuclei (fallback thresholds).
    held_input_stats : list of mapping
        Input statistics of the held-out nuclei, in the order of ``np.unique(held_owner)``.
    alpha : float, default 0.05
        False-alarm rate on in-distribution nuclei, split between the components.
    max_components : int, default 32
        Largest principal subspace of the features.

    Returns
    -------
    OodReference
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    inputs = StatisticsReference.from_dict(input_reference) if input_reference else None
    feats = None
    if fit_features is not None and len(fit_features) >= 3 and np.unique(fit_labels).size >= 1:
        feats = FeatureReference.fit(fit_features, fit_labels, max_components=max_components)
    held: dict[str, np.ndarray] = {}
    n_held = len(np.unique(held_owner)) if held_owner is not None else 0
    source = "held-out (validation) nuclei"
    if feats is not None and n_held >= MIN_HELD_OUT:
        d, r = feats.distances(held_features)
        held["features"] = _per_nucleus(d, held_owner)
        if feats.residual_scale > 0:
            held["residual"] = _per_nucleus(r, held_owner)
    elif feats is not None:
        # too few held-out nuclei: the training nuclei's own features (tighter: flags more)
        source = f"training nuclei ({n_held} held-out nuclei are too few)"
        d, r = feats.distances(fit_features)
        held["features"] = d
        if feats.residual_scale > 0:
            held["residual"] = r
    if inputs is not None:
        z = np.array([inputs.score(s)[0] for s in held_input_stats if s])
        if len(z) >= MIN_HELD_OUT:
            held["input"] = z
        else:
            z = np.array([inputs.score(s)[0] for s in input_stats if s])
            if len(z):
                held["input"] = z
    m = max(1, len(held))
    level = 1 - alpha / m
    thresholds = {c: threshold(v, level) for c, v in held.items() if len(v)}
    flagged = None
    lengths = {len(v) for v in held.values()}
    if held and len(lengths) == 1:  # the same nuclei in every component: the combined rate
        ratio = np.max([v / thresholds[c] for c, v in held.items()], axis=0)
        flagged = float(np.mean(ratio > 1))
    return OodReference(
        inputs, feats, thresholds, alpha,
        {"source": source, "n": int(n_held), "level_per_component": level,
         "flagged": flagged},
    )  # fmt: skip
