"""Options shared by the commands that read localization files."""

from __future__ import annotations

from typing import Annotated

import typer

FormatOpt = Annotated[str, typer.Option(
    "--format", "-f", help="Input format name (see `ainu-engine formats`), or auto to detect it.")]
PixelOpt = Annotated[str | None, typer.Option(
    "--camera-pixel-nm", metavar="NM[,NM]",
    help="Camera pixel size in nm for files in pixel units that do not record one "
         "(e.g. 160 for N-STORM, 117 for ONI). A file's own metadata wins.")]
UnitOpt = Annotated[str | None, typer.Option(
    "--unit", help="Generic tables only: unit of coordinate columns whose names carry none (nm, px, um).")]
ColumnsOpt = Annotated[str | None, typer.Option(
    "--columns", metavar="ROLE=NAME,...",
    help="Generic tables only: which columns hold x, y, z, frame, channel, photons, precision.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object per line (JSON Lines).")]


def parse_pixel(value: str | None):
    """``"160"`` -> 160.0, ``"127,117"`` -> (127.0, 117.0); usage error otherwise."""
    if value is None:
        return None
    try:
        parts = [float(v) for v in value.replace("x", ",").split(",") if v.strip()]
    except ValueError as err:
        raise typer.BadParameter(f"expected a number of nm or NM,NM, got {value!r}",
                                 param_hint="--camera-pixel-nm") from err
    if len(parts) not in (1, 2):
        raise typer.BadParameter(f"expected one or two numbers, got {value!r}",
                                 param_hint="--camera-pixel-nm")
    return parts[0] if len(parts) == 1 else tuple(parts)


def parse_columns(value: str | None):
    """``"x=X_pos,y=Y_pos"`` -> ``{"x": "X_pos", "y": "Y_pos"}``."""
    if not value:
        return None
    out = {}
    for item in value.split(","):
        role, sep, name = item.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise typer.BadParameter(f"expected ROLE=NAME pairs, got {item!r}", param_hint="--columns")
        out[role.strip()] = name.strip()
    return out


def read_kwargs(fmt: str, pixel: str | None, unit: str | None, columns: str | None) -> dict:
    if unit not in (None, "nm", "px", "um"):
        raise typer.BadParameter(f"expected nm, px or um, got {unit!r}", param_hint="--unit")
    return {"format": fmt, "camera_pixel_nm": parse_pixel(pixel), "unit": unit,
            "columns": parse_columns(columns)}
