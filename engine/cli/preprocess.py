"""``ainu-engine preprocess INPUT... --out DIR``: filter and link localization tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._options import JsonOpt, reading_options
from ._output import Output


def _range(value: str | None, flag: str) -> tuple[float, float] | None:
    from ..preprocess import range_of

    try:
        return None if value is None else range_of(value)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint=flag) from None


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
    drift: Annotated[
        str | None,
        typer.Option(
            metavar="rcc|FILE",
            help="Correct drift: by RCC, or with a known trace (CSV frame,x_nm,y_nm).",
        ),
    ] = None,
    drift_segment_frames: Annotated[
        int | None, typer.Option("--drift-segment-frames", min=1, help="RCC's segment length.")
    ] = None,
    resolution: Annotated[
        bool, typer.Option("--resolution", help="Estimate NeNA and FRC (in the report).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace outputs that exist.")] = False,
    json: JsonOpt = False,
    reading: dict | None = None,
) -> None:
    """Filter localization tables (precision, photons, PSF width, frames), correct their drift
    (RCC; the trace as OUT/NAME.drift.csv and .png) and link the repeated localizations of one
    emitter into one (Picasso's "link"); writes OUT/NAME.parquet and a report of each step
    (with --resolution: NeNA and FRC). A bad input is reported, the others go on.

    Example: ainu-engine preprocess run1/*.csv --out pre/ --precision-nm 0-30 --drift rcc
    """
    from ..io import read, write
    from ..preprocess import Drift, Preprocess, apply

    try:
        pre = Preprocess(
            precision_nm=_range(precision_nm, "--precision-nm"),
            photons=_range(photons, "--photons"), psf_nm=_range(psf_nm, "--psf-nm"),
            psf_column=psf_column, frames=_range(frames, "--frames"), channel=channel,
            link_nm=link_nm or None, link_dark_frames=link_dark_frames,
            drift="rcc" if drift == "rcc" else None, drift_segment_frames=drift_segment_frames,
            resolution=resolution,
        )  # fmt: skip
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    trace = Drift.read(drift) if drift not in (None, "rcc") else None
    if pre.empty and trace is None:
        raise typer.BadParameter("nothing to do: give a filter, --drift, --link-nm or --resolution")
    out.mkdir(parents=True, exist_ok=True)
    o = Output(json_lines=json)
    with o.progress(len(inputs), "preprocess") as advance:
        for src in inputs:
            try:
                locs = read(src, **(reading or {}))
                try:
                    done, report = apply(locs, pre, drift=trace)
                except ValueError as err:
                    from ..errors import InputError

                    raise InputError(str(err), path=src) from err
                dst = out / (src.stem + ".parquet")
                write(done, dst, overwrite=force)
                d = report.pop("drift_trace")
                if d is not None and d.method == "rcc":
                    report["drift"]["trace"] = str(d.write(out / f"{src.stem}.drift.csv"))
                    d.plot(out / f"{src.stem}.drift.png", title=src.name)
                o.record({"input": str(src), "output": str(dst), **report,
                          "preprocess": pre.to_dict()}, _line(src, dst, report))  # fmt: skip
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                o.failure(err, {"input": str(src)}, debug=ctx.obj["debug"] if ctx.obj else None)
            advance()
    o.finish(len(inputs))


def _line(src, dst, report: dict) -> str:
    """The human report of one file."""
    parts = [f"removed {report['removed'] or 0}"]
    if report["drift"]:
        d = report["drift"]
        parts.append(f"drift {d['method']} {d['span_nm']:.0f} nm over frames "
                     f"{d['frames'][0]}-{d['frames'][1]}")  # fmt: skip
    if report["linked"] is not None:
        parts.append(f"linked into {report['linked']:,}")
    if "resolution" in report:
        r = report["resolution"]
        parts.append(
            "NeNA "
            + ("-" if r["nena_nm"] is None else f"{r['nena_nm']:.1f} nm")
            + ", FRC "
            + ("-" if r["frc_nm"] is None else f"{r['frc_nm']:.0f} nm")
        )
    return (
        f"{src}: {report['in']:,} -> {report['out']:,} localizations ({'; '.join(parts)}) -> {dst}"
    )
