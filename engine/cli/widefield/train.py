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
from .features import load_nuclei

#: the models of training.scenmed.MODELS (listed here so --help needs no torch)
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
    from .._options import need_train_extra

    if model not in MODELS:
        raise typer.BadParameter(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    if model not in ("logreg", "svm", "rf"):
        need_train_extra()  # the linear models need scikit-learn only
    from ...training.scenmed import ScenmedRunConfig, read_features_table, train_scenmed

    cfg = ScenmedRunConfig(
        model=model, val_fraction=val_fraction, groups=groups, layout=layout,
        patch_size=patch_size, stride=stride, min_occupied=min_occupied, width=width,
        hidden=hidden, epochs=epochs, patience=patience, lr=lr, batch_size=batch_size,
        rotate4=rotate4, augment=augment, monitor=monitor, balanced_batches=balanced_batches,
        search=search, seed=seed, threads=threads,
    )  # fmt: skip
    o = Output(json_lines=json)
    table = read_features_table(inputs[0]) if len(inputs) == 1 else None
    if table is None:
        table, _ = load_nuclei(inputs, pixel_um, o, False)
    linear = model in ("logreg", "svm", "rf")
    bar = (o.progress(len(getattr(table, "kept", [])), "features") if linear
           else o.stage("training", epochs))  # fmt: skip
    with bar as step:
        hooks = {"on_nucleus": step} if linear else {"on_epoch": lambda r: step(
            f"val loss {r['val_loss']:.3f} acc {r['val_accuracy']:.2f}")}  # fmt: skip
        try:
            summary = train_scenmed(table, out, cfg, **hooks)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from err
    o.record(
        summary,
        f"{model}: train {summary['train_accuracy']:.3f}, validation "
        f"{summary['val_accuracy']:.3f} ({summary['n_val']} nuclei) -> {escape(str(out))}",
    )
