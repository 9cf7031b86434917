"""``ainu-engine nucleus simulate OUT``: actin + nucleus tiles with a known nucleus position
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
    n_tiles: Annotated[int, typer.Option("--n-tiles", min=1, help="Tiles to write.")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    sigma_pos_um: Annotated[
        float, typer.Option("--sigma-pos-um", min=0.0, help="Noise of the nucleus position (µm).")
    ] = 1.0,
    null: Annotated[
        str | None,
        typer.Option(help="A null control: random (uniform in the cell) or shuffled; same actin."),
    ] = None,
    shadow: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Actin lowered under the nucleus (a leak cue).")
    ] = 0.0,
    tile_um: Annotated[float, typer.Option("--tile-um", min=10.0, help="Tile side (µm).")] = 210.0,
    pixel_um: Annotated[float, typer.Option("--pixel-um", min=0.01, help="Pixel (µm).")] = 0.41,
    coverslips: Annotated[int, typer.Option(min=1, help="Coverslip groups (splits).")] = 8,
    json: JsonOpt = False,
) -> None:
    """Simulate confocal-MIP-like tiles of cells (cortical actin, stress fibres between
    protrusion tips, perinuclear cap fibres) whose nucleus sits at a known function of the cell
    geometry plus --sigma-pos-um noise. A null control moves the nucleus and keeps the actin
    of the same seed (drawn for the rule's position): at random in the cell (--null random) or
    at the cell's centroid plus another cell's offset (--null shuffled). Writes one folder a tile
    with Actin_*, Nucleus_* and
    Merged_* 8-bit RGB TIFFs (the NuclearPrediction layout), truth/ and pairs.csv.

    Example: ainu-engine nucleus simulate cells/ --n-tiles 40 --seed 1 --tile-um 105
    """
    from ...simulate import ActinConfig, simulate_tiles

    try:
        cfg = ActinConfig(tile_um=tile_um, pixel_um=pixel_um, sigma_pos_um=sigma_pos_um,
                          null=null, shadow=shadow)  # fmt: skip
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    o = Output(json_lines=json)
    with o.progress(n_tiles, "simulating tiles") as step:
        simulate_tiles(out, n_tiles=n_tiles, seed=seed, config=cfg, coverslips=coverslips,
                       progress=step)  # fmt: skip
    o.record({"out": str(out), "tiles": n_tiles, "pixel_um": pixel_um},
             f"{n_tiles} tiles -> {escape(str(out))}")  # fmt: skip
