"""Options and input expansion shared by the widefield commands."""

from __future__ import annotations

from typing import Annotated

import typer

PixelUmOpt = Annotated[
    float | None,
    typer.Option(
        "--pixel-um",
        min=0.0,
        help="Pixel size in µm, for files that state none (or to override them).",
    ),
]

