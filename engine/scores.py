"""Turning logits into the numbers a call reports: softmax, the patch vote, cross-entropy.
One definition, used by screening, evaluation, training and explanation alike."""

from __future__ import annotations

import numpy as np

__all__ = ["softmax", "patch_vote", "mean_cross_entropy"]


def softmax(z, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` (max-subtracted, so large logits do not overflow)."""
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def patch_vote(prob: np.ndarray) -> tuple[np.ndarray, bool]:
    """A nucleus's scores from its patches' probabilities (P, K): the class that more than 50 %
    of the patches vote for (argmax per patch) wins; the score per class is that vote share plus
    1e-3 x the mean patch probability, normalised, so that a nucleus without a majority
    (``undecided``, returned too) falls to the more probable class and ROC/PR curves get a
    continuous score.

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
    """Mean −log p(true class) over items (probabilities clipped at 1e-12)."""
    y = np.asarray(y)
    return float(-np.mean(np.log(np.clip(prob[np.arange(len(y)), y], 1e-12, None))))
