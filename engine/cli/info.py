"""``ainu-engine info FILE...``: what each localization file holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..io import read, summarize
from ._options import ColumnsOpt, FormatOpt, JsonOpt, PixelOpt, UnitOpt, read_kwargs
from ._output import Output


def _fmt_range(r, unit=""):
    return "-" if r is None else f"{r[0]:g} .. {r[1]:g}{unit}"


def _text(s: dict) -> str:
    """Human-readable block for one file (rich markup; data values escaped)."""
    chans = escape(", ".join(f"{k}: {v}" + (f" ({s['channel_names'][k]})" if k in s["channel_names"] else "")
                      for k, v in s["channels"].items()) or "-")
    px = s["camera_pixel_nm"]
    px = "-" if px is None else (f"{px:g} nm" if not isinstance(px, list) else f"{px[0]:g} x {px[1]:g} nm")
    if s["camera_pixel_source"]:
        px += f" (from {s['camera_pixel_source']})"
    frames = _fmt_range(s["frame_range"])
    if s["frame_range"] is not None and s["frame_range"] != s["frame_range_in_file"]:
        frames += f" (in the file: {_fmt_range(s['frame_range_in_file'])})"
    lines = [
        f"[bold]{escape(s['path'])}[/]",
        f"  format            {s['format']}",
        f"  localizations     {s['n_localizations']:,}",
        f"  channels          {chans}",
        f"  x range           {_fmt_range(s['x_range_nm'], ' nm')}",
        f"  y range           {_fmt_range(s['y_range_nm'], ' nm')}",
    ]
    if s["z_range_nm"] is not None:
        lines.append(f"  z range           {_fmt_range(s['z_range_nm'], ' nm')}")
    lines += [
        f"  frames (0-based)  {frames}",
        f"  camera pixel      {px}",
        f"  columns           {escape(', '.join(s['columns']))}",
    ]
    for k, v in s["details"].items():
        lines.append(f"  {escape(k):<17} {escape(str(v))}")
    for w in s["warnings"]:
        lines.append(f"  [yellow]warning[/]           {escape(w)}")
    return "\n".join(lines)


def info(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Localization files (any supported format).")],
    format: FormatOpt = "auto",
    camera_pixel_nm: PixelOpt = None,
    unit: UnitOpt = None,
    columns: ColumnsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Report format, counts, channels, ranges (nm) and frames of each file.

    Files that fail are reported with their error and the others still reported;
    the exit code is 1 if any file failed.
    """
    kwargs = read_kwargs(format, camera_pixel_nm, unit, columns)
    out = Output(json_lines=json)
    with out.progress(len(files), "info") as advance:
        for path in files:
            try:
                s = summarize(read(path, **kwargs))
                s["path"] = str(path)
                out.record(s, _text(s))
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                out.failure(err, {"path": str(path)}, debug=ctx.obj["debug"] if ctx.obj else None)
            advance()
    out.finish(len(files))
