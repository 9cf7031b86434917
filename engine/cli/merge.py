"""``ainu-engine merge OUT``: one screen's results from the shards that ran it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._options import GalleryOpt, JsonOpt
from ._output import Output


def merge(
    out: Annotated[Path, typer.Argument(help="The --out folder the shards screened into.")],
    csv: Annotated[bool, typer.Option("--csv", help="Also write results.csv.")] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html.")] = True,
    gallery: GalleryOpt = 200,
    json: JsonOpt = False,
) -> None:
    """Join the shards of a screen (`screen ... --shard K/N`, K = 0..N-1) into OUT/results.parquet,
    errors.csv, summary.json and report.html, after checking that all N shards finished with the
    same model and settings, that every nucleus appears exactly once and that every file is done
    or an error. Anything else is an error naming the shards, files or nuclei (exit 1); rerunning
    the shards named completes them.

    Example: ainu-engine merge screen/
    """
    from ..screen import merge as run_merge

    doc = run_merge(out, csv=csv, report=report, gallery=gallery)
    sh = doc["shards"]
    text = (
        f"{doc['nuclei']} nuclei from {doc['files']} files in {sh['n']} shards "
        f"(merged in {sh['merge_seconds']:.1f} s)"
        + (f"; {doc['failed']} failures (errors.csv)" if doc["failed"] else "")
        + "\n  calls: "
        + ", ".join(f"{c} {k}" for c, k in doc["calls"].items())
        + f"\n  results: {doc['results']}"
        + (f"\n  report:  {out / 'report.html'}" if report and doc["nuclei"] else "")
    )
    Output(json_lines=json).record(doc, escape(text))
    raise typer.Exit(1 if doc["failed"] else 0)
