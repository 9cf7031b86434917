"""``ainu-engine preprocess INPUT... --out DIR``: filter and link localization tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._options import JsonOpt, reading_options
from ._output import Output


def _range(value: str | None, flag: str) -> tuple[float, float] | None:
    if value is None:
        return None
    lo, sep, hi = value.partition("-")
    try:
        if not sep:
            raise ValueError
        return (float(lo) if lo else float("-inf"), float(hi) if hi else float("inf"))
    except ValueError:
        raise typer.BadParameter(f"expected LO-HI (either may be empty), got {value!r}",
                                 param_hint=flag) from None  # fmt: skip


@reading_options
def preprocess(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Localization files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (Parquet files).")],
    precision_nm: Annotated[
        str | None, typer.Option("--precision-nm", metavar="LO-HI", help="Keep this precision.")
    ] = None,
    photons: Annotated[
        str | None, typer.Option(metavar="LO-HI", help="Keep these photon counts.")
    ] = None,
    psf_nm: Annotated[
        str | None, typer.Option("--psf-nm", metavar="LO-HI", help="Keep this PSF width (nm).")
    ] = None,
    psf_column: Annotated[
        str, typer.Option("--psf-column", help="The PSF width column.")
    ] = "sigma [nm]",
    frames: Annotated[
        str | None, typer.Option(metavar="LO-HI", help="Keep these frames (0-based).")
    ] = None,
    channel: Annotated[
        int | None, typer.Option(help="Filter this channel only (the others are kept).")
    ] = None,
    link_nm: Annotated[
        float | None,
        typer.Option("--link-nm", min=0.0, help="Link repeated localizations within R nm."),
    ] = None,
    link_dark_frames: Annotated[
        int, typer.Option("--link-dark-frames", min=0, help="... over at most G dark frames.")
    ] = 1,
    force: Annotated[bool, typer.Option("--force", help="Replace outputs that exist.")] = False,
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Filter localization tables (precision, photons, PSF width, frames) and link the repeated
    localizations of one emitter into one (Picasso's "link"); writes OUT/NAME.parquet and a
    report of what each step removed or merged. A bad input is reported, the others go on.

    Example: ainu-engine preprocess run1/*.csv --out pre/ --precision-nm 0-30 --link-nm 30
    """
    from ..io import read, write
    from ..preprocess import Preprocess, apply

    try:
        pre = Preprocess(
            precision_nm=_range(precision_nm, "--precision-nm"),
            photons=_range(photons, "--photons"), psf_nm=_range(psf_nm, "--psf-nm"),
            psf_column=psf_column, frames=_range(frames, "--frames"), channel=channel,
            link_nm=link_nm or None, link_dark_frames=link_dark_frames,
        )  # fmt: skip
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    if pre.empty:
        raise typer.BadParameter("nothing to do: give a filter or --link-nm")
    out.mkdir(parents=True, exist_ok=True)
    o = Output(json_lines=json)
    with o.progress(len(inputs), "preprocess") as advance:
        for src in inputs:
            try:
                locs = read(src, **(reading or {}))
                try:
                    done, report = apply(locs, pre)
                except ValueError as err:
                    from ..errors import InputError

                    raise InputError(str(err), path=src) from err
                dst = out / (src.stem + ".parquet")
                write(done, dst, overwrite=force)
                o.record({"input": str(src), "output": str(dst), **report,
                          "preprocess": pre.to_dict()},
                         f"{src}: {report['in']:,} -> {report['out']:,} localizations "
                         f"(removed {report['removed'] or 0}; linked into "
                         f"{report['linked'] if report['linked'] is not None else '-'}) "
                         f"-> {dst}")  # fmt: skip
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                o.failure(err, {"input": str(src)}, debug=ctx.obj["debug"] if ctx.obj else None)
            advance()
    o.finish(len(inputs))
