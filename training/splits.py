"""Train/test splits and cross-validation folds: stratified by class, and group-aware when a
group column (cell line, donor, slide) is given, so that a group never spans train and test
(the paper's leave-one-cell-type-out check). Built on scikit-learn's splitters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Split", "train_test_split", "kfold_splits"]


@dataclass(frozen=True)
class Split:
    """Indices into the manifest rows.

    Attributes
    ----------
    train : np.ndarray
        Training rows.
    test : np.ndarray
        Test rows.
    fold : int | None
        The fold's index (k-fold), or None.
    """

    train: np.ndarray
    test: np.ndarray
    fold: int | None = None

    def check_disjoint(self, groups: Sequence | None = None) -> None:
        """Raise ``ValueError`` if a row (or, with ``groups``, a group) is on both sides."""
        if np.intersect1d(self.train, self.test).size:
            raise ValueError("a manifest row is in both train and test")
        if groups is not None:
            g = np.asarray(groups)
            both = np.intersect1d(g[self.train], g[self.test])
            if both.size:
                raise ValueError(f"groups in both train and test: {list(both)[:5]}")


def _labels(labels: Sequence) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"labels must be a 1-D sequence of at least 2 items, got shape {y.shape}")
    return y


def train_test_split(
    labels: Sequence, *, test_fraction: float = 0.2, groups: Sequence | None = None, seed: int = 0
) -> Split:
    """One stratified split (80/20 by default) with a fixed seed.

    With ``groups``, whole groups go to one side (``StratifiedGroupKFold`` with
    round(1/test_fraction) folds; its first fold is the test set), so the class balance is
    kept as well as the group structure allows.

    Parameters
    ----------
    labels : sequence
        Each row's class.
    test_fraction : float
        The test share.
    groups : sequence, optional
        Each row's group.
    seed : int
        The seed.

    Returns
    -------
    Split

    Examples
    --------
    >>> from ainu_engine.training.splits import train_test_split
    >>> s = train_test_split(["a"] * 10 + ["b"] * 10, seed=1)
    >>> len(s.train), len(s.test)
    (16, 4)
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

    y = _labels(labels)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if groups is None:
        sss = StratifiedShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
        train, test = next(sss.split(np.zeros(len(y)), y))
    else:
        g = np.asarray(groups)
        n_splits = max(2, round(1.0 / test_fraction))
        _check_groups(g, n_splits)
        sgk = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train, test = next(sgk.split(np.zeros(len(y)), y, g))
    split = Split(np.sort(train), np.sort(test))
    split.check_disjoint(groups)
    return split


def kfold_splits(
    labels: Sequence, *, k: int = 5, groups: Sequence | None = None, seed: int = 0
) -> list[Split]:
    """Stratified k-fold (k = 5 as in the paper's model selection); group-aware with
    ``groups`` (``StratifiedGroupKFold``). Every row is in exactly one test fold.

    Parameters
    ----------
    labels : sequence
        Each row's class.
    k : int
        Folds.
    groups : sequence, optional
        Each row's group.
    seed : int
        The seed.

    Returns
    -------
    list of Split
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = _labels(labels)
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    counts = np.unique(y, return_counts=True)[1]
    if counts.min() < k and groups is None:
        raise ValueError(f"the smallest class has {counts.min()} items, fewer than k={k} folds")
    if groups is None:
        it = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    else:
        g = np.asarray(groups)
        _check_groups(g, k)
        it = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
            np.zeros(len(y)), y, g
        )
    folds = [Split(np.sort(tr), np.sort(te), fold=i) for i, (tr, te) in enumerate(it)]
    for f in folds:
        f.check_disjoint(groups)
    return folds


def _check_groups(groups: np.ndarray, n_splits: int) -> None:
    n = np.unique(groups).size
    if n < n_splits:
        raise ValueError(
            f"{n} groups cannot make {n_splits} group-disjoint folds; "
            "use fewer folds or finer groups"
        )
