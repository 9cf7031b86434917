"""``ainu-engine evaluate MODEL.onnx MANIFEST --out DIR``: metrics of an exported model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import (
    ChannelMapOpt,
    JsonOpt,
    channel_map,
    first_pixel,
    need_train_extra,
    reading_options,
)
from ._output import Output


@reading_options
def evaluate(
    model: Annotated[Path, typer.Argument(help="Exported model (.onnx).")],
    manifest: Annotated[
        Path, typer.Argument(help="CSV with path,label (labels among the model's classes).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for metrics.json, plots, predictions.csv, errors.csv."
        ),
    ],
    device: Annotated[str, typer.Option(help="Rendering device: auto, cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    channel_map_: ChannelMapOpt = None,
    cache: Annotated[Path | None, typer.Option(help="Render cache folder.")] = None,
    nuclei: Annotated[
        str, typer.Option(help="file: a row is a nucleus; detect, roi, cell_id: split rows.")
    ] = "file",
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Render the manifest's nuclei with the model's RenderSpec, classify them with ONNX
    Runtime and write metrics with 95 % CIs, confusion/ROC/PR plots and per-nucleus calls.

    Example: ainu-engine evaluate model.onnx test/manifest.csv --out eval/
    """
    need_train_extra()
    from ainu_engine.model import read_model_info
    from ainu_engine.training.data import RenderCache
    from ainu_engine.training.evaluate import evaluate as run_evaluate
    from ainu_engine.training.train import default_cache_dir

    reading = reading or {}
    o = Output(json_lines=json)
    rc = RenderCache(
        cache or default_cache_dir(),
        device=device,
        camera_pixel_nm=first_pixel(reading),
        read_options=reading,
        channel_names=read_model_info(model).channel_names,
        channel_map=channel_map(channel_map_),
        channel_option="--channel-map",
    )
    m = run_evaluate(
        model,
        manifest,
        out,
        cache=rc,
        batch_size=batch_size,
        reporter=o,
        device="cpu" if device == "cpu" else "auto",
        nuclei=nuclei,
    )
    lo, hi = m["accuracy_ci_normal"]
    o.record(
        {
            "model": str(model),
            "manifest": str(manifest),
            "out": str(out),
            "n": m["n"],
            "accuracy": m["accuracy"],
            "accuracy_ci_normal": m["accuracy_ci_normal"],
            "balanced_accuracy": m["balanced_accuracy"],
            "n_failed": m["n_failed"],
        },
        escape(
            f"{model} on {manifest}: accuracy {m['accuracy']:.3f} (95 % CI {lo:.3f}-{hi:.3f}, "
            f"n={m['n']}), balanced {m['balanced_accuracy']:.3f}"
            + (f", {m['n_failed']} nuclei failed (errors.csv)" if m["n_failed"] else "")
            + f"; results in {out}"
        ),
    )
    raise typer.Exit(1 if m["n_failed"] else 0)
