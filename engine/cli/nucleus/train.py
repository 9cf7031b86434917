"""``ainu-engine nucleus train PAIRS --out RUN``: the TFill-Coarse generator
(ainu_engine.training.nucleus_prediction)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .._options import JsonOpt
from .._output import Output


def train(
    pairs: Annotated[
        Path, typer.Argument(help="Folder of tiles (Actin_*/Nucleus_*) or 2-channel TIFFs.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (created; resumed).")],
    preset: Annotated[str, typer.Option(help="tiny (CPU) or paper (~60 M parameters).")] = "tiny",
    model: Annotated[
        str, typer.Option(help="tfill (TFill-Coarse + GAN) or unet (the L1-only baseline).")
    ] = "tfill",
    size: Annotated[int, typer.Option(min=16, help="Training crop (px, multiple of 16).")] = 128,
    iterations: Annotated[int, typer.Option(min=1)] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 4,
    lr: Annotated[float, typer.Option(help="Generator learning rate (the fork: 1e-4).")] = 1e-4,
    lr_d: Annotated[
        float, typer.Option("--lr-d", help="Discriminator learning rate (the fork: 4e-4).")
    ] = 4e-4,
    lambda_g: Annotated[
        float,
        typer.Option("--lambda-g", min=0.0, help="GAN loss weight (the fork: 1; 0: L1 only)."),
    ] = 1.0,
    gan_start: Annotated[
        int,
        typer.Option(
            "--gan-start",
            min=0,
            help="Iterations on L1 alone before the GAN term starts (a warm-up).",
        ),
    ] = 0,
    target: Annotated[
        str, typer.Option(help="nucleus (the paper) or merged (the public code's target).")
    ] = "nucleus",
    split: Annotated[str, typer.Option(help="random or group (whole coverslips).")] = "random",
    pixel_um: Annotated[
        float | None, typer.Option("--pixel-um", help="Pixel size (µm), stored in the model.")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (AMP on CUDA).")] = "auto",
    json: JsonOpt = False,
) -> None:
    """Train the actin -> nucleus generator (TFill-Coarse: convolutional encoder, transformer,
    decoder; StyleGAN2-like discriminator) with the fork's losses (nucleus pixels weighted 10x
    in the L1 term, non-saturating GAN; LPIPS off: its weights cannot be downloaded here),
    Adam(0.5, 0.9), a random crop and flip per sample. Checkpoints and resumes; writes
    history.csv, loss.png, generator.pt and generator.onnx (ONNX Runtime checked against
    PyTorch within 1e-4).

    Example: ainu-engine nucleus train cells/ --preset tiny --size 64 --iterations 500 --out run/
    """
    from ...training.nucleus_prediction import GeneratorConfig, export_generator, train_generator

    try:
        cfg = GeneratorConfig(preset=preset, model=model, size=size, iterations=iterations,
                              batch_size=batch_size, lr=lr, lr_d=lr_d, lambda_g=lambda_g,
                              gan_start=gan_start,
                              target=target, split=split,
                              seed=seed, device=device)  # fmt: skip
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    o = Output(json_lines=json)
    with o.stage("training", iterations) as step:
        summary = train_generator(
            pairs, out, cfg, on_iteration=lambda r: step(f"L1 {r['loss_rec']:.3f}")
        )
    summary["onnx"] = export_generator(out / "generator.pt", out / "generator.onnx", size=size,
                                       pixel_um=pixel_um)  # fmt: skip
    o.record(
        summary,
        f"{iterations} iterations: reconstruction loss {summary['first_loss_rec']:.2f} -> "
        f"{summary['last_loss_rec']:.2f}, test L1 {summary['test_l1']} -> {escape(str(out))}",
    )
