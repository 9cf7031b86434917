"""``ainu-engine formats``: the localization formats the engine reads and writes."""

from __future__ import annotations

from rich.table import Table

from ..io import FORMATS
from ._options import JsonOpt
from ._output import Output


def formats(json: JsonOpt = False) -> None:
    """List the supported formats with their extensions, units and frame numbering.

    Example: ainu-engine formats --json
    """
    out = Output(json_lines=json)
    table = Table("name", "format", "extensions", "coordinates", "frames", "write", box=None)
    for f in FORMATS.values():
        rec = {
            "name": f.name,
            "title": f.title,
            "extensions": list(f.extensions),
            "units": f.units,
            "frames": f.frames,
            "writable": f.write is not None,
        }
        out.record(rec, None)
        table.add_row(
            f.name, f.title, " ".join(f.extensions), f.units, f.frames, "yes" if f.write else ""
        )
    if not json:
        import sys

        from rich.console import Console

        console = out.out if out.out.is_terminal else Console(file=sys.stdout, width=160)
        console.print(table)
