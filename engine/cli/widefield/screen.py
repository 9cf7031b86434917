"""``ainu-engine widefield screen FIELD... --model M.onnx --out DIR``: segment fields and call
every nucleus with an exported SCENMED model (ainu_engine.scenmed.WidefieldClassifier)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .._options import JsonOpt
from .._output import Output
from ._common import PixelUmOpt


def screen(
    inputs: Annotated[
        list[str], typer.Argument(help="TIFF / OME-TIFF / SCENMED .h5 fields, folders, manifests.")
    ],
    model: Annotated[Path, typer.Option("--model", "-m", help="model.onnx from widefield train.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")],
    pixel_um: PixelUmOpt = None,
    backend: Annotated[str, typer.Option(help="auto, onnxruntime, tensorrt, torch...")] = "auto",
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Occlusion maps (crop models) or patch heat maps (patch models)."
        ),
    ] = False,
    gallery: Annotated[int, typer.Option(min=0, help="Nuclei shown in the report.")] = 200,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads.")] = None,
    json: JsonOpt = False,
) -> None:
    """Segment widefield DAPI fields (SCENMED's rules) and call every kept nucleus with an
    exported widefield model: whole-crop models on the 128 x 128 crop, patch models by the mean
    of their patches' probabilities. Writes results.csv (every object: its drop reason, or
    its call and p_CLASS per class), report.html (calls, gallery, table) and, with --explain,
    maps/ (.npy per nucleus). A bad file is reported and the batch goes on.

    Example: ainu-engine widefield screen wf/fields --model run/model.onnx --out screen/
    """
    from ...scenmed import expand_fields, screen_fields

    items = expand_fields(inputs)
    o = Output(json_lines=json)
    res = screen_fields(
        items, model, out, pixel_um=pixel_um, backend=backend, threads=threads, explain=explain,
        gallery=gallery, progress=o.progress,
        on_error=lambda err, item: o.failure(err, {"path": item["path"]}, debug=None),
    )  # fmt: skip
    counts, no_call = res["calls"], res["no_call"]
    o.record(
        res,
        f"{res['nuclei']} nuclei in {len(items)} files: "
        f"{', '.join(f'{k} {v}' for k, v in counts.items())}"
        + (f", no call {no_call} (no usable patch)" if no_call else "")
        + f" -> {escape(str(out))}",
    )
    o.finish(len(items))
