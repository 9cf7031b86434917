"""The analysis of the JBC neutrophil study (``run.sh`` calls it; every number of the README
comes from here).

Usage::

    python analyze.py channel-manifest OUT.csv        # cPLA2 cells labelled by their channel
    python analyze.py permuted-manifests DIR N        # labels shuffled among each mouse's fields
    python analyze.py mouse-manifest PROTEIN MOUSE OUT.csv
    python analyze.py report SCRATCH RESULTS_DIR      # tables, figures, results.json

Statistics respect the design: the cells of one field are not independent, so every confidence
interval is a two-level bootstrap (fields resampled within each mouse and state, then cells
within fields), the field-level call
is the majority of its cells (mean probability), and the permutation test shuffles the state
labels among the fields of each mouse (the cells of a field keep one label).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PROTEINS = ("cpla2", "5lo")
#: positive class of the ROC
POSITIVE = "activated"
N_BOOT = 2000


# -- manifests -----------------------------------------------------------------------------------
def _manifest(protein: str) -> list[dict]:
    """The rows of ``manifest-PROTEIN.csv`` with absolute paths."""
    rows = list(csv.DictReader(open(HERE / f"manifest-{protein}.csv")))
    for r in rows:
        r["path"] = str((HERE / r["path"]).resolve())
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def channel_of(row: dict, protein: str) -> str:
    """The file channel a row's protein was imaged in."""
    return dict(p.split("=") for p in row["channels"].split(";"))[protein]


def channel_manifest(out: Path) -> None:
    """The cPLA2 fields labelled by the channel cPLA2 was imaged in (561 or 647), not the state:
    what the model learns when it learns the dye."""
    rows = _manifest("cpla2")
    _write(out, [{**r, "label": f"ch{channel_of(r, 'cpla2')}"} for r in rows])


def permuted_manifests(folder: Path, n: int) -> None:
    """``n`` cPLA2 manifests whose state labels are shuffled among the fields of each mouse
    (seed k for the k-th): the mice keep their class mix, a field's cells keep one label."""
    rows = _manifest("cpla2")
    for k in range(1, n + 1):
        rng = np.random.default_rng(k)
        out = [dict(r) for r in rows]
        for g in sorted({r["group"] for r in rows}):
            idx = [i for i, r in enumerate(rows) if r["group"] == g]
            labels = [rows[i]["label"] for i in idx]
            for i, lab in zip(idx, rng.permutation(labels), strict=True):
                out[i]["label"] = str(lab)
        _write(folder / f"perm-{k}.csv", out)


def mouse_manifest(protein: str, mouse: str, out: Path) -> None:
    """One mouse's fields of a protein (a live replay of that mouse)."""
    _write(out, [r for r in _manifest(protein) if r["group"] == mouse])


