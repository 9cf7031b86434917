"""Turning logits into the numbers a call reports: softmax, the patch vote, cross-entropy.
One definition, used by screening, evaluation, training and explanation alike."""

from __future__ import annotations

import numpy as np

__all__ = [
    "softmax",
    "patch_vote",
    "mean_cross_entropy",
    "fit_temperature",
    "calibrate_temperature",
    "expected_calibration_error",
    "brier_score",
    "TEMPERATURE_PRIOR_SD",
    "MIN_CALIBRATION_ITEMS",
]

#: the prior on log T (normal, mean 0): T stays within ×/÷ e^(2·0.5) ≈ 2.7 of 1 unless the data
#: say otherwise — a separable validation set can no longer drive T to the search bound
TEMPERATURE_PRIOR_SD = 0.5
#: fewer labelled items than this (or one class only) calibrate nothing: T = 1, with the reason
MIN_CALIBRATION_ITEMS = 10


def softmax(z, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` (max-subtracted, so large logits do not overflow).

    Parameters
    ----------
    z : array_like
        Logits.
    axis : int, default -1
        The class axis.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> softmax([0.0, 0.0]).tolist()
    [0.5, 0.5]
    """
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def patch_vote(prob: np.ndarray) -> tuple[np.ndarray, bool]:
    """A nucleus's scores from its patches' probabilities (P, K): the class that more than 50 %
    of the patches vote for (argmax per patch) wins; the score per class is that vote share plus
    1e-3 x the mean patch probability, normalised, so that a nucleus without a majority
    (``undecided``, returned too) falls to the more probable class and ROC/PR curves get a
    continuous score.

    Parameters
    ----------
    prob : ndarray, shape (P, K)
        The patches' probabilities.

    Returns
    -------
    scores : ndarray, shape (K,)
    undecided : bool
        No class has more than half of the votes.

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.scores import patch_vote
    >>> s, undecided = patch_vote(np.array([[.9, .1], [.8, .2], [.3, .7]]))
    >>> int(s.argmax()), undecided
    (0, False)
    """
    k = prob.shape[1]
    share = np.bincount(prob.argmax(1), minlength=k) / len(prob)
    score = share + 1e-3 * prob.mean(0)
    return score / score.sum(), bool(share.max() <= 0.5)


def mean_cross_entropy(prob: np.ndarray, y: np.ndarray) -> float:
    """Mean −log p(true class) over items (probabilities clipped at 1e-12).

    Parameters
    ----------
    prob : ndarray, shape (N, K)
        Probabilities.
    y : ndarray, shape (N,)
        True class indices.

    Returns
    -------
    float
    """
    y = np.asarray(y)
    return float(-np.mean(np.log(np.clip(prob[np.arange(len(y)), y], 1e-12, None))))


def fit_temperature(
    logits,
    y,
    *,
    prior_sd: float | None = TEMPERATURE_PRIOR_SD,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> float:
    """The temperature T of softmax(logits / T) (Guo et al. 2017, "On calibration of modern
    neural networks"): T > 1 softens over-confident probabilities, T < 1 sharpens them; the
    argmax, and so every call, is unchanged. With ``prior_sd`` the maximum a posteriori T under a
    normal prior on log T of that sd around 0 (T = 1): the summed cross-entropy plus
    (log T)² / (2·sd²). Without a prior (``None``) the maximum-likelihood T, which runs to the
    bound on a separable set (every item right with a margin: the cross-entropy falls as T → 0,
    the logits are multiplied by 10–20) — the reason for the prior.

    Parameters
    ----------
    logits : array_like, shape (N, K)
        Validation logits.
    y : array_like, shape (N,)
        Their true classes.
    prior_sd : float or None
        The prior's sd on log T (:data:`TEMPERATURE_PRIOR_SD`); None: no prior.
    bounds : (float, float)
        The search interval of T.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Logits and labels of different lengths, or none.

    Examples
    --------
    >>> z = np.array([[4.0, 0.0], [3.0, 0.0], [0.0, 2.0], [2.5, 0.0]])
    >>> t = fit_temperature(z, np.array([0, 1, 1, 0]))
    >>> t > 1.0  # one confident call is wrong: soften
    True
    >>> sep = np.array([[3.0, 0.0], [0.0, 3.0]] * 5)
    >>> fit_temperature(sep, np.array([0, 1] * 5), prior_sd=None) < 0.1  # driven to 0
    True
    >>> round(fit_temperature(sep, np.array([0, 1] * 5)), 2)  # sharper, within reason
    0.8
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, np.float64)
    y = np.asarray(y, np.int64)
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise ValueError("fit_temperature needs logits (N, K) and N labels, N > 0")
    n = len(y)

    def objective(log_t: float) -> float:
        nll = n * mean_cross_entropy(softmax(z / np.exp(log_t), axis=1), y)
        return nll + (0.0 if prior_sd is None else 0.5 * (log_t / prior_sd) ** 2)

    res = minimize_scalar(
        objective, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded"
    )
    return float(np.exp(res.x))


def calibrate_temperature(
    logits,
    y,
    *,
    prior_sd: float | None = TEMPERATURE_PRIOR_SD,
    min_items: int = MIN_CALIBRATION_ITEMS,
) -> tuple[float, str | None]:
    """:func:`fit_temperature` where the evidence allows it: ``(T, None)``; else ``(1.0,
    reason)`` — fewer than ``min_items`` labelled items, or one class only (a temperature fitted
    there says nothing about the other).

    Parameters
    ----------
    logits : array_like, shape (N, K)
        Validation logits.
    y : array_like, shape (N,)
        Their true classes.
    prior_sd : float or None
        As :func:`fit_temperature`.
    min_items : int
        The fewest items calibrated on.

    Returns
    -------
    (float, str or None)
        The temperature, and why none was fitted.

    Examples
    --------
    >>> calibrate_temperature(np.zeros((3, 2)), np.array([0, 1, 0]))
    (1.0, 'too few items to calibrate on (3 < 10): T = 1')
    """
    y = np.asarray(y)
    if len(y) < min_items:
        return 1.0, f"too few items to calibrate on ({len(y)} < {min_items}): T = 1"
    if len(np.unique(y)) < 2:
        return 1.0, "the items to calibrate on are of one class: T = 1"
    return fit_temperature(logits, y, prior_sd=prior_sd), None


def brier_score(prob, y) -> float:
    """The multi-class Brier score: the mean over items of Σ_k (p_k − 1[k = y])² (0 is
    perfect; 0.5 for a two-class model that always says 0.5).

    Parameters
    ----------
    prob : array_like, shape (N, K)
        Probabilities.
    y : array_like, shape (N,)
        True class indices.

    Returns
    -------
    float

    Examples
    --------
    >>> brier_score(np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0, 1]))
    0.5
    """
    p = np.asarray(prob, np.float64)
    y = np.asarray(y, np.int64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def expected_calibration_error(prob, y, *, n_bins: int = 15) -> float:
    """Top-label expected calibration error: the mean over equal-width confidence bins of
    ``|accuracy − confidence|``, weighted by the share of items in each bin.

    Parameters
    ----------
    prob : array_like, shape (N, K)
        Probabilities.
    y : array_like, shape (N,)
        True classes.
    n_bins : int, default 15
        Confidence bins.

    Returns
    -------
    float

    Examples
    --------
    >>> expected_calibration_error(np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([0, 0]))
    0.15
    """
    p = np.asarray(prob, np.float64)
    y = np.asarray(y, np.int64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        sel = bins == b
        ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return round(float(ece), 12)
