"""``ainu-engine widefield train INPUT --model M --out RUN``: SCENMED's models
(ainu_engine.training.scenmed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .._options import JsonOpt
from .._output import Output
from ._common import PixelUmOpt

MODELS = ("cnn", "patches", "patchnet", "logreg", "svm", "rf")


def train(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="A manifest of fields (path, label, group), segment folders, or (linear "
            "models) a features table from widefield features."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (created).")],
    model: Annotated[
        str,
        typer.Option(
            help="cnn (128 px crops), patches (32 px, stride 16), patchnet (11 or 17 px), "
            "logreg, svm or rf."
        ),
    ] = "cnn",
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Fair validation split (the paper: 0.15).")
    ] = 0.15,
    groups: Annotated[
        bool,
        typer.Option("--groups/--no-groups", help="Keep each image set (group) on one side."),
    ] = True,
    layout: Annotated[str, typer.Option(help="Features: paper (104) or code (120).")] = "paper",
    patch_size: Annotated[
        int | None,
        typer.Option("--patch-size", min=8, help="Patch side (default 32; patchnet 11)."),
    ] = None,
    stride: Annotated[
        int | None, typer.Option(min=1, help="Patch stride (default half the patch side).")
    ] = None,
    min_occupied: Annotated[
        float,
        typer.Option("--min-occupied", help="Patch: nucleus fraction (paper 0.85, code 0.8)."),
    ] = 0.85,
    width: Annotated[int, typer.Option(min=1, help="CNN: first filters (paper 32, code 64).")] = 32,
    hidden: Annotated[int, typer.Option(min=1, help="CNN: units of each FC layer.")] = 1024,
    epochs: Annotated[int, typer.Option(min=1)] = 100,
    patience: Annotated[int, typer.Option(min=1, help="CNN: early stopping patience.")] = 20,
    lr: Annotated[float, typer.Option(help="CNN: Adam learning rate (paper 8e-5).")] = 8e-5,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    rotate4: Annotated[
        bool, typer.Option("--rotate4", help="CNN: add 90/180/270 degree copies (the code).")
    ] = False,
    augment: Annotated[
        bool, typer.Option("--augment", help="CNN: a random flip and 90 degree turn per image.")
    ] = False,
    monitor: Annotated[
        str, typer.Option(help="CNN: best epoch by loss (the code) or balanced_accuracy.")
    ] = "loss",
    balanced_batches: Annotated[
        bool,
        typer.Option(
            "--balanced-batches",
            help="CNN: equal numbers of each class in every batch, unweighted loss (the code; "
            "the paper weights the loss).",
        ),
    ] = False,
    search: Annotated[
        int, typer.Option(min=0, help="rf: randomized search with N draws (3-fold CV on train).")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the split, model and shuffling.")] = 0,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch.")] = None,
    pixel_um: PixelUmOpt = None,
    json: JsonOpt = False,
) -> None:
    """Train one of SCENMED's classifiers on segmented nuclei: the VGG-like CNN on 128 x 128
    crops, on 32 x 32 patches or PatchNet on 11 x 11 patches (a nucleus's call averages its
    patches), or a linear model (L2 logistic regression, linear SVM, random forest 100 trees
    depth 8) on the hand-crafted features with the feature-ablation table. The paper's fair
    validation split (per class, 15 % in all), group-disjoint by default. Writes metrics.json,
    confusion.png; CNNs also history.csv, learning_curves.png, model.pt, model.onnx (for
    widefield screen; ONNX Runtime checked against PyTorch) and tsne.png; linear
    models ablation.csv and model.joblib.

    Example: ainu-engine widefield train wf/manifest.csv --model logreg --out run-logreg/
    """
    if model not in MODELS:
        raise typer.BadParameter(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    from .._options import need_train_extra

    o = Output(json_lines=json)
    out.mkdir(parents=True, exist_ok=True)
    if model in ("logreg", "svm", "rf"):
        summary = _linear(inputs, out, model, layout, val_fraction, groups, seed, pixel_um, o,
                          search)  # fmt: skip
    else:
        need_train_extra()
        summary = _cnn(
            inputs, out, model, o, pixel_um=pixel_um, val_fraction=val_fraction,
            groups=groups, patch_size=patch_size, stride=stride, min_occupied=min_occupied,
            width=width, hidden=hidden, epochs=epochs, patience=patience, lr=lr,
            batch_size=batch_size, rotate4=rotate4, augment=augment, monitor=monitor, seed=seed,
            threads=threads, balanced_batches=balanced_batches,
        )  # fmt: skip
    o.record(
        summary,
        f"{model}: train {summary['train_accuracy']:.3f}, validation "
        f"{summary['val_accuracy']:.3f} ({summary['n_val']} nuclei) -> {escape(str(out))}",
    )


def _labels(rows):
    import numpy as np

    labs = [str(r["label"]) for r in rows]
    if any(not v for v in labs):
        raise typer.BadParameter("every nucleus needs a label: give a manifest (path, label)")
    classes = sorted(set(labs))
    if len(classes) < 2:
        raise typer.BadParameter(f"need at least two classes, found {classes}")
    y = np.array([classes.index(v) for v in labs])
    g = np.array([str(r.get("group", "")) for r in rows])
    return classes, y, g


def _split(y, g, val_fraction, groups, seed):
    from ...training.scenmed import fair_split

    try:
        return fair_split(y, g if groups and all(g) else None, fraction=val_fraction, seed=seed)
    except ValueError as err:
        raise typer.BadParameter(f"{err}; or pass --no-groups") from err


def _metrics(y, prob, classes, out: Path) -> dict:
    from ...training.metrics import classification_metrics, plot_metrics

    m = classification_metrics(y, prob, classes)
    plot_metrics(m, out)
    return {k: m[k] for k in ("n", "accuracy", "accuracy_ci_normal", "confusion") if k in m}


def _linear(inputs, out, model, layout, val_fraction, groups, seed, pixel_um, o, search) -> dict:
    import csv

    import joblib
    import numpy as np

    from ...strict_json import dumps
    from ...training.scenmed import ablation, fit_linear

    if len(inputs) == 1 and inputs[0].endswith((".parquet", ".csv")) and _is_features(inputs[0]):
        rows, names = _read_features(inputs[0])
    else:
        from ...scenmed import features_of
        from .features import load_nuclei

        table, _ = load_nuclei(inputs, pixel_um, o, False)
        with o.progress(len(table.kept), "features") as step:
            rows, names = features_of(table, layout=layout, progress=step)
    classes, y, g = _labels(rows)
    X = np.array([[r[n] for n in names] for r in rows], float)
    tr, va = _split(y, g, val_fraction, groups, seed)
    pipe, res = fit_linear(X, y, tr, va, model, seed, search=search)
    prob = np.eye(len(classes))[res["val_pred"]]
    metrics = _metrics(y[va], prob, classes, out)
    abl = ablation(X, y, names, tr, va, model=model, seed=seed)
    with open(out / "ablation.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(abl[-1]))
        w.writeheader()
        w.writerows(abl)
    joblib.dump({"pipeline": pipe, "features": names, "classes": classes}, out / "model.joblib")
    summary = {
        "model": model, "classes": classes, "n_train": len(tr), "n_val": len(va),
        "features": len(names), "layout": "paper" if len(names) in (104, 99) else "code",
        "train_accuracy": res["train_accuracy"], "val_accuracy": res["val_accuracy"],
        "validation": metrics, "ablation": abl, "best_params": res.get("best_params"),
    }  # fmt: skip
    (out / "metrics.json").write_text(dumps(summary, indent=2))
    return {k: v for k, v in summary.items() if k not in ("ablation", "validation")}


def _is_features(path: str) -> bool:
    import pyarrow.parquet as pq

    if path.endswith(".parquet"):
        return "lbp_00" in pq.read_schema(path).names
    with open(path) as fh:
        return "lbp_00" in fh.readline()


def _read_features(path: str):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t = pq.read_table(path) if path.endswith(".parquet") else pacsv.read_csv(path)
    names = [c for c in t.column_names if c.split("_")[0] in ("shape", "lbp", "pftas", "zernike")]
    return t.to_pylist(), names


def _cnn(inputs, out, model, o, **kw) -> dict:
    import csv

    import numpy as np
    import torch

    from ...strict_json import dumps
    from ...training.metrics import plot_learning_curves
    from ...training.scenmed import penultimate_features, train_cnn, tsne
    from .features import load_nuclei

    table, _ = load_nuclei(inputs, kw["pixel_um"], o, False)
    kept = table.kept
    classes, y, g = _labels(kept)
    crops = np.stack([table.crops[int(r["crop"])] for r in kept])
    tr, va = _split(y, g, kw["val_fraction"], kw["groups"], kw["seed"])
    arch = "patchnet_scenmed" if model == "patchnet" else "vgg_scenmed"
    patch = kw["patch_size"] or {"cnn": None, "patches": 32, "patchnet": 11}[model]
    with o.stage("training", kw["epochs"]) as step:
        res = train_cnn(
            crops, y, tr, va, arch=arch, patch=patch, stride=kw["stride"],
            width=kw["width"], hidden=kw["hidden"], epochs=kw["epochs"],
            patience=kw["patience"], lr=kw["lr"], batch_size=kw["batch_size"],
            min_occupied=kw["min_occupied"], rotate4=kw["rotate4"], augment=kw["augment"],
            monitor=kw["monitor"], seed=kw["seed"],
            threads=kw["threads"], balanced_batches=kw["balanced_batches"],
            on_epoch=lambda r: step(f"val loss {r['val_loss']:.3f} acc {r['val_accuracy']:.2f}"),
        )  # fmt: skip
    with open(out / "history.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(res.history[0]))
        w.writeheader()
        w.writerows(res.history)
    plot_learning_curves(res.history, out / "learning_curves.png")
    metrics = _metrics(y[va], res.val_prob, classes, out)
    torch.save(
        {"state_dict": res.model.state_dict(), "arch": arch, "classes": classes,
         "config": res.model.config.to_dict(), "patch": patch},
        out / "model.pt",
    )  # fmt: skip
    from ...training.scenmed import export_widefield

    samples = (crops[va[:4]] / 4095.0)[:, None].astype("float32") if patch is None else None
    exported = export_widefield(
        res.model, out / "model.onnx", classes=classes, patch=patch, stride=kw["stride"],
        min_occupied=kw["min_occupied"], samples=samples,
        metrics={"val_accuracy": res.val_accuracy, "train_accuracy": res.train_accuracy,
                 "n_val": len(va), "n_train": len(tr)},
    )  # fmt: skip
    if model == "cnn" and len(crops) >= 5:
        _plot_tsne(tsne(penultimate_features(res.model, crops), seed=kw["seed"]), y, classes,
                   out / "tsne.png")  # fmt: skip
    summary = {
        "model": model, "arch": arch, "patch": patch, "classes": classes,
        "n_train": len(tr), "n_val": len(va), "n_items": res.n_items,
        "train_accuracy": res.train_accuracy, "val_accuracy": res.val_accuracy,
        "best_epoch": res.best_epoch, "epochs_run": len(res.history),
        "balanced_batches": kw["balanced_batches"], "seconds": round(res.seconds, 1),
        "validation": metrics,
        "onnx": exported,
    }  # fmt: skip
    (out / "metrics.json").write_text(dumps(summary, indent=2))
    return {k: v for k, v in summary.items() if k != "validation"}


def _plot_tsne(xy, y, classes, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.2))
    ax = fig.subplots()
    for i, c in enumerate(classes):
        ax.scatter(*xy[y == i].T, s=10, label=f"{c} (n={int((y == i).sum())})")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title("t-SNE of the CNN's fc_2 features")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
