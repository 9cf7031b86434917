"""Heterochromatin / euchromatin (HC/EC) ratios of DAPI nuclei and their comparison.

SCENMED computes HC/EC as the total intensity of the heterochromatin pixels over the rest of
the nucleus, with the heterochromatin threshold given by its equation (2) — which is missing
from every available copy of the paper. **Assumed here** (a parameter, and said so in every
output): the rule the same lab codified later (chrometrics, ``hc_content_ec_content``):
threshold T = mean + α·SD of the intensity inside the nucleus, α = 1.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HC_RULE", "nucleus_mask", "hc_ec_ratio", "compare_ratios", "plot_hc_ec"]

#: How the threshold is chosen, as every output states it.
HC_RULE = (
    "HC threshold = mean + alpha*SD of the nucleus intensity (assumed: the paper's "
    "equation (2) is unknown)"
)


def nucleus_mask(crop: np.ndarray) -> np.ndarray:
    """The nucleus by Otsu's threshold of the crop (the paper's first step).

    Parameters
    ----------
    crop : ndarray, shape (S, S)
        A crop.

    Returns
    -------
    ndarray of bool"""
    from skimage.filters import threshold_otsu

    crop = np.asarray(crop, dtype=np.float64)
    if np.ptp(crop) == 0:
        return crop > 0
    return crop > threshold_otsu(crop)


def hc_ec_ratio(crop: np.ndarray, mask: np.ndarray | None = None, *, alpha: float = 1.0) -> dict:
    """HC/EC of one nucleus: ``Σ I[I ≥ T] / (Σ I_nucleus − Σ I[I ≥ T])`` inside ``mask``
    (default: :func:`nucleus_mask`), T = mean + ``alpha``·SD inside the mask.

    Parameters
    ----------
    crop : ndarray, shape (S, S)
        A crop.
    mask : ndarray of bool, optional
        The nucleus (default :func:`nucleus_mask`).
    alpha : float, default 1
        T's SD multiple: an assumption (eq. (2) of the paper is unknown; :data:`HC_RULE`).

    Returns
    -------
    dict
        ``{"hc_ec": ..., "threshold": T, "hc_fraction_px": ..., "rule": HC_RULE,
        "alpha": alpha}``; ``hc_ec`` is NaN for an empty mask (and infinite when every pixel
        is at or above T, which happens only for a flat nucleus with alpha ≤ 0).

    Examples
    --------

    >>> import numpy as np
    >>> crop = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 5, 0], [0, 0, 0, 0]], float)
    >>> r = hc_ec_ratio(crop, crop > 0)
    >>> round(r["threshold"], 3), r["hc_ec"]
    (3.732, 1.6666666666666667)
    """
    crop = np.asarray(crop, dtype=np.float64)
    m = nucleus_mask(crop) if mask is None else np.asarray(mask, bool)
    vals = crop[m]
    if vals.size == 0:
        return {
            "hc_ec": float("nan"),
            "threshold": float("nan"),
            "hc_fraction_px": float("nan"),
            "rule": HC_RULE,
            "alpha": alpha,
        }
    t = float(vals.mean() + alpha * vals.std())
    hc = float(vals[vals >= t].sum())
    ec = float(vals.sum()) - hc
    ratio = hc / ec if ec > 0 else float("inf")
    return {
        "hc_ec": ratio,
        "threshold": t,
        "hc_fraction_px": float(np.mean(vals >= t)),
        "rule": HC_RULE,
        "alpha": alpha,
    }


def compare_ratios(groups: dict[str, np.ndarray]) -> list[dict]:
    """Every pair of groups: Student's unpaired t-test (the paper's), Welch's t-test and the
    two-sided Mann–Whitney U test (scipy), with n, mean and median of each side.

    Parameters
    ----------
    groups : dict of str to ndarray
        HC/EC ratios per group (class).

    Returns
    -------
    list of dict
        One per pair."""
    from scipy import stats

    names = list(groups)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            x = np.asarray(groups[a], float)
            y = np.asarray(groups[b], float)
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
            row = {
                "a": a,
                "b": b,
                "n_a": len(x),
                "n_b": len(y),
                "mean_a": float(x.mean()) if len(x) else float("nan"),
                "mean_b": float(y.mean()) if len(y) else float("nan"),
                "median_a": float(np.median(x)) if len(x) else float("nan"),
                "median_b": float(np.median(y)) if len(y) else float("nan"),
            }
            if len(x) >= 2 and len(y) >= 2:
                t = stats.ttest_ind(x, y)
                w = stats.ttest_ind(x, y, equal_var=False)
                u = stats.mannwhitneyu(x, y, alternative="two-sided")
                row.update(
                    student_t=float(t.statistic),
                    student_p=float(t.pvalue),
                    welch_t=float(w.statistic),
                    welch_p=float(w.pvalue),
                    mann_whitney_u=float(u.statistic),
                    mann_whitney_p=float(u.pvalue),
                )
            out.append(row)
    return out


def plot_hc_ec(groups: dict[str, np.ndarray], path, *, title: str = "") -> None:
    """Box plots of HC/EC per group (whiskers 1.5 IQR, points over them) with each pair's
    Student's t-test p-value, as in the paper's Fig. 3a; the threshold rule in the caption.

    Parameters
    ----------
    groups : dict of str to ndarray
        HC/EC ratios per group.
    path : str or os.PathLike
        The PNG.
    title : str
        The figure's title."""
    from matplotlib.figure import Figure

    names = list(groups)
    fig = Figure(figsize=(1.6 + 1.3 * len(names), 4.2))
    ax = fig.subplots()
    data = [np.asarray(groups[n], float)[np.isfinite(groups[n])] for n in names]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(
        range(1, len(names) + 1), [f"{n}\n(n={len(d)})" for n, d in zip(names, data, strict=True)]
    )
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, 1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=6, alpha=0.5)
    top = max((d.max() for d in data if len(d)), default=1.0)
    span = top - min((d.min() for d in data if len(d)), default=0.0) or 1.0
    level = top
    for row in compare_ratios(groups):
        if "student_p" not in row:
            continue
        i, j = names.index(row["a"]) + 1, names.index(row["b"]) + 1
        level += 0.08 * span
        ax.plot([i, j], [level, level], color="k", lw=0.8)
        ax.text((i + j) / 2, level, f"p = {row['student_p']:.1e}", ha="center", va="bottom",
                fontsize=7)  # fmt: skip
    ax.set_ylabel("HC / EC")
    ax.set_title(title or "HC/EC per nucleus (Student's t-test)", fontsize=9)
    fig.text(0.01, 0.005, HC_RULE, fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=130)
