"""Classification metrics with confidence intervals, from scikit-learn (nothing hand-written),
and the plots a person reads (confusion matrix, ROC, PR, learning curves)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ainu_engine.strict_json import dumps

__all__ = [
    "classification_metrics",
    "normal_ci",
    "bootstrap_ci",
    "plot_metrics",
    "plot_learning_curves",
    "calibration_scores",
    "plot_reliability",
]

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def normal_ci(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Normal-approximation interval p ± z·sqrt(p(1−p)/n), clipped to [0, 1] (as in the paper).

    Parameters
    ----------
    p : float
        The proportion.
    n : int
        Items.
    z : float
        The normal quantile (1.96).

    Returns
    -------
    (float, float)
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    half = z * math.sqrt(max(p * (1.0 - p), 0.0) / n)
    return (max(0.0, p - half), min(1.0, p + half))


def bootstrap_ci(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    metric,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y_true, y_prob)`` over resampled items;
    resamples where the metric is undefined (e.g. one class only) are skipped.

    Parameters
    ----------
    y_true : ndarray
        True classes.
    y_prob : ndarray, shape (N, K)
        Probabilities.
    metric : callable
        ``metric(y_true, y_prob) -> float``.
    n_boot : int
        Resamples.
    seed : int
        The seed.
    level : float
        The interval's level.

    Returns
    -------
    (float, float)
    """
    import warnings

    rng = np.random.default_rng(seed)
    n = len(y_true)
    values = []
    with warnings.catch_warnings():  # one-class resamples are expected; they are skipped
        warnings.simplefilter("ignore")
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            try:
                v = metric(y_true[idx], y_prob[idx])
            except ValueError:
                continue
            if v is not None and np.isfinite(v):
                values.append(v)
    if not values:
        return (float("nan"), float("nan"))
    a = (1.0 - level) / 2
    return (float(np.quantile(values, a)), float(np.quantile(values, 1 - a)))


