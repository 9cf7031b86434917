"""``explain``: attribution maps for the nuclei of localization files, with overlays, structure
fractions against ground truth, and the nucleoli-replacement test.

:func:`explain_files` reads, splits and renders the nuclei itself; :func:`explain_prepared`
takes nuclei a screen has already rendered (``screen --explain``). Both hand each nucleus to one
:class:`_ExplainRun`, the owner of the output folder.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import AinuError, InputError
from ..io import atomic_path
from ..nuclei import cell_name
from ..scores import softmax
from ..strict_json import dumps
from ._occlusion import IncrementalPlans

__all__ = ["explain_files", "explain_prepared", "default_window", "METHODS"]

METHODS = ("occlusion", "cam", "gradcam", "ig")


def explain_files(
    inputs: Sequence,
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    method: str = "occlusion",
    window: int | None = None,
    stride: int | None = None,
    target=None,
    baseline: float | str = 0.0,
    output: str = "logits",
    backend: str = "auto",
    device: str = "auto",
    perturb: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    incremental: bool | None = None,
    on_item: Callable[[dict], None] | None = None,
    on_error: Callable[[str, str], None] | None = None,
    read_options: dict | None = None,
    channel_map: dict | None = None,
    nuclei: str = "auto",
    rim_nm: float | None = None,
) -> dict:
    """Explain every nucleus of ``inputs`` (files, folders, globs, manifests; a manifest row's
    channel map applies to its file).

    Writes per nucleus ``OUT/NAME.png`` (overlay), ``OUT/NAME.npy`` (float32 (T, H, W) maps)
    and one JSON line in ``OUT/explain.jsonl`` (call, probabilities, targets, and — where the
    simulator's ground truth is beside the file — each structure's share of the positive
    attribution against its area share). With ``perturb="nucleoli"`` every nucleus with
    ground-truth nucleoli is also classified after its nucleoli are replaced by cloned
    non-nucleolar regions, and ``OUT/perturb.json`` reports per-class accuracy before and after.
    With ``rim_nm`` every nucleus with an outline (an ROI, or the one detection found) gets the
    share of its positive attribution in the band ``rim_nm`` wide along the outline against the
    band's share of the area (structure ``rim``); with ``perturb="rim"`` it is also classified
    after its rim localizations are replaced by interior ones (:func:`replace_rim`), and
    ``OUT/perturb.json`` reports how the calls and probabilities moved.
    ``summary.json`` sums it up. ``incremental`` is passed to
    :func:`~ainu_engine.explain.occlusion`. Returns the summary.

    ``read_options`` are keywords for :func:`ainu_engine.io.read` (``format``, ``columns``,
    ``camera_pixel_nm``...); ``channel_map`` maps model channels to file channels where the
    file names them otherwise (:func:`ainu_engine.render.match_channels`).

    ``window`` and ``stride`` (occlusion, pixels of the model input) default to the paper's
    64 and 32 on 512 px scaled to the model's input size S: :func:`default_window`. A window
    covering the whole input (one occlusion, a constant map) is an error.

    Parameters
    ----------
    inputs : sequence
        Files, folders, globs, manifests.
    model : path
        The ``.onnx`` (occlusion) or the checkpoint (``cam``, ``gradcam``: PyTorch).
    out : path
        The output folder.
    method : str
        One of :data:`METHODS`.
    window, stride : int, optional
        Occlusion's window and stride (see above).
    target : int, str or None
        The class explained (None: the call).
    baseline : float or "blur"
        What an occluded pixel becomes.
    output : {"logits", "probabilities"}
        What the attribution is of.
    backend, device : str
        See :func:`ainu_engine.backends.create_backend`.
    perturb : {"nucleoli", "rim"}, optional
        The nucleoli test, or the rim test (needs ``rim_nm``).
    limit : int, optional
        Explain at most this many nuclei.
    seed : int
        The seed of the nucleoli test's clones.
    incremental : bool, optional
        Passed to :func:`~ainu_engine.explain.occlusion`.
    on_item : callable, optional
        Called with each nucleus's record.
    on_error : callable, optional
        Called with (path, message) for each failure.
    read_options : dict, optional
        Keywords of :func:`ainu_engine.io.read`.
    channel_map : dict, optional
        Model channel -> file channel.
    nuclei : str, default "auto"
        How a file splits into nuclei (:func:`ainu_engine.nuclei.split_nuclei`; ``detect`` with
        the model's detection limits).
    rim_nm : float, optional
        The width of the band along each nucleus' outline (nm) whose attribution is measured.

    Returns
    -------
    dict
        The summary (``summary.json``).

    Raises
    ------
    ValueError
        An unknown ``method``.
    ainu_engine.errors.InputError
        A gradient method without the PyTorch checkpoint, or a window covering the whole input.
    """
    from .._classifier import Classifier
    from ..backends import create_backend
    from ..io import read
    from ..nuclei import detection_limits, expand_inputs, split_nuclei
    from ..render import manifest_channel_maps

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "occlusion" and Path(model).suffix != ".pt":
        raise InputError(
            f"--method {method} needs the PyTorch model",
            path=model,
            hint="pass the training checkpoint (RUN/best.pt) as --model",
        )
    clf = Classifier(
        create_backend(model, backend if method == "occlusion" else "torch", device=device),
        render_device="cpu" if device == "cpu" else "auto",
        channel_map=channel_map,
        file_channel_maps=manifest_channel_maps(inputs),
    )
    limits = detection_limits(clf.info.training_stats)
    with (
        clf,
        _ExplainRun(
            clf,
            out,
            method=method,
            window=window,
            stride=stride,
            target=target,
            baseline=baseline,
            output=output,
            perturb=perturb,
            rim_nm=rim_nm,
            seed=seed,
            incremental=incremental,
            on_item=on_item,
            on_error=on_error,
        ) as run,
    ):
        for path in expand_inputs(inputs):
            try:
                locs = read(path, **(read_options or {}))
                cam = (read_options or {}).get("camera_pixel_nm")
                cam = cam[0] if isinstance(cam, tuple) else cam
                fclf = clf.for_path(path)
                for n in split_nuclei(locs, mode=nuclei, camera_pixel_nm=cam,
                                      area_limits_um2=limits):  # fmt: skip
                    if run.full(limit):
                        break
                    run.nucleus(path, n, fclf.prepare(n.locs, roi_nm=n.roi_nm, at_edge=n.at_edge),
                                clf=fclf)  # fmt: skip
            except AinuError as err:
                run.error(path, str(err))
            if run.full(limit):
                break
        return run.finish()


def explain_prepared(
    classifier,
    nuclei: Sequence,
    out: str | os.PathLike,
    *,
    method: str = "occlusion",
    window: int | None = None,
    stride: int | None = None,
    target=None,
    baseline: float | str = 0.0,
    output: str = "logits",
    incremental: bool | None = None,
) -> dict:
    """Explain nuclei that are already rendered for ``classifier``'s model: ``nuclei`` is a list
    of (path, Nucleus, Prepared[, Prediction]) as a screen keeps them. Same outputs and summary
    as :func:`explain_files`; nothing is read or rendered again and the model is not reloaded.

    Parameters
    ----------
    classifier : Classifier
        The screen's classifier.
    nuclei : sequence
        (path, Nucleus, Prepared[, Prediction]) tuples.
    out : path
        The output folder.
    method, window, stride, target, baseline, output, incremental
        As :func:`explain_files`.

    Returns
    -------
    dict
        The summary.
    """
    with _ExplainRun(
        classifier,
        out,
        method=method,
        window=window,
        stride=stride,
        target=target,
        baseline=baseline,
        output=output,
        incremental=incremental,
    ) as run:
        for path, n, prep, *_ in nuclei:
            try:
                run.nucleus(path, n, prep)
            except AinuError as err:
                run.error(path, str(err))
        return run.finish()


class _ExplainRun:
    """One explain output folder: the settings, the per-nucleus files, ``explain.jsonl``, the
    nucleoli-replacement rows, the incremental-occlusion plans, and the summary."""

    def __init__(
        self,
        clf,
        out,
        *,
        method="occlusion",
        window=None,
        stride=None,
        target=None,
        baseline=0.0,
        output="logits",
        perturb=None,
        rim_nm=None,
        seed=0,
        incremental=None,
        on_item=None,
        on_error=None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if perturb not in (None, "nucleoli", "rim"):
            raise ValueError(f"perturb must be 'nucleoli', 'rim' or None, got {perturb!r}")
        if perturb == "rim" and not rim_nm:
            raise ValueError("perturb='rim' needs rim_nm (the band's width)")
        info = clf.info
        if clf.patch_size:
            raise InputError(
                "explain works on image-mode models (this one votes patches)", path=info.path
            )
        if method == "occlusion":
            window, stride = _check_window(info, window, stride)
        self.t0 = time.perf_counter()
        self.clf, self.method, self.names = clf, method, list(info.classes)
        self.window, self.stride, self.target, self.baseline, self.output = (
            window,
            stride,
            target,
            baseline,
            output,
        )
        self.perturb, self.incremental, self.rim_nm = perturb, incremental, rim_nm
        self.on_item, self.on_error = on_item, on_error
        self.rng = np.random.default_rng(seed)
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.records, self.errors, self.perturb_rows = [], [], []
        self.plans = IncrementalPlans()
        self.stems: set[str] = set()
        self.log = open(self.out / "explain.jsonl", "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def full(self, limit: int | None) -> bool:
        return limit is not None and len(self.records) >= limit

    def attribution(self, img: np.ndarray):
        from ._cam import cam, gradcam, integrated_gradients
        from ._occlusion import occlusion

        if self.method == "occlusion":
            return occlusion(
                self.clf,
                img,
                window=self.window,
                stride=self.stride,
                target=self.target,
                baseline=self.baseline,
                output=self.output,
                incremental=self.incremental,
                plans=self.plans,
            )
        fn = {"cam": cam, "gradcam": gradcam, "ig": integrated_gradients}[self.method]
        return fn(self.clf, img, target=self.target, class_names=self.names)

    def _stem(self, path, nucleus_id: str) -> str:
        """The file name of a nucleus' map and overlay: the file's stem and nucleus id, with
        the extension, then a number, where another nucleus of this run has it already (two
        files ``a.bin`` and ``a.csv`` must not overwrite each other's maps)."""
        name = Path(path).name
        suffix = f"_{nucleus_id}" if nucleus_id else ""
        stem = name.split(".")[0] + suffix
        if stem in self.stems:
            stem = name.replace(".", "_") + suffix
        base, k = stem, 1
        while stem in self.stems:
            k += 1
            stem = f"{base}_{k}"
        self.stems.add(stem)
        return stem

    def nucleus(self, path, n, prep, clf=None) -> dict:
        """Explain one rendered nucleus; writes its map, overlay and JSON line. ``clf``: the
        classifier that rendered it (a file's own channel map), for the rim test."""
        from ._structures import write_overlay

        img, names = prep.items[0], self.names
        a = self.attribution(img)
        prob = softmax(a.output)
        pred = names[int(np.argmax(prob))]
        stem = self._stem(path, n.id)
        np.save(self.out / f"{stem}.npy", a.maps)
        write_overlay(
            self.out / f"{stem}.png",
            img,
            a.maps[0],
            title=f"{self.method} for {names[a.targets[0]]} (call {pred}, p={prob.max():.2f})",
        )
        rec = {
            "source": str(path),
            "nucleus_id": n.id,
            "predicted": pred,
            "probabilities": {c: float(v) for c, v in zip(names, prob, strict=True)},
            "targets": [names[t] for t in a.targets],
            "method": self.method,
            "params": a.params,
            "map": str(self.out / f"{stem}.npy"),
            "overlay": str(self.out / f"{stem}.png"),
            "seconds": round(a.seconds, 3),
        }
        self._against_truth(rec, path, n, prep, img, a, pred)
        if self.rim_nm and "structures" not in rec and n.outline is not None:
            self._against_outline(rec, n, prep, img, a, clf or self.clf)
        self.records.append(rec)
        self.log.write(dumps(rec) + "\n")
        self.log.flush()
        if self.on_item is not None:
            self.on_item(rec)
        return rec

    def _against_truth(self, rec, path, n, prep, img, a, pred) -> None:
        """Structure fractions (and the nucleoli replacement) where the simulator's truth is
        beside the file."""
        from ._structures import replace_nucleoli, structure_fractions, structure_masks, truth_for

        truth = truth_for(path)
        tn = _truth_nucleus(truth, n)
        if tn is None:
            return
        r = prep.rendered
        masks = structure_masks(
            tn, shape=img.shape[-2:], origin_nm=r.origin_nm, pixel_nm=r.pixel_nm
        )
        rec["label"] = tn.get("label", truth.get("label"))
        rec["structures"] = {
            self.names[t]: structure_fractions(a.maps[i], masks) for i, t in enumerate(a.targets)
        }
        if self.perturb == "nucleoli" and masks["nucleoli"].any():
            after = self.clf.classify(replace_nucleoli(img, masks, rng=self.rng)).label
            self.perturb_rows.append({"label": rec["label"], "before": pred, "after": after})
            rec["after_nucleoli_replaced"] = after

    def _against_outline(self, rec, n, prep, img, a, clf) -> None:
        """The rim's share of the positive attribution (and the rim test) of a nucleus with an
        outline."""
        from ._structures import outline_masks, replace_rim, structure_fractions

        r = prep.rendered
        if r is None:
            return
        masks = outline_masks(n.outline, rim_nm=self.rim_nm, shape=img.shape[-2:],
                              origin_nm=r.origin_nm, pixel_nm=r.pixel_nm)  # fmt: skip
        rec["structures"] = {
            self.names[t]: structure_fractions(a.maps[i], masks) for i, t in enumerate(a.targets)
        }
        if self.perturb != "rim":
            return
        moved = replace_rim(n.locs, n.outline, rim_nm=self.rim_nm, rng=self.rng)
        if moved is None:
            return
        # both calls as a Classifier makes them (the model's temperature): like with like; the
        # 'before' one from the render explained above
        before = clf.predict_prepared([prep])[0]
        after = clf.classify(moved, roi_nm=n.roi_nm)
        rec["before_rim_replaced"] = {"label": before.label, "probabilities": before.probabilities}
        rec["after_rim_replaced"] = {"label": after.label, "probabilities": after.probabilities}
        self.perturb_rows.append({
            "before": before.label, "after": after.label,
            "p_before": dict(before.probabilities), "p_after": dict(after.probabilities),
        })  # fmt: skip

    def error(self, path, message: str) -> None:
        self.errors.append((str(path), message))
        if self.on_error is not None:
            self.on_error(str(path), message)

    def finish(self) -> dict:
        """Write ``summary.json`` (and ``perturb.json``); returns the summary."""
        from ..provenance import stamp

        summary = {
            **stamp(),
            "model": str(self.clf.backend.model_path),
            "method": self.method,
            "nuclei": len(self.records),
            "failed": len(self.errors),
            "errors": [{"path": p, "error": m} for p, m in self.errors],
            "seconds": round(time.perf_counter() - self.t0, 2),
            "structures": _mean_structures(self.records),
        }
        if self.perturb:
            key = f"perturb_{self.perturb}"
            summary[key] = (_perturb_summary if self.perturb == "nucleoli" else _rim_summary)(
                self.perturb_rows, self.names
            )
            with atomic_path(self.out / "perturb.json") as tmp:
                Path(tmp).write_text(dumps(summary[key], indent=2) + "\n")
        with atomic_path(self.out / "summary.json") as tmp:
            Path(tmp).write_text(dumps(summary, indent=2) + "\n")
        return summary

    def close(self) -> None:
        self.log.close()
        self.plans.close()

    def __enter__(self) -> _ExplainRun:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_window(info, window, stride) -> tuple[int, int]:
    window, stride = default_window(info.input_size, window, stride)
    if window >= info.input_size:
        raise InputError(
            f"an occlusion window of {window} px covers the whole {info.input_size} px input: "
            "one occlusion, a constant map",
            path=info.path,
            hint=f"use a smaller window (--window); this model's default is "
            f"{default_window(info.input_size)[0]}",
        )
    return window, stride


def default_window(
    size: int, window: int | None = None, stride: int | None = None
) -> tuple[int, int]:
    """Occlusion window and stride for a model input of ``size`` px: the given ones, else the
    paper's 64 / 32 on 512 px in proportion (``size / 8``, and half the window).

    Parameters
    ----------
    size : int
        The model input's side (px).
    window, stride : int, optional
        Given ones (a missing stride is half the window).

    Returns
    -------
    (int, int)
        The window and the stride.
    """
    window = max(1, round(64 * size / 512)) if window is None else int(window)
    return window, max(1, window // 2) if stride is None else int(stride)


def _truth_nucleus(truth: dict | None, nucleus) -> dict | None:
    if truth is None or not truth.get("nuclei"):
        return None
    nuclei = truth["nuclei"]
    if len(nuclei) == 1:
        return {**nuclei[0], "label": nuclei[0].get("label", truth.get("label"))}
    for t in nuclei:
        if "cell_id" in t and cell_name(t["cell_id"]) == nucleus.id:
            return t
    return None


def _mean_structures(records: list[dict]) -> dict:
    """Mean structure fractions per (true label, target class)."""
    acc: dict = {}
    for r in records:
        for target, fr in (r.get("structures") or {}).items():
            key = f"label={r.get('label')}, target={target}"
            for s, v in fr.items():
                d = acc.setdefault(key, {}).setdefault(
                    s, {"positive_attribution_fraction": [], "area_fraction": []}
                )
                d["positive_attribution_fraction"].append(v["positive_attribution_fraction"])
                d["area_fraction"].append(v["area_fraction"])
    out = {}
    for key, structs in acc.items():
        out[key] = {}
        for s, d in structs.items():
            pa, af = np.asarray(d["positive_attribution_fraction"]), np.asarray(d["area_fraction"])
            with (
                warnings.catch_warnings()
            ):  # no positive attribution at all gives NaN, reported as such
                warnings.simplefilter("ignore", RuntimeWarning)
                out[key][s] = _stats(pa, af)
    return out


def _stats(pa: np.ndarray, af: np.ndarray) -> dict:
    return {
        "n": int(np.isfinite(pa).sum()),
        "positive_attribution_fraction_mean": float(np.nanmean(pa)),
        "positive_attribution_fraction_sd": float(np.nanstd(pa)),
        "area_fraction_mean": float(np.nanmean(af)),
        "enrichment_mean": float(np.nanmean(pa / af)),
    }


def _perturb_summary(rows: list[dict], names: list[str]) -> dict:
    out = {}
    for c in names:
        sel = [r for r in rows if r["label"] == c]
        if not sel:
            continue
        before = sum(r["before"] == c for r in sel) / len(sel)
        after = sum(r["after"] == c for r in sel) / len(sel)
        out[c] = {
            "n": len(sel),
            "accuracy_before": before,
            "accuracy_after": after,
            "change": after - before,
        }
    return out


def _rim_summary(rows: list[dict], names: list[str]) -> dict:
    """How the calls moved when the rim localizations were replaced by interior ones: the
    share of calls that changed, and per class the mean probability before and after."""
    if not rows:
        return {"n": 0}
    return {
        "n": len(rows),
        "calls_changed": sum(r["before"] != r["after"] for r in rows) / len(rows),
        "calls_before": {c: sum(r["before"] == c for r in rows) for c in names},
        "calls_after": {c: sum(r["after"] == c for r in rows) for c in names},
        "mean_probability": {
            c: {"before": float(np.mean([r["p_before"][c] for r in rows])),
                "after": float(np.mean([r["p_after"][c] for r in rows]))}
            for c in names
        },
    }  # fmt: skip
