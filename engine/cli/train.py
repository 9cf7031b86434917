"""``ainu-engine train MANIFEST --out RUN``: the paper's training protocol
(ainu_engine.training.train)."""

from __future__ import annotations

import json as _json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import (
    ChannelsOpt,
    JsonOpt,
    MagnificationOpt,
    NucleusAreaOpt,
    OutsideOpt,
    PixelNmOpt,
    ScalingOpt,
    SigmaOpt,
    SigmaPrecisionOpt,
    area_limits,
    first_pixel,
    need_train_extra,
    reading_options,
    render_spec,
)
from ._output import Output


@reading_options
def train(
    manifest: Annotated[
        Path, typer.Argument(help="CSV with path,label[,group] (ainu-engine simulate writes one).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Run folder (created): config, log, plots, metrics, best.pt."
        ),
    ],
    arch: Annotated[
        str,
        typer.Option(
            help="Architecture: densenet121, resnet18/34/50, efficientnet_b0, vgg_scenmed, "
            "small_cnn."
        ),
    ] = "densenet121",
    compare: Annotated[
        str | None,
        typer.Option(
            help="Cross-validate these architectures (comma-separated) and train the best."
        ),
    ] = None,
    image_size: Annotated[
        int, typer.Option("--image-size", min=16, help="Model input side in pixels (resize + pad).")
    ] = 512,
    epochs: Annotated[
        int, typer.Option(min=1, help="Most epochs; early stopping usually ends sooner.")
    ] = 300,
    folds: Annotated[
        int,
        typer.Option(min=0, help="k of the stratified k-fold CV (0 skips it)."),
    ] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate (AdamW).")] = 1e-3,
    patience: Annotated[
        int, typer.Option(min=1, help="Epochs without improvement before stopping.")
    ] = 20,
    monitor: Annotated[
        str,
        typer.Option(
            help="Best epoch by val. loss or balanced_accuracy (small sets)."
        ),
    ] = "loss",
    min_epochs: Annotated[
        int,
        typer.Option("--min-epochs", min=0, help="Epochs before early stopping starts to watch."),
    ] = 0,
    warmup_epochs: Annotated[
        int,
        typer.Option(
            "--warmup-epochs", min=0, help="Linear learning-rate warm-up from lr/10 over N epochs."
        ),
    ] = 0,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Withheld test set.")
    ] = 0.2,
    seed: Annotated[
        int, typer.Option(help="Seed of everything random.")
    ] = 0,
    device: Annotated[
        str, typer.Option(help="Training and rendering device: auto, cpu or cuda.")
    ] = "auto",
    groups: Annotated[
        bool,
        typer.Option(
            "--groups/--no-groups", help="Keep each manifest group on one side of every split."
        ),
    ] = True,
    augment: Annotated[
        bool,
        typer.Option(
            "--augment/--no-augment", help="Flips, rotations, intensity jitter, GridMask."
        ),
    ] = True,
    augment_localizations: Annotated[
        str | None,
        typer.Option(
            "--augment-localizations",
            metavar="SPEC",
            help="Per-epoch augmentations: default or KEY=VALUE,... (docs/training.md).",
        ),
    ] = None,
    preprocess: Annotated[
        str | None,
        typer.Option(
            metavar="SPEC",
            help="Preprocess each nucleus (recorded in the model): KEY=VALUE,... "
            "(docs/preprocessing.md).",
        ),
    ] = None,
    patch_size: Annotated[
        int | None,
        typer.Option(
            "--patch-size",
            help="Patch mode: train on SxS patches of the raw render "
            "(use e.g. --magnification 30).",
        ),
    ] = None,
    min_occupied: Annotated[
        float,
        typer.Option(
            "--min-occupied", help="Patch mode: keep patches more than this fraction occupied."
        ),
    ] = 0.75,
    pixel_nm: PixelNmOpt = None,
    magnification: MagnificationOpt = None,
    sigma_nm: SigmaOpt = 20.0,
    sigma_from_precision: SigmaPrecisionOpt = False,
    channels: ChannelsOpt = None,
    scaling: ScalingOpt = "max",
    outside: OutsideOpt = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Render cache folder (default ~/.cache/ainu-engine/renders or "
            "$AINU_CACHE_DIR/renders)."
        ),
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch.")] = None,
    leave_one_group_out: Annotated[
        bool,
        typer.Option(
            "--leave-one-group-out",
            help="Test each group, trained on the others.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a finished run in --out.")
    ] = False,
    nuclei: Annotated[
        str,
        typer.Option(
            help="file: a row is a nucleus; detect, roi, cell_id: split rows like screen.",
        ),
    ] = "file",
    nucleus_area: NucleusAreaOpt = None,
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Train a classifier as in the paper: 80/20 split, k-fold CV, early stopping, test metrics.

    Renders each nucleus once (cached), cross-validates, trains the final model, tests it once
    and writes RUN/best.pt; --leave-one-group-out holds out each group (slide, mouse) in turn.

    Example: ainu-engine train data/manifest.csv --out run/ --image-size 512
    """
    need_train_extra()
    from ainu_engine.preprocess import Preprocess
    from ainu_engine.training.augment import AugmentConfig, LocAugmentConfig
    from ainu_engine.training.data import RenderCache, read_manifest
    from ainu_engine.training.train import TrainConfig, default_cache_dir
    from ainu_engine.training.train import train as run_train

    reading = reading or {}
    cam = first_pixel(reading)
    # names (cpla2,5lo) choose among a manifest's per-file channel maps; ids (1,2) are file channels
    names = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    by_name = bool(names) and not all(c.isdigit() for c in names)
    spec = render_spec(pixel_nm=pixel_nm, magnification=magnification, camera_pixel_nm=cam,
                       sigma_nm=sigma_nm, sigma_from_precision=sigma_from_precision,
                       size=0 if patch_size else image_size,
                       channels=None if by_name else channels, scaling=scaling,
                       outside=outside)  # fmt: skip
    archs = [a.strip() for a in compare.split(",") if a.strip()] if compare else None
    off = {"flip": 0, "rot90": False, "rotate": 0, "intensity": 0, "contrast": 0, "gridmask": 0}
    try:
        locs_aug = LocAugmentConfig.parse(augment_localizations) if augment_localizations else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--augment-localizations") from err
    try:
        pre = Preprocess.parse(preprocess) if preprocess else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--preprocess") from err
    try:
        cfg = TrainConfig(
            arch=archs[0] if archs else arch, epochs=epochs, batch_size=batch_size, lr=lr,
            patience=patience, monitor=monitor, min_epochs=min_epochs,
            warmup_epochs=warmup_epochs, test_fraction=test_fraction, folds=folds, seed=seed,
            device=device, use_groups=groups, patch_size=patch_size, min_occupied=min_occupied,
            augment=AugmentConfig() if augment else AugmentConfig(**off), threads=threads,
            augment_localizations=locs_aug, preprocess=pre,
        )  # fmt: skip
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    o = Output(json_lines=json)
    m = read_manifest(manifest, channels=names if by_name else None)
    if nuclei != "file":
        m = _expand(m, nuclei, cam, reading, o, area_limits(nucleus_area))
    rc = RenderCache(cache or default_cache_dir(), device="cpu" if device == "cpu" else "auto",
                     camera_pixel_nm=cam, read_options=reading)  # fmt: skip
    if leave_one_group_out:
        _leave_one_group_out(m, out, cfg, spec, rc, o, force=force)
        return
    summary = run_train(
        m, out, config=cfg, spec=spec, compare=archs, cache=rc, reporter=o, force=force
    )
    record, text = _summary(summary, out, cfg)
    o.record(_json.loads(_json.dumps(record)), escape(text))


def _expand(m, nuclei: str, cam, reading: dict, o: Output, limits=None):
    """The manifest's rows split into their nuclei (``--nuclei``), with a count per file."""
    from ainu_engine.nuclei import NUCLEI_MODES
    from ainu_engine.training.data import expand_nuclei

    if nuclei not in NUCLEI_MODES:
        raise typer.BadParameter(f"expected one of {', '.join(NUCLEI_MODES)}",
                                 param_hint="--nuclei")  # fmt: skip
    with o.progress(len(m), "splitting") as step:
        out = expand_nuclei(m, mode=nuclei, camera_pixel_nm=cam, read_options=reading,
                            area_limits_um2=limits, on_file=lambda path, n: step())  # fmt: skip
    o.log(f"{len(out)} nuclei in {len(m)} files (--nuclei {nuclei})")
    return out


