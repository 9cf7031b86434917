"""``ainu-engine bench MODEL``: images/s and latency per backend and batch size; render speed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import JsonOpt
from ._output import Output


def bench(
    model: Annotated[Path, typer.Argument(help="Exported model (.onnx), or a checkpoint (.pt).")],
    backend: Annotated[
        str | None,
        typer.Option(
            help="Backends to measure, e.g. onnxruntime,tensorrt (default: all that run here)."
        ),
    ] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, e.g. 1,8,32.")] = "1,8,32",
    seconds: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds of measurement per backend (split over batches)."),
    ] = 10.0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    render: Annotated[
        bool, typer.Option("--render/--no-render", help="Also time rendering.")
    ] = True,
    save: Annotated[
        bool,
        typer.Option(
            "--save/--no-save",
            help="Keep the measurements for this model and machine: --backend auto then runs "
            "the fastest of them.",
        ),
    ] = True,
    json: JsonOpt = False,
) -> None:
    """Measure a model on this machine, as trtexec and perf_analyzer do: for every backend that
    can run it (or --backend), images/s and latency p50/p90/p99 per batch size on random inputs
    of the model's shape, after warm-up; and nuclei/s that the model's RenderSpec renders. With
    --json one object per line (backend, device, precision, batch, images_per_s, p50_ms, p90_ms,
    p99_ms; the render line has stage "render"). The measurements are kept (--no-save: not)
    for this model and machine, and --backend auto on every command then runs the fastest.

    Example: ainu-engine bench model.onnx --batch 1,8,32 --json
    """
    from ..bench import bench_model

    try:
        batches = [int(b) for b in batch.split(",") if b.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected sizes like 1,8,32, got {batch!r}", param_hint="--batch"
        ) from None
    if not batches or min(batches) < 1:
        raise typer.BadParameter("batch sizes must be >= 1", param_hint="--batch")
    o = Output(json_lines=json)

    def show(rec):
        if "error" in rec:
            o.record(rec, escape(f"{rec['backend']} ({rec['device']}): cannot run: {rec['error']}"))
        elif rec.get("stage") == "saved":
            auto = rec["auto"]
            pick = f"{auto['backend']} on {auto['device']}, batch {auto['batch']}" if auto else "-"
            o.record(rec, escape(f"kept in {rec['path']}: --backend auto now runs {pick}"))
        elif rec.get("stage") == "render":
            o.record(rec, f"render ({rec['n_localizations']:,} localizations): "
                          f"{rec['nuclei_per_s']} nuclei/s ({rec['median_ms']} ms)")  # fmt: skip
        else:
            head = f"{rec['backend']:<22} {rec['device']:<5} {rec['precision']:<5}"
            lat = f"p50 {rec['p50_ms']} ms, p90 {rec['p90_ms']} ms, p99 {rec['p99_ms']} ms"
            o.record(rec, escape(
                f"{head} batch {rec['batch']:>4}: {rec['images_per_s']:>9.1f} images/s, {lat}"
            ))  # fmt: skip

    names = [b.strip() for b in backend.split(",")] if backend else None
    results = bench_model(model, backends=names, batches=batches, seconds=seconds, device=device,
                          render=render, on_result=show, save=save)  # fmt: skip
    measured = [r for r in results if "stage" not in r]
    raise typer.Exit(1 if measured and all("error" in r for r in measured) else 0)