def classification_metrics(
    y_true: Sequence[int],
    y_prob: np.ndarray,
    class_names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Metrics of predicted class probabilities against integer labels.

    Parameters
    ----------
    y_true : sequence of int
        True class indices (0 .. K-1).
    y_prob : array (N, K)
        Predicted probabilities (rows sum to 1).
    class_names : sequence of str
        K names, in index order.
    n_boot : int, default 1000
        Bootstrap resamples of the intervals.
    seed : int
        The bootstrap's seed.

    Returns
    -------
    dict
        ``n``, ``accuracy`` (+ ``accuracy_ci_normal``, ``accuracy_ci_bootstrap``),
        ``balanced_accuracy`` (+ bootstrap CI), ``f1_macro``, ``f1_per_class``,
        ``confusion`` (counts, rows = true) and ``confusion_normalized`` (rows sum to 1),
        ``roc_auc`` (binary: of the second class; 3+ classes: ``roc_auc_macro_ovr`` and
        ``roc_auc_micro_ovr``), ``average_precision`` per class, and the curves
        (``roc_curves``, ``pr_curves``) as lists for plotting. All from scikit-learn.
    """
    from sklearn import metrics as skm
    from sklearn.preprocessing import label_binarize

    y = np.asarray(y_true, dtype=int)
    p = np.asarray(y_prob, dtype=float)
    k = len(class_names)
    if p.ndim != 2 or p.shape != (len(y), k):
        raise ValueError(f"y_prob must have shape ({len(y)}, {k}), got {p.shape}")
    if y.size == 0:
        raise ValueError("no predictions to evaluate")
    pred = p.argmax(axis=1)
    labels = list(range(k))
    acc = float(skm.accuracy_score(y, pred))
    out = {
        "n": int(len(y)),
        "class_names": list(class_names),
        "accuracy": acc,
        "accuracy_ci_normal": list(normal_ci(acc, len(y))),
        "accuracy_ci_bootstrap": list(
            bootstrap_ci(
                y, p, lambda a, b: skm.accuracy_score(a, b.argmax(axis=1)), n_boot=n_boot, seed=seed
            )
        ),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "balanced_accuracy_ci_bootstrap": list(
            bootstrap_ci(
                y,
                p,
                lambda a, b: skm.balanced_accuracy_score(a, b.argmax(axis=1)),
                n_boot=n_boot,
                seed=seed,
            )
        ),
        "f1_macro": float(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "f1_per_class": [
            float(v) for v in skm.f1_score(y, pred, labels=labels, average=None, zero_division=0)
        ],
        "confusion": skm.confusion_matrix(y, pred, labels=labels).tolist(),
        "confusion_normalized": np.nan_to_num(
            skm.confusion_matrix(y, pred, labels=labels, normalize="true")
        ).tolist(),
    }
    present = np.unique(y)
    onehot = label_binarize(y, classes=labels) if k > 2 else np.stack([1 - y, y], axis=1)
    if k == 2:
        if present.size == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y, p[:, 1]))
            out["roc_auc_ci_bootstrap"] = list(
                bootstrap_ci(
                    y, p, lambda a, b: skm.roc_auc_score(a, b[:, 1]), n_boot=n_boot, seed=seed
                )
            )
    elif present.size == k:
        out["roc_auc_macro_ovr"] = float(
            skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels)
        )
        out["roc_auc_micro_ovr"] = float(skm.roc_auc_score(onehot, p, average="micro"))
    out["average_precision"] = {}
    out["roc_curves"], out["pr_curves"] = {}, {}
    for c in labels:
        if onehot[:, c].min() == onehot[:, c].max():
            continue  # a class absent from (or alone in) y_true has no curve
        fpr, tpr, _ = skm.roc_curve(onehot[:, c], p[:, c])
        prec, rec, _ = skm.precision_recall_curve(onehot[:, c], p[:, c])
        name = class_names[c]
        out["average_precision"][name] = float(skm.average_precision_score(onehot[:, c], p[:, c]))
        out["roc_curves"][name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        out["pr_curves"][name] = {"precision": prec.tolist(), "recall": rec.tolist()}
    if k > 2 and present.size == k:
        out["roc_average_curves"] = _average_roc(onehot, p, labels)
    return out


def _average_roc(onehot: np.ndarray, p: np.ndarray, labels) -> dict:
    """One-vs-rest ROC averages of 3+ classes: ``micro`` (every (nucleus, class) pair pooled)
    and ``macro`` (the classes' TPRs averaged on the union of their FPRs), with their AUCs."""
    from sklearn import metrics as skm

    fpr, tpr, _ = skm.roc_curve(onehot.ravel(), p.ravel())
    micro = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": float(skm.auc(fpr, tpr))}
    curves = [skm.roc_curve(onehot[:, c], p[:, c])[:2] for c in labels]
    grid = np.unique(np.concatenate([f for f, _ in curves]))
    mean_tpr = np.mean([np.interp(grid, f, t) for f, t in curves], axis=0)
    macro = {"fpr": grid.tolist(), "tpr": mean_tpr.tolist(), "auc": float(skm.auc(grid, mean_tpr))}
    return {"micro": micro, "macro": macro}


def plot_metrics(metrics: dict, out_dir: str | Path, *, prefix: str = "") -> list[Path]:
    """Write confusion.png, roc.png and pr.png (and metrics.json) into ``out_dir``.

    Parameters
    ----------
    metrics : dict
        :func:`classification_metrics`' result.
    out_dir : str or Path
        The folder.
    prefix : str
        Before each file's name.

    Returns
    -------
    list of Path
    """
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = metrics["class_names"]
    written = []
    fig = Figure(figsize=(4 + 0.4 * len(names), 3.5 + 0.4 * len(names)))
    ax = fig.subplots()
    cm = np.asarray(metrics["confusion_normalized"])
    counts = np.asarray(metrics["confusion"])
    im = ax.imshow(cm, vmin=0, vmax=1, cmap="viridis")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{cm[i, j]:.2f}\n({counts[i, j]})",
                ha="center",
                va="center",
                color="white" if cm[i, j] < 0.6 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    lo, hi = metrics["accuracy_ci_normal"]
    ax.set_title(
        f"accuracy {metrics['accuracy']:.3f} (95 % CI {lo:.3f}-{hi:.3f}), n={metrics['n']}"
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    written.append(_save(fig, out / f"{prefix}confusion.png"))
    for kind, xs, ys, xl, yl in (
        ("roc", "fpr", "tpr", "false positive rate", "true positive rate"),
        ("pr", "recall", "precision", "recall", "precision"),
    ):
        fig = Figure(figsize=(4.5, 4))
        ax = fig.subplots()
        for name, curve in metrics[f"{kind}_curves"].items():
            extra = f"AP {metrics['average_precision'][name]:.3f}" if kind == "pr" else ""
            ax.plot(curve[xs], curve[ys], label=f"{name} {extra}".strip())
        if kind == "roc":
            for avg, curve in (metrics.get("roc_average_curves") or {}).items():
                ax.plot(curve["fpr"], curve["tpr"], ls=":", lw=2,
                        label=f"{avg}-average (AUC {curve['auc']:.3f})")  # fmt: skip
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
        written.append(_save(fig, out / f"{prefix}{kind}.png"))
    path = out / f"{prefix}metrics.json"
    path.write_text(dumps(metrics, indent=2) + "\n")
    written.append(path)
    return written


def plot_learning_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Loss and accuracy per epoch (``history`` items: epoch, train_loss, val_loss,
    train_accuracy, val_accuracy; missing keys are skipped) into one PNG.

    Parameters
    ----------
    history : sequence of dict
        Per-epoch records.
    path : str or Path
        The PNG.

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.5))
    axes = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    for ax, what in zip(axes, ("loss", "accuracy"), strict=True):
        for split in ("train", "val"):
            key = f"{split}_{what}"
            if any(key in h for h in history):
                ax.plot(epochs, [h.get(key, np.nan) for h in history], marker=".", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.legend()
    return _save(fig, Path(path))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def calibration_scores(logits, y, temperature: float, *, prefix: str = "", ci: bool = False,
                       seed: int = 0) -> dict:  # fmt: skip
    """Expected calibration error and Brier score of softmax(logits) and softmax(logits / T):
    ``ece_{prefix}before``, ``ece_{prefix}after``, ``brier_{prefix}before``, ... (the keys
    ``ece_test_before`` etc. with ``prefix="test_"``), and with ``ci`` their bootstrap 95 % CIs
    (``..._ci``).

    Parameters
    ----------
    logits : ndarray, shape (N, K)
        Logits.
    y : ndarray, shape (N,)
        True classes.
    temperature : float
        T.
    prefix : str
        Inserted into the keys.
    ci : bool
        Bootstrap CIs too.
    seed : int
        The bootstrap's seed.

    Returns
    -------
    dict
    """
    from ainu_engine.scores import brier_score, expected_calibration_error, softmax

    y = np.asarray(y)
    out: dict = {}
    for when, p in (("before", softmax(logits, axis=1)),
                    ("after", softmax(np.asarray(logits) / temperature, axis=1))):  # fmt: skip
        for name, fn in (("ece", expected_calibration_error), ("brier", brier_score)):
            key = f"{name}_{prefix}{when}"
            out[key] = fn(p, y) if len(y) else float("nan")
            if ci and len(y):
                out[f"{key}_ci"] = list(bootstrap_ci(y, p, lambda yt, yp, f=fn: f(yp, yt),
                                                     seed=seed))  # fmt: skip
    return out


def plot_reliability(logits, y, temperature: float, path: str | Path, *, n_bins: int = 10) -> Path:
    """The reliability diagram of the test set before and after temperature scaling: accuracy
    against confidence of the top label in equal-width bins (the diagonal is calibrated), with the
    items per bin.

    Parameters
    ----------
    logits : ndarray, shape (N, K)
        Test logits.
    y : ndarray, shape (N,)
        True classes.
    temperature : float
        T.
    path : str or Path
        The PNG.
    n_bins : int
        Confidence bins.

    Returns
    -------
    Path
    """
    from matplotlib.figure import Figure

    from ainu_engine.scores import expected_calibration_error, softmax

    y = np.asarray(y)
    k = np.asarray(logits).shape[1] if len(y) else 2
    edges = np.linspace(1.0 / k, 1.0, n_bins + 1)
    fig = Figure(figsize=(4.6, 4.2))
    ax = fig.subplots()
    ax.plot([1.0 / k, 1], [1.0 / k, 1], color="grey", ls="--", lw=0.8, label="calibrated")
    for when, t, colour in (("before", 1.0, "C3"), (f"after (T = {temperature:.2f})",
                                                     temperature, "C0")):  # fmt: skip
        if not len(y):
            break
        p = softmax(np.asarray(logits) / t, axis=1)
        conf, right = p.max(axis=1), p.argmax(axis=1) == y
        b = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
        xs, ys, ns = [], [], []
        for i in range(n_bins):
            m = b == i
            if m.any():
                xs.append(conf[m].mean())
                ys.append(right[m].mean())
                ns.append(int(m.sum()))
        ece = expected_calibration_error(p, y)
        ax.plot(xs, ys, "o-", color=colour, label=f"{when}: ECE {ece:.3f}")
        for x_, y_, n_ in zip(xs, ys, ns, strict=True):
            ax.annotate(str(n_), (x_, y_), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("confidence of the call")
    ax.set_ylabel("accuracy")
    ax.set_title(f"test set ({len(y)} items; numbers: items per bin)", fontsize=9)
    ax.set_xlim(1.0 / k - 0.02, 1.01)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, Path(path))
