"""``ainu-engine example``: write the bundled example (a model and a batch to screen)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import JsonOpt
from ._output import Output


def example(
    dest: Annotated[Path, typer.Argument(help="Folder to write the example into.")] = Path(
        "ainu-example"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier example in DEST.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Write the example that ships with the package into DEST: a small model trained on
    SIMULATED nuclei (models/), a batch of simulated nuclei on three slides in Insight3,
    ThunderSTORM CSV and Parquet files (screen/), and one nucleus in three formats (data/).
    Prints the commands that screen it (ainu-engine screen DEST/screen --model
    DEST/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx --out DEST/results).

    Example: ainu-engine example demo --force"""
    from ..example import write_example

    files = write_example(dest, force=force)
    out = Output(json_lines=json)
    rec = {
        "root": str(files.root),
        "model": str(files.model),
        "screen": str(files.screen),
        "data": str(files.data),
        "next": files.commands(),
    }
    lines = [
        f"wrote the example to {files.root}/",
        f"  model   {files.model}  (trained on SIMULATED nuclei)",
        f"  batch   {files.screen}/  (3 slides, simulated nuclei)",
        f"  nucleus {files.data}/  (one nucleus in three formats)",
        "next:",
        *(f"  {c}" for c in files.commands()),
    ]
    out.record(rec, escape("\n".join(lines)))