def _summary(summary: dict, out: Path, cfg) -> tuple[dict, str]:
    """The record and the text of a training run's end."""
    t = summary["test"]
    record = {
        "run": str(out),
        "checkpoint": str(out / "best.pt"),
        "arch": summary["arch"],
        "test_accuracy": t["accuracy"],
        "test_accuracy_ci_normal": t["accuracy_ci_normal"],
        "test_balanced_accuracy": t["balanced_accuracy"],
        "test_n": t["n"],
        "cv": {a: {k: v for k, v in r.items() if k != "folds"} for a, r in summary["cv"].items()},
    }
    lines = [
        f"{out}: {summary['arch']}, test accuracy {t['accuracy']:.3f} "
        f"(95 % CI {t['accuracy_ci_normal'][0]:.3f}-{t['accuracy_ci_normal'][1]:.3f}, n={t['n']}), "
        f"balanced {t['balanced_accuracy']:.3f}"
    ]
    for a, r in summary["cv"].items():
        lines.append(
            f"  {a}: {cfg.folds}-fold CV accuracy {r['accuracy_mean']:.3f} ± "
            f"{r['accuracy_sd']:.3f}, "
            f"loss {r['loss_mean']:.4f} ± {r['loss_sd']:.4f}"
        )
    lines.append(f"  next: ainu-engine export {out / 'best.pt'} --out model.onnx")
    return record, "\n".join(lines)


def _leave_one_group_out(m, out: Path, cfg, spec, rc, o: Output, *, force: bool) -> None:
    from ainu_engine.training.train import leave_one_group_out

    doc = leave_one_group_out(m, out, config=cfg, spec=spec, cache=rc, reporter=o, force=force)
    lines = [f"{out}: {doc['arch']}, leave-one-group-out over {len(doc['groups'])} groups: "
             f"mean accuracy {doc['accuracy_mean']:.3f}"
             + (f" ± {doc['accuracy_sd']:.3f}" if doc["accuracy_sd"] is not None else "")
             + f", pooled {doc['accuracy_pooled']:.3f}"]  # fmt: skip
    for r in doc["groups"]:
        lines.append(f"  held out {r['group']} ({r['nuclei']} nuclei, {'+'.join(r['classes'])}): "
                     f"accuracy {r['accuracy']:.3f} (95 % CI {r['accuracy_ci'][0]:.3f}-"
                     f"{r['accuracy_ci'][1]:.3f})")  # fmt: skip
    o.record(_json.loads(_json.dumps(doc)), escape("\n".join(lines)))
