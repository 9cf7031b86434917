"""``ainu-engine convert INPUT... --out OUT``: rewrite localization files in another format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import OutputError
from ..io import FORMATS, read, write
from ._options import JsonOpt, reading_options
from ._output import Output

#: Output format -> file extension.
EXTENSIONS = {"parquet": ".parquet", "arrow": ".arrow", "thunderstorm": ".csv", "insight3": ".bin"}


@reading_options
def convert(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Localization files to convert.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help=("Output file (one input), or a folder (created if needed) for several inputs."),
        ),
    ],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help=(
                "Output format: parquet (default for folders), arrow, thunderstorm (CSV), insight3 "
                "(.bin). "
                "For a single output file its extension decides when --to is not given."
            ),
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace outputs that exist.")] = False,
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Convert localization files to Parquet, Arrow IPC, ThunderSTORM CSV or Insight3 .bin.

    Each output appears complete or not at all. A bad input is reported and the others
    are still converted; the exit code is 1 if any failed.

    Example: ainu-engine convert run1/*.csv --out parquet/ --to parquet
    """
    if to is not None and to not in EXTENSIONS:
        raise typer.BadParameter(
            f"expected one of {', '.join(EXTENSIONS)}, got {to!r}", param_hint="--to"
        )
    kwargs = reading or {}
    pixel = kwargs.get("camera_pixel_nm")
    single_file = len(inputs) == 1 and not out.is_dir() and (out.suffix != "" or to is not None)
    if single_file:
        targets = [(inputs[0], out if out.suffix else out.with_suffix(EXTENSIONS[to]))]
        target_format = to or "auto"
    else:
        target_format = to or "parquet"
        if out.exists() and not out.is_dir():
            raise typer.BadParameter(
                f"{out} is a file; several inputs need an output folder", param_hint="--out"
            )
        out.mkdir(parents=True, exist_ok=True)
        targets = [(p, out / (p.stem + EXTENSIONS[target_format])) for p in inputs]
    seen: dict[Path, Path] = {}
    o = Output(json_lines=json)
    with o.progress(len(targets), "convert") as advance:
        for src, dst in targets:
            try:
                if dst in seen:
                    raise OutputError(
                        f"would overwrite the output of {seen[dst]}",
                        path=dst,
                        hint="convert inputs with the same name into separate folders",
                    )
                seen[dst] = src
                _convert_one(o, src, dst, kwargs, target_format, pixel, force)
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                o.failure(
                    err,
                    {"input": str(src), "output": str(dst)},
                    debug=ctx.obj["debug"] if ctx.obj else None,
                )
            advance()
    o.finish(len(targets))


def _convert_one(o: Output, src: Path, dst: Path, kwargs: dict, target_format: str, pixel,
                 force: bool) -> None:  # fmt: skip
    """Read one file, write it, and report it (warnings first)."""
    locs = read(src, **kwargs)
    dst.parent.mkdir(parents=True, exist_ok=True)
    warnings = write(locs, dst, format=target_format, camera_pixel_nm=pixel, overwrite=force)
    for w in (*locs.meta.warnings, *warnings):
        o.warn(f"{src}: {w}")
    o.record(
        {
            "input": str(src),
            "output": str(dst),
            "format": locs.meta.source_format,
            "n_localizations": locs.n,
            "warnings": [*locs.meta.warnings, *warnings],
        },
        escape(
            f"{src} -> {dst} ({locs.n:,} localizations, "
            f"{FORMATS[locs.meta.source_format].title})"
        ),
    )
