"""``explain``: attribution maps for the nuclei of localization files, with overlays, structure
fractions against ground truth, and the nucleoli-replacement test."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._json import dumps
from .._scores import softmax
from ..errors import AinuError, InputError

__all__ = ["explain_files", "default_window", "METHODS"]

METHODS = ("occlusion", "cam", "gradcam", "ig")


def explain_files(inputs: Sequence, model: str | os.PathLike, out: str | os.PathLike, *, method: str = "occlusion",
                  window: int | None = None, stride: int | None = None, target=None, baseline: float | str = 0.0,
                  output: str = "logits", backend: str = "auto", device: str = "auto", perturb: str | None = None,
                  limit: int | None = None, seed: int = 0, incremental: bool | None = None,
                  on_item: Callable[[dict], None] | None = None,
                  on_error: Callable[[str, str], None] | None = None) -> dict:
    """Explain every nucleus of ``inputs`` (files, folders, globs, manifests).

    Writes per nucleus ``OUT/NAME.png`` (overlay), ``OUT/NAME.npy`` (float32 (T, H, W) maps)
    and one JSON line in ``OUT/explain.jsonl`` (call, probabilities, targets, and — where the
    simulator's ground truth is beside the file — each structure's share of the positive
    attribution against its area share). With ``perturb="nucleoli"`` every nucleus with
    ground-truth nucleoli is also classified after its nucleoli are replaced by cloned
    non-nucleolar regions, and ``OUT/perturb.json`` reports per-class accuracy before and after.
    ``summary.json`` sums it up. ``incremental`` is passed to
    :func:`~ainu_engine.explain.occlusion`. Returns the summary.

    ``window`` and ``stride`` (occlusion, pixels of the model input) default to the paper's
    64 and 32 on 512 px scaled to the model's input size S: :func:`default_window`. A window
    covering the whole input (one occlusion, a constant map) is an error.
    """
    from .._classifier import Classifier
    from ..backends import create_backend
    from ..io import read
    from ..io._atomic import atomic_path
    from ..screen import expand_inputs, split_nuclei
    from ._cam import cam, gradcam, integrated_gradients
    from ._occlusion import occlusion
    from ._structures import (
        replace_nucleoli,
        structure_fractions,
        structure_masks,
        truth_for,
        write_overlay,
    )

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if perturb not in (None, "nucleoli"):
        raise ValueError(f"perturb must be 'nucleoli' or None, got {perturb!r}")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if method != "occlusion" and Path(model).suffix != ".pt":
        raise InputError(f"--method {method} needs the PyTorch model", path=model,
                         hint="pass the training checkpoint (RUN/best.pt) as --model")
    clf = Classifier(create_backend(model, backend if method == "occlusion" else "torch", device=device),
                     render_device="cpu" if device == "cpu" else "auto")
    info = clf.info
    if clf.patch_size:
        raise InputError("explain works on image-mode models (this one votes patches)", path=model)
    if method == "occlusion":
        window, stride = default_window(info.input_size, window, stride)
        if window >= info.input_size:
            raise InputError(f"an occlusion window of {window} px covers the whole {info.input_size} px input: "
                             "one occlusion, a constant map", path=model,
                             hint=f"use a smaller window (--window); this model's default is "
                                  f"{default_window(info.input_size)[0]}")
    names = list(info.classes)
    rng = np.random.default_rng(seed)
    files = expand_inputs(inputs)
    records, errors = [], []
    perturb_rows = []
    fn = {"cam": cam, "gradcam": gradcam, "ig": integrated_gradients}.get(method)
    jsonl = out / "explain.jsonl"
    with open(jsonl, "w", encoding="utf-8") as log:
        for path in files:
            try:
                locs = read(path)
                truth = truth_for(path)
                for n in split_nuclei(locs):
                    if limit is not None and len(records) >= limit:
                        break
                    from ..render import render

                    r = render(n.locs, info.render_spec, device=clf.render_device, roi_nm=n.roi_nm)
                    img = r.image
                    if method == "occlusion":
                        a = occlusion(clf, img, window=window, stride=stride, target=target, baseline=baseline,
                                      output=output, incremental=incremental)
                    else:
                        a = fn(clf, img, target=target, class_names=names)
                    prob = softmax(a.output)
                    pred = names[int(np.argmax(prob))]
                    stem = Path(path).name.split(".")[0] + (f"_{n.id}" if n.id else "")
                    np.save(out / f"{stem}.npy", a.maps)
                    write_overlay(out / f"{stem}.png", img, a.maps[0],
                                  title=f"{method} for {names[a.targets[0]]} (call {pred}, p={prob.max():.2f})")
                    rec = {"source": str(path), "nucleus_id": n.id, "predicted": pred,
                           "probabilities": {c: float(v) for c, v in zip(names, prob, strict=True)},
                           "targets": [names[t] for t in a.targets], "method": method, "params": a.params,
                           "map": str(out / f"{stem}.npy"), "overlay": str(out / f"{stem}.png"),
                           "seconds": round(a.seconds, 3)}
                    tn = _truth_nucleus(truth, n)
                    if tn is not None:
                        masks = structure_masks(tn, shape=img.shape[-2:], origin_nm=r.origin_nm, pixel_nm=r.pixel_nm)
                        rec["label"] = tn.get("label", truth.get("label"))
                        rec["structures"] = {names[t]: structure_fractions(a.maps[i], masks)
                                             for i, t in enumerate(a.targets)}
                        if perturb == "nucleoli" and masks["nucleoli"].any():
                            pert = replace_nucleoli(img, masks, rng=rng)
                            after = clf.classify(pert).label
                            perturb_rows.append({"label": rec["label"], "before": pred, "after": after})
                            rec["after_nucleoli_replaced"] = after
                    records.append(rec)
                    log.write(dumps(rec) + "\n")
                    log.flush()
                    if on_item is not None:
                        on_item(rec)
            except AinuError as err:
                errors.append((str(path), str(err)))
                if on_error is not None:
                    on_error(str(path), str(err))
            if limit is not None and len(records) >= limit:
                break
    clf.close()
    summary = {"model": str(model), "method": method, "nuclei": len(records), "failed": len(errors),
               "errors": [{"path": p, "error": m} for p, m in errors], "seconds": round(time.perf_counter() - t0, 2),
               "structures": _mean_structures(records)}
    if perturb == "nucleoli":
        summary["perturb_nucleoli"] = _perturb_summary(perturb_rows, names)
        with atomic_path(out / "perturb.json") as tmp:
            Path(tmp).write_text(dumps(summary["perturb_nucleoli"], indent=2) + "\n")
    with atomic_path(out / "summary.json") as tmp:
        Path(tmp).write_text(dumps(summary, indent=2) + "\n")
    return summary


def default_window(size: int, window: int | None = None, stride: int | None = None) -> tuple[int, int]:
    """Occlusion window and stride for a model input of ``size`` px: the given ones, else the
    paper's 64 / 32 on 512 px in proportion (``size / 8``, and half the window)."""
    window = max(1, round(64 * size / 512)) if window is None else int(window)
    return window, max(1, window // 2) if stride is None else int(stride)


def _truth_nucleus(truth: dict | None, nucleus) -> dict | None:
    if truth is None or not truth.get("nuclei"):
        return None
    nuclei = truth["nuclei"]
    if len(nuclei) == 1:
        return {**nuclei[0], "label": nuclei[0].get("label", truth.get("label"))}
    if nucleus.id.startswith("cell"):
        cid = int(nucleus.id[4:])
        for t in nuclei:
            if int(t.get("cell_id", -1)) == cid:
                return t
    return None


def _mean_structures(records: list[dict]) -> dict:
    """Mean structure fractions per (true label, target class)."""
    acc: dict = {}
    for r in records:
        for target, fr in (r.get("structures") or {}).items():
            key = f"label={r.get('label')}, target={target}"
            for s, v in fr.items():
                d = acc.setdefault(key, {}).setdefault(s, {"positive_attribution_fraction": [], "area_fraction": []})
                d["positive_attribution_fraction"].append(v["positive_attribution_fraction"])
                d["area_fraction"].append(v["area_fraction"])
    out = {}
    for key, structs in acc.items():
        out[key] = {}
        for s, d in structs.items():
            pa, af = np.asarray(d["positive_attribution_fraction"]), np.asarray(d["area_fraction"])
            with warnings.catch_warnings():  # no positive attribution at all gives NaN, reported as such
                warnings.simplefilter("ignore", RuntimeWarning)
                out[key][s] = _stats(pa, af)
    return out


def _stats(pa: np.ndarray, af: np.ndarray) -> dict:
    return {"n": int(np.isfinite(pa).sum()), "positive_attribution_fraction_mean": float(np.nanmean(pa)),
            "positive_attribution_fraction_sd": float(np.nanstd(pa)), "area_fraction_mean": float(np.nanmean(af)),
            "enrichment_mean": float(np.nanmean(pa / af))}


def _perturb_summary(rows: list[dict], names: list[str]) -> dict:
    out = {}
    for c in names:
        sel = [r for r in rows if r["label"] == c]
        if not sel:
            continue
        before = sum(r["before"] == c for r in sel) / len(sel)
        after = sum(r["after"] == c for r in sel) / len(sel)
        out[c] = {"n": len(sel), "accuracy_before": before, "accuracy_after": after, "change": after - before}
    return out