# -- statistics ----------------------------------------------------------------------------------
def _balanced(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (the accuracy where one class is)."""
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def _wilson(k: int, n: int) -> list[float]:
    if not n:
        return [float("nan")] * 2
    z, ph = 1.96, k / n
    c = (ph + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(c - h), float(c + h)]


def scores(rows: list[dict], positive: str = POSITIVE, seed: int = 0) -> dict:
    """Cell- and field-level scores of calls ``rows`` (``label``, ``p`` = probability of
    ``positive``, ``field``, ``mouse``), 95 % CIs by a two-level bootstrap (fields within each
    mouse and state, then cells within fields); the field's call is the majority of its cells
    (mean probability), its CI Wilson's over fields."""
    y = np.array([r["label"] == positive for r in rows], int)
    p = np.array([r["p"] for r in rows], float)
    pred = (p >= 0.5).astype(int)
    fields = sorted({(r["mouse"], r["field"]) for r in rows})
    by_field = defaultdict(list)
    for i, r in enumerate(rows):
        by_field[(r["mouse"], r["field"])].append(i)
    fy = np.array([y[by_field[f][0]] for f in fields])
    fp = np.array([p[by_field[f]].mean() for f in fields])
    fpred = (fp >= 0.5).astype(int)
    out = {
        "cells": len(rows), "fields": len(fields),
        "classes": sorted({r["label"] for r in rows}),
        "accuracy": float(np.mean(pred == y)), "balanced_accuracy": _balanced(y, pred),
        "auc": _auc(y, p),
        "field_accuracy": float(np.mean(fpred == fy)),
        "field_accuracy_ci": _wilson(int(np.sum(fpred == fy)), len(fields)),
        "field_balanced_accuracy": _balanced(fy, fpred),
        "field_calls": f"{int(np.sum(fpred == fy))}/{len(fields)}",
    }  # fmt: skip
    # two-level bootstrap stratified by (mouse, state): fields resampled within each stratum,
    # then cells within each drawn field; a stratum of one field contributes only its cells'
    # variability, so such CIs are too narrow (flagged ``ci_single_field_strata``)
    rng = np.random.default_rng(seed)
    strata = defaultdict(list)
    for f, lab in zip(fields, fy, strict=True):
        strata[(f[0], int(lab))].append(f)
    out["ci_single_field_strata"] = sorted(
        f"{m}/{'+' if c else '-'}" for (m, c), fs in strata.items() if len(fs) == 1
    )
    boot = defaultdict(list)
    for _ in range(N_BOOT):
        idx = []
        for fs in strata.values():
            for k in rng.integers(0, len(fs), len(fs)):
                members = by_field[fs[k]]
                idx += [members[j] for j in rng.integers(0, len(members), len(members))]
        idx = np.array(idx, int)
        yb, pb = y[idx], p[idx]
        boot["accuracy"].append(np.mean((pb >= 0.5) == yb))
        boot["balanced_accuracy"].append(_balanced(yb, (pb >= 0.5).astype(int)))
        a = _auc(yb, pb)
        if a is not None:
            boot["auc"].append(a)
    for k in ("accuracy", "balanced_accuracy", "auc"):
        v = boot[k]
        out[f"{k}_ci"] = ([float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
                          if len(v) >= 100 else None)  # fmt: skip
    return out


def per_mouse(rows: list[dict], positive: str = POSITIVE) -> dict:
    """:func:`scores` of each held-out mouse and of all (pooled)."""
    out = {m: scores([r for r in rows if r["mouse"] == m], positive)
           for m in sorted({r["mouse"] for r in rows})}  # fmt: skip
    out["pooled"] = scores(rows, positive)
    return out


# -- the runs ------------------------------------------------------------------------------------
def _cell_key(path: str) -> tuple[str, str]:
    file, _, cell = path.partition("#")
    return Path(file).stem, cell


def _field_info() -> dict[str, dict]:
    """field stem -> its manifest row."""
    return {Path(r["path"]).stem: r for r in csv.DictReader(open(HERE / "manifest.csv"))}


def logo_predictions(run: Path) -> list[dict]:
    """Every held-out cell of a leave-one-group-out run: mouse, field, cell, label, p."""
    rows = []
    for pred in sorted(run.glob("*/predictions.csv")):
        mouse = pred.parent.name
        for r in csv.DictReader(open(pred)):
            field, cell = _cell_key(r["path"])
            pos = next(k for k in r if k.startswith("p_") and k[2:] in (POSITIVE, "ch561"))
            rows.append({"mouse": mouse, "field": field, "cell": cell, "label": r["label"],
                         "p": float(r[pos]), "positive": pos[2:]})  # fmt: skip
    return rows


def _features_of(protein: str) -> dict[tuple[str, str], dict]:
    """Per cell of the protein's fields: features a biologist would compute from the protein's
    localizations (density, rim share, clusters, nearest neighbours) and the cell's channel."""
    from scipy.spatial import cKDTree

    from ainu_engine.clusters import find_clusters
    from ainu_engine.explain import rim_localizations
    from ainu_engine.io import read
    from ainu_engine.nuclei import split_nuclei

    out = {}
    for row in _manifest(protein):
        locs = read(row["path"])
        ids = {v: k for k, v in locs.meta.channel_names.items()}
        ch = channel_of(row, protein)
        for n in split_nuclei(locs, mode="detect", area_limits_um2=(20.0, 200.0)):
            sel = n.locs.channel == ids[ch]
            k = int(sel.sum())
            if k < 10:
                continue
            o = np.asarray(n.outline, float) / 1000.0
            area = 0.5 * abs(float(np.dot(o[:, 0], np.roll(o[:, 1], 1))
                                   - np.dot(o[:, 1], np.roll(o[:, 0], 1))))  # fmt: skip
            x, y = n.locs.x_nm[sel], n.locs.y_nm[sel]
            c = find_clusters(n.locs, eps_nm=50, min_samples=5, keep=sel)
            d, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
            out[(Path(row["path"]).stem, n.id)] = {
                "mouse": row["group"], "field": Path(row["path"]).stem, "cell": n.id,
                "label": row["label"], "channel": ch,
                "log10_localizations": float(np.log10(k)),
                "density_per_um2": k / area,
                "rim_fraction_1um": float(rim_localizations(x, y, n.outline, 1000.0).mean()),
                "clusters_per_um2": len(c["n_localizations"]) / area,
                "median_cluster_localizations": (float(np.median(c["n_localizations"]))
                                                 if len(c["n_localizations"]) else 0.0),
                "clustered_fraction": float(np.sum(c["n_localizations"]) / k),
                "median_nn_nm": float(np.median(d[:, 1])),
            }  # fmt: skip
    return out


FEATURES = ("log10_localizations", "density_per_um2", "rim_fraction_1um", "clusters_per_um2",
            "median_cluster_localizations", "clustered_fraction", "median_nn_nm")  # fmt: skip


def feature_logo(cells: list[dict], target: str = "label", positive: str = POSITIVE) -> list[dict]:
    """Leave-one-mouse-out calls of a class-balanced logistic regression on the features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.array([[c[f] for f in FEATURES] for c in cells])
    y = np.array([c[target] == positive for c in cells], int)
    mice = np.array([c["mouse"] for c in cells])
    out = []
    for m in sorted(set(mice)):
        tr, te = mice != m, mice == m
        if len(np.unique(y[tr])) < 2:
            continue
        model = make_pipeline(
            StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000)
        )
        model.fit(X[tr], y[tr])
        p = model.predict_proba(X[te])[:, 1]
        out += [{**{k: c[k] for k in ("mouse", "field", "cell")}, "label": c[target], "p": float(q)}
                for c, q in zip([c for c, t in zip(cells, te, strict=True) if t], p,
                                strict=True)]  # fmt: skip
    return out


def _shuffled(cells: list[dict], rng) -> list[dict]:
    """The cells with their fields' labels shuffled among the fields of each mouse."""
    fields = sorted({(c["mouse"], c["field"]) for c in cells})
    lab = {f: next(c["label"] for c in cells if (c["mouse"], c["field"]) == f) for f in fields}
    new = {}
    for m in sorted({m for m, _ in fields}):
        fs = [f for f in fields if f[0] == m]
        for f, shuffled in zip(fs, rng.permutation([lab[f] for f in fs]), strict=True):
            new[f] = str(shuffled)
    return [{**c, "label": new[(c["mouse"], c["field"])]} for c in cells]


def _pooled_balanced(rows: list[dict], positive: str = POSITIVE) -> float:
    y = np.array([r["label"] == positive for r in rows], int)
    return _balanced(y, (np.array([r["p"] for r in rows]) >= 0.5).astype(int))


def within_channel(rows: list[dict], cells: dict) -> dict:
    """Scores of the calls split by the channel the protein was imaged in."""
    out = {}
    for ch in sorted({c["channel"] for c in cells.values()}):
        sel = [r for r in rows if cells.get((r["field"], r["cell"]), {}).get("channel") == ch]
        if sel:
            out[ch] = scores(sel)
    return out


# -- attribution, clusters, live ----------------------------------------------------------------
def attribution(folder: Path, cells: dict) -> dict | None:
    """The rim's share of the positive attribution against its area share, per state and per
    channel, and the rim test (``explain --rim-nm --perturb rim``)."""
    log = folder / "explain.jsonl"
    if not log.is_file():
        return None
    recs = [json.loads(line) for line in open(log)]
    info = _field_info()
    rows = []
    for r in recs:
        field = Path(r["source"]).stem
        target = r["targets"][0]
        rim = (r.get("structures") or {}).get(target, {}).get("rim")
        if not rim:
            continue
        c = cells.get((field, r["nucleus_id"]), {})
        after = r.get("after_rim_replaced")
        before = r.get("before_rim_replaced") or {
            "label": r["predicted"],
            "probabilities": r["probabilities"],
        }
        rows.append({"label": info[field]["label"], "channel": c.get("channel"),
                     "target": target, "share": rim["positive_attribution_fraction"],
                     "area": rim["area_fraction"], "before": before["label"],
                     "p_before": before["probabilities"][POSITIVE],
                     "after": after["label"] if after else None,
                     "p_after": after["probabilities"][POSITIVE] if after else None})  # fmt: skip

    def summary(sel):
        sh = np.array([r["share"] for r in sel if r["share"] == r["share"]])
        ar = np.array([r["area"] for r in sel if r["share"] == r["share"]])
        moved = [r for r in sel if r["after"] is not None]
        return {
            "cells": len(sel),
            "rim_share_of_positive_attribution": float(np.mean(sh)) if len(sh) else None,
            "rim_share_of_area": float(np.mean(ar)) if len(ar) else None,
            "enrichment_median": float(np.median(sh / ar)) if len(sh) else None,
            "rim_replaced_calls_changed": (sum(r["before"] != r["after"] for r in moved)
                                           / len(moved)) if moved else None,
            "p_activated_before": float(np.mean([r["p_before"] for r in moved])) if moved else None,
            "p_activated_after": float(np.mean([r["p_after"] for r in moved])) if moved else None,
        }  # fmt: skip

    out = {"all": summary(rows)}
    for key in ("label", "channel"):
        for v in sorted({r[key] for r in rows if r[key]}):
            out[f"{key}={v}"] = summary([r for r in rows if r[key] == v])
    return out


def cluster_comparison(folder: Path, rng_seed: int = 0, n_shuffles: int = 1000) -> dict | None:
    """Per-cell cluster measures by state (localizations per cluster, the cell's median; clusters
    per cell): the cell-level Mann-Whitney, the same at field level (each field's median of its
    cells), and the negative control: the state labels shuffled among each mouse's fields, how
    often the cell-level test is 'significant' at 0.05 (5 % if cells were independent)."""
    from scipy.stats import mannwhitneyu

    table = folder / "nuclei.csv"
    if not table.is_file():
        return None
    info = _field_info()
    cells = []
    for r in csv.DictReader(open(table)):
        f = Path(r["source"]).stem
        if r["median_localizations"] in ("", "None"):
            continue
        cells.append({"field": f, "mouse": info[f]["group"], "label": info[f]["label"],
                      "median_localizations": float(r["median_localizations"]),
                      "n_clusters": float(r["n_clusters"])})  # fmt: skip

    def test(cs, m):
        a = [c[m] for c in cs if c["label"] == "activated"]
        b = [c[m] for c in cs if c["label"] == "unstim"]
        if len(a) < 2 or len(b) < 2:
            return None
        return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)

    def field_medians(cs, m):
        by = defaultdict(list)
        for c in cs:
            by[(c["field"], c["label"])].append(c[m])
        return [{"label": lab, m: float(np.median(v))} for (_, lab), v in by.items()]

    out: dict = {"cells": len(cells), "fields": len({c["field"] for c in cells})}
    for m in ("median_localizations", "n_clusters"):
        rng = np.random.default_rng(rng_seed)
        shuffled = [test(_shuffled(cells, rng), m) for _ in range(n_shuffles)]
        shuffled = [p for p in shuffled if p is not None]
        rec = {"p_cells": test(cells, m), "p_fields": test(field_medians(cells, m), m),
               "shuffled_p_below_0.05": float(np.mean(np.array(shuffled) < 0.05)),
               "n_shuffles": len(shuffled)}  # fmt: skip
        for lab in ("unstim", "activated"):
            v = np.array([c[m] for c in cells if c["label"] == lab])
            q1, q3 = np.percentile(v, [25, 75])
            rec[lab] = {"cells": len(v), "median": float(np.median(v)),
                        "iqr": [float(q1), float(q3)]}  # fmt: skip
        rec["by_mouse"] = {
            f"{g}/{lab}": float(np.median(v))
            for g in sorted({c["mouse"] for c in cells})
            for lab in ("unstim", "activated")
            if (v := [c[m] for c in cells if c["mouse"] == g and c["label"] == lab])
        }
        out[m] = rec
    return out


FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def live_replay(folder: Path) -> dict | None:
    """Accuracy against the fraction of frames and what the stop rule saves, on each mouse
    replayed by the model that did not see it."""
    logs = sorted(folder.glob("m*.jsonl"))
    if not logs:
        return None
    info = _field_info()
    updates, finals = defaultdict(list), {}
    for log in logs:
        for line in open(log):
            r = json.loads(line)
            if "source" not in r or "nucleus_id" not in r:
                continue
            key = (Path(r["source"]).stem, r["nucleus_id"])
            (finals.__setitem__(key, r) if r.get("final") else updates[key].append(r))
    acc = {}
    for f in FRACTIONS:
        right = total = 0
        for key, fin in finals.items():
            ups = [u for u in updates[key] if u.get("frames_used") is not None
                   and u["frames_used"] <= f * fin["n_frames"] + 1e-9]  # fmt: skip
            if not ups:
                continue
            total += 1
            right += ups[-1]["label"] == info[key[0]]["label"]
        acc[str(f)] = {"cells": total, "accuracy": right / total if total else None}
    stopped = [fin for fin in finals.values() if fin.get("stop_fraction") is not None]
    used = [fin.get("stop_fraction") or 1.0 for fin in finals.values()]
    truth = {k: info[k[0]]["label"] for k in finals}
    return {
        "cells": len(finals), "accuracy_by_fraction": acc,
        "final_accuracy": float(np.mean([fin["label"] == truth[k] for k, fin in finals.items()])),
        "stopped": len(stopped),
        "mean_fraction_used": float(np.mean(used)),
        "frames_saved_x": float(1.0 / np.mean(used)),
        "accuracy_with_stop": float(np.mean([
            (fin.get("label_at_stop") or fin["label"]) == truth[k] for k, fin in finals.items()])),
        "same_call_at_stop": (float(np.mean([fin["same_call_at_stop"] for fin in stopped]))
                              if stopped else None),
    }  # fmt: skip


# -- the report ----------------------------------------------------------------------------------
def _fmt(v, ci=None) -> str:
    if v is None:
        return "—"
    txt = f"{v:.2f}"
    return txt + (f" ({ci[0]:.2f}–{ci[1]:.2f})" if ci else "")


def _table(name: str, res: dict) -> list[str]:
    lines = [f"**{name}**", "",
             "| held out | cells / fields | classes | accuracy | balanced acc. | ROC-AUC | "
             "fields right (majority) | field balanced acc. |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for m, r in res.items():
        flag = " †" if r.get("ci_single_field_strata") else ""
        lines.append(
            f"| {m}{flag} | {r['cells']} / {r['fields']} | {'+'.join(r['classes'])} | "
            f"{_fmt(r['accuracy'], r.get('accuracy_ci'))} | "
            f"{_fmt(r['balanced_accuracy'], r.get('balanced_accuracy_ci'))} | "
            f"{_fmt(r['auc'], r.get('auc_ci'))} | {r['field_calls']} "
            f"({_fmt(r['field_accuracy'], r['field_accuracy_ci'])}) | "
            f"{_fmt(r['field_balanced_accuracy'])} |"
        )
    return lines + [""]


def _logo_figure(path: Path, results: dict) -> None:
    from matplotlib.figure import Figure

    names = list(results)
    mice = ["m1", "m2", "m3", "pooled"]
    fig = Figure(figsize=(9, 3.6))
    ax = fig.subplots()
    w = 0.8 / len(names)
    for k, n in enumerate(names):
        for j, m in enumerate(mice):
            r = results[n].get(m)
            if not r:
                continue
            v, ci = r["balanced_accuracy"], r.get("balanced_accuracy_ci")
            x = j + (k - len(names) / 2 + 0.5) * w
            ax.bar(x, v, w * 0.9, color=f"C{k}", label=n if j == 0 else None)
            if ci:
                ax.plot([x, x], ci, color="k", lw=0.8)
    ax.axhline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_xticks(range(len(mice)), [f"held out {m}" if m != "pooled" else m for m in mice])
    ax.set_ylabel("balanced accuracy (cells)\n95 % CI: fields, then cells, resampled")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _live_figure(path: Path, live: dict) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    fr = [float(f) for f in live["accuracy_by_fraction"]]
    acc = [live["accuracy_by_fraction"][f]["accuracy"] for f in live["accuracy_by_fraction"]]
    ax.plot(fr, acc, "o-")
    ax.axhline(live["accuracy_with_stop"], color="C1", ls="--",
               label=f"stop rule: {live['frames_saved_x']:.2f}x fewer frames")  # fmt: skip
    ax.set_xlabel("fraction of the acquisition's frames")
    ax.set_ylabel("accuracy (cells, held-out mouse)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(scratch: Path, out: Path) -> dict:
    """Every table and figure of the README from the runs in ``scratch``."""
    results: dict = {"cnn": {}, "features": {}, "controls": {}}
    lines: list[str] = []
    cells = {p: _features_of(p) for p in PROTEINS}
    runs = sorted(
        r for r in (scratch / "logo").glob("*-s*") if (r / "leave_one_group_out.json").is_file()
    )  # finished runs only
    preds = {r.name: logo_predictions(r) for r in runs}
    for name, rows in preds.items():
        if "channel" in name:
            continue
        results["cnn"][name] = per_mouse(rows)
        lines += _table(f"CNN {name}", results["cnn"][name])
    for p in PROTEINS:
        ref = preds.get(f"{p}-small_cnn-s0", [])
        if not ref:
            continue
        keys = {(r["field"], r["cell"]) for r in ref}  # the cells the CNN called
        cs = [c for k, c in cells[p].items() if k in keys]
        rows = feature_logo(cs)
        results["features"][p] = per_mouse(rows)
        lines += _table(f"features + logistic regression, {p}", results["features"][p])
        results["controls"][f"{p}_within_channel_cnn"] = within_channel(ref, cells[p])
        results["controls"][f"{p}_within_channel_features"] = within_channel(rows, cells[p])
        # the feature baseline's permutation test (labels shuffled among each mouse's fields)
        rng = np.random.default_rng(0)
        obs = _pooled_balanced(rows)
        null = [_pooled_balanced(feature_logo(_shuffled(cs, rng))) for _ in range(1000)]
        results["controls"][f"{p}_features_permutation"] = {
            "observed_balanced_accuracy": obs, "n": len(null),
            "p": (1 + sum(v >= obs for v in null)) / (1 + len(null)),
            "null_mean": float(np.mean(null))}  # fmt: skip
    # the dye: predicting the channel instead of the state
    ch = preds.get("cpla2-channel-small_cnn-s0")
    if ch:
        results["controls"]["cnn_predicts_channel"] = per_mouse(ch, positive="ch561")["pooled"]
        lines += _table("CNN predicting cPLA2's channel (561 vs 647), not the state",
                        per_mouse(ch, positive="ch561"))  # fmt: skip
    cs = list(cells["cpla2"].values())
    chan = feature_logo([{**c, "label": f"ch{c['channel']}"} for c in cs], positive="ch561")
    results["controls"]["features_predict_channel"] = per_mouse(chan, positive="ch561")["pooled"]
    # the CNN's permutation test
    perm = sorted(
        r for r in (scratch / "perm").glob("run-*") if (r / "leave_one_group_out.json").is_file()
    )
    if perm and "cpla2-small_cnn-s0" in preds:
        obs = _pooled_balanced(preds["cpla2-small_cnn-s0"])
        null = [_pooled_balanced(logo_predictions(r)) for r in perm]
        results["controls"]["cnn_permutation"] = {
            "observed_balanced_accuracy": obs, "n": len(null), "null": null,
            "p": (1 + sum(v >= obs for v in null)) / (1 + len(null))}  # fmt: skip
    results["attribution"] = {
        "occlusion": attribution(scratch / "explain-cpla2", cells["cpla2"]),
        "cam": attribution(scratch / "cam-cpla2", cells["cpla2"]),
    }
    results["clusters"] = {p: cluster_comparison(scratch / f"clusters-{p}") for p in PROTEINS}
    results["live"] = live_replay(scratch / "live")
    results["cells"] = {p: {"cells": len(cells[p]), "features": list(FEATURES)} for p in PROTEINS}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    title = ["# Neutrophils: every table, every run", ""]
    (out / "tables.md").write_text("\n".join(title + lines))
    figs = {**{f"CNN {k}": v for k, v in results["cnn"].items()},
            **{f"features {k}": v for k, v in results["features"].items()}}  # fmt: skip
    _logo_figure(out / "leave-one-mouse-out.png", figs)
    if results["live"]:
        _live_figure(out / "live.png", results["live"])
    return results


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] != "report":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "channel-manifest":
        channel_manifest(Path(args[0]))
    elif cmd == "permuted-manifests":
        permuted_manifests(Path(args[0]), int(args[1]))
    elif cmd == "mouse-manifest":
        mouse_manifest(args[0], args[1], Path(args[2]))
    else:
        sys.exit(__doc__)
    sys.exit(0)

if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "report":
    report(Path(sys.argv[2]), Path(sys.argv[3]))
