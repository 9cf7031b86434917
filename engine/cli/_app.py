"""The typer application: global options and the command table."""

from __future__ import annotations

from typing import Annotated

import typer

from ..provenance import __version__
from . import convert, evaluate, explain, export, formats, info, render, screen, simulate, train
from ._errors import debug_enabled

app = typer.Typer(
    name="ainu-engine",
    help="Cell-state calls from single-molecule localization microscopy of nuclei (AINU).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ainu-engine {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help=(
        "Show tracebacks for errors (also AINU_DEBUG=1)."))] = False,
) -> None:
    """ainu-engine: read SMLM localizations, and (as later commands land) render, classify
    and explain nuclei."""
    ctx.obj = {"debug": debug or debug_enabled()}


app.command("info")(info.info)
app.command("convert")(convert.convert)
app.command("formats")(formats.formats)
app.command("simulate")(simulate.simulate)
app.command("render")(render.render)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("export")(export.export)
app.command("screen")(screen.screen)
app.command("explain")(explain.explain)
