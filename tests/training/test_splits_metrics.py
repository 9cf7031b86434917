"""Splits are stratified, disjoint and group-disjoint; metrics equal scikit-learn on
hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from ainu_engine.training.metrics import (  # noqa: E402
    bootstrap_ci,
    classification_metrics,
    normal_ci,
    plot_learning_curves,
    plot_metrics,
)
from ainu_engine.training.splits import kfold_splits, train_test_split  # noqa: E402

LABELS = np.array(["hiPSC"] * 60 + ["somatic"] * 40)
GROUPS = np.array([f"slide{i % 10}" for i in range(60)] + [f"slide{10 + i % 8}" for i in range(40)])


def test_train_test_split_is_stratified_disjoint_and_seeded():
    s = train_test_split(LABELS, seed=3)
    assert len(s.test) == 20 and len(s.train) == 80
    assert np.intersect1d(s.train, s.test).size == 0
    assert np.mean(LABELS[s.test] == "hiPSC") == pytest.approx(0.6)
    assert np.array_equal(train_test_split(LABELS, seed=3).test, s.test)
    assert not np.array_equal(train_test_split(LABELS, seed=4).test, s.test)


def test_group_split_keeps_groups_whole():
    s = train_test_split(LABELS, groups=GROUPS, seed=0)
    assert not set(GROUPS[s.train]) & set(GROUPS[s.test])
    assert set(LABELS[s.test]) == {"hiPSC", "somatic"}
    assert 0.1 <= len(s.test) / len(LABELS) <= 0.35


@pytest.mark.parametrize("groups", [None, GROUPS])
def test_kfold_covers_every_row_once(groups):
    folds = kfold_splits(LABELS, k=5, groups=groups, seed=1)
    assert len(folds) == 5
    tests = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(LABELS)))
    for f in folds:
        assert np.intersect1d(f.train, f.test).size == 0
        if groups is not None:
            assert not set(groups[f.train]) & set(groups[f.test])
        else:
            assert np.mean(LABELS[f.test] == "hiPSC") == pytest.approx(0.6)


def test_split_errors():
    with pytest.raises(ValueError, match="cannot make 5 group-disjoint folds"):
        kfold_splits(LABELS, k=5, groups=["a", "b"] * 50)
    with pytest.raises(ValueError, match="fewer than k=5"):
        kfold_splits(["a"] * 10 + ["b"] * 3, k=5)
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(LABELS, test_fraction=1.5)


def test_binary_metrics_equal_sklearn():
    from sklearn import metrics as skm

    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    p1 = np.array([0.1, 0.4, 0.6, 0.8, 0.7, 0.3, 0.9, 0.2])
    prob = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y, prob, ["mock", "1hpi"], n_boot=200)
    pred = (p1 > 0.5).astype(int)
    assert m["accuracy"] == skm.accuracy_score(y, pred) == 0.75
    assert m["balanced_accuracy"] == skm.balanced_accuracy_score(y, pred)
    assert m["confusion"] == [[3, 1], [1, 3]]
    assert m["confusion_normalized"] == [[0.75, 0.25], [0.25, 0.75]]
    assert m["roc_auc"] == skm.roc_auc_score(y, p1) == 0.875
    assert m["average_precision"]["1hpi"] == skm.average_precision_score(y, p1)
    assert m["f1_macro"] == skm.f1_score(y, pred, average="macro")
    lo, hi = m["accuracy_ci_normal"]
    assert (lo, hi) == pytest.approx(normal_ci(0.75, 8))
    assert lo == pytest.approx(0.75 - 1.959964 * np.sqrt(0.75 * 0.25 / 8), rel=1e-6)
    blo, bhi = m["accuracy_ci_bootstrap"]
    assert 0 <= blo <= 0.75 <= bhi <= 1


def test_three_class_metrics_equal_sklearn():
    from sklearn import metrics as skm

    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    prob = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.1, 0.6, 0.3],
            [0.2, 0.2, 0.6],
            [0.3, 0.4, 0.3],
            [0.2, 0.5, 0.3],
            [0.5, 0.1, 0.4],
            [0.8, 0.1, 0.1],
            [0.3, 0.3, 0.4],
            [0.1, 0.2, 0.7],
        ]
    )
    m = classification_metrics(y, prob, ["mock", "1hpi", "3hpi"], n_boot=100)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, prob.argmax(1)))
    assert m["roc_auc_macro_ovr"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr"))
    onehot = np.eye(3)[y]
    assert m["roc_auc_micro_ovr"] == pytest.approx(skm.roc_auc_score(onehot, prob, average="micro"))
    assert np.allclose(np.sum(m["confusion_normalized"], axis=1), 1)
    assert set(m["roc_curves"]) == {"mock", "1hpi", "3hpi"}
    # the averaged one-vs-rest curves the paper shows: micro pools every (nucleus, class) pair
    avg = m["roc_average_curves"]
    assert avg["micro"]["auc"] == pytest.approx(m["roc_auc_micro_ovr"])
    fpr_m, tpr_m, _ = skm.roc_curve(onehot.ravel(), prob.ravel())
    assert avg["micro"]["fpr"] == pytest.approx(fpr_m.tolist())
    # macro: the classes' TPRs averaged on one FPR grid, monotone from (0, .) to (1, 1)
    grid, mean = np.array(avg["macro"]["fpr"]), np.array(avg["macro"]["tpr"])
    each = [np.interp(grid, *skm.roc_curve(onehot[:, c], prob[:, c])[:2]) for c in range(3)]
    assert mean == pytest.approx(np.mean(each, axis=0).tolist())
    assert np.all(np.diff(mean) >= 0) and grid[-1] == 1 and mean[-1] == 1
    assert avg["macro"]["auc"] == pytest.approx(skm.auc(grid, mean))


def test_bootstrap_is_seeded_and_skips_undefined_resamples():
    from sklearn import metrics as skm

    y = np.array([0, 1] * 5)
    p = np.stack([1 - y * 0.8, y * 0.8], axis=1)
    f = lambda a, b: skm.roc_auc_score(a, b[:, 1])  # noqa: E731
    assert bootstrap_ci(y, p, f, n_boot=50, seed=1) == bootstrap_ci(y, p, f, n_boot=50, seed=1)
    assert bootstrap_ci(np.zeros(5, int), np.ones((5, 2)) / 2, f, n_boot=20) != (0, 0)


def test_plots_are_written(tmp_path):
    y = np.array([0, 1, 0, 1, 1, 0])
    p1 = np.array([0.2, 0.9, 0.4, 0.6, 0.3, 0.1])
    m = classification_metrics(y, np.stack([1 - p1, p1], 1), ["a", "b"], n_boot=50)
    files = plot_metrics(m, tmp_path)
    assert [f.name for f in files] == ["confusion.png", "roc.png", "pr.png", "metrics.json"]
    assert all(f.stat().st_size > 1000 for f in files[:3])
    lc = plot_learning_curves(
        [
            {
                "epoch": i,
                "train_loss": 1 / (i + 1),
                "val_loss": 1.2 / (i + 1),
                "val_accuracy": 0.5 + 0.05 * i,
            }
            for i in range(5)
        ],
        tmp_path / "lc.png",
    )
    assert lc.read_bytes().startswith(b"\x89PNG")
