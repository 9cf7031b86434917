"""Turning logits into the numbers a call reports: softmax, the patch vote, cross-entropy.
One definition, used by screening, evaluation, training and explanation alike."""

from __future__ import annotations

import numpy as np

__all__ = [
    "softmax",
    "patch_vote",
    "mean_cross_entropy",
    "fit_temperature",
    "expected_calibration_error",
]


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


def fit_temperature(logits, y, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature T that minimises the cross-entropy of softmax(logits / T) on labelled
    items (Guo et al. 2017, "On calibration of modern neural networks"): T > 1 softens
    over-confident probabilities, T < 1 sharpens them; the argmax, and so every call, is unchanged.

    Parameters
    ----------
    logits : array_like, shape (N, K)
        Validation logits.
    y : array_like, shape (N,)
        Their true classes.
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
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, np.float64)
    y = np.asarray(y, np.int64)
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise ValueError("fit_temperature needs logits (N, K) and N labels, N > 0")

    def nll(log_t: float) -> float:
        return mean_cross_entropy(softmax(z / np.exp(log_t), axis=1), y)

    res = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return float(np.exp(res.x))


def expected_calibration_error(prob, y, *, n_bins: int = 15) -> float:
    """Top-label expected calibration error: the mean over equal-width confidence bins of
    |accuracy − confidence|, weighted by the share of items in each bin.

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
