"""``ainu-engine widefield simulate OUT``: simulated widefield DAPI fields with ground truth
(ainu_engine.simulate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .._options import JsonOpt
from .._output import Output


def simulate(
    out: Annotated[Path, typer.Argument(help="Output folder (created).")],
    classes: Annotated[
        str, typer.Option(help="Classes, comma-separated: NIH3T3, BJ, MCF10A, MCF7, MDA-MB-231.")
    ] = "NIH3T3,BJ",
    n_fields: Annotated[
        int, typer.Option("--n-fields", min=1, help="Fields (512 x 512) per class.")
    ] = 10,
    n_sets: Annotated[
        int, typer.Option("--n-sets", min=1, help="Image sets (days) per class: the groups.")
    ] = 2,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same files.")] = 0,
    difficulty: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Scales class differences by 1 - difficulty (1 = identical)."
        ),
    ] = 0.0,
    haze: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Out-of-focus haze: 0.08 deconvolved-like, 0.3 raw widefield."
        ),
    ] = 0.08,
    drift_blur_px: Annotated[
        float, typer.Option("--drift-blur-px", min=0.0, help="Linear drift blur (px) of all sets.")
    ] = 0.0,
    hdf5: Annotated[
        bool, typer.Option("--hdf5", help="Also write scenmed.h5 (images, CellType).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Write into an existing folder.")] = False,
    json: JsonOpt = False,
) -> None:
    """Simulate SCENMED-like widefield DAPI fields (0.215 µm pixels, 512 x 512, 12 bit): nuclei
    of NIH/3T3-, BJ-, MCF10A-, MCF7- and MDA-MB-231-like classes that differ in size, outline,
    chromocentres and heterochromatin; camera noise, over-exposed nuclei, the blurred frame
    edge. Writes fields/, truth/ (instances, heterochromatin), manifest.csv, nuclei.csv.

    Example: ainu-engine widefield simulate wf/ --classes NIH3T3,BJ --n-fields 20 --seed 1
    """
    from ...errors import OutputError
    from ...simulate import simulate_widefield

    if out.exists() and any(out.iterdir()) and not force:
        raise OutputError("folder exists and is not empty", path=out, hint="pass --force")
    names = [c.strip() for c in classes.split(",") if c.strip()]
    o = Output(json_lines=json)
    try:
        with o.progress(len(names) * n_fields, "simulating fields") as step:
            info = simulate_widefield(
                out, classes=names, n_fields=n_fields, n_sets=n_sets, seed=seed,
                difficulty=difficulty, haze=haze, drift_blur_px=drift_blur_px, hdf5=hdf5,
                progress=step,
            )  # fmt: skip
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    o.record(
        {"out": str(out), "fields": len(names) * n_fields, "nuclei": info["n_nuclei"]},
        f"{len(names) * n_fields} fields, {info['n_nuclei']} nuclei -> {escape(str(out))}",
    )
