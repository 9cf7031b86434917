"""The typer application: global options and the command table."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from ..provenance import __version__
from . import (
    bench,
    clusters,
    convert,
    doctor,
    evaluate,
    example,
    explain,
    export,
    formats,
    info,
    live,
    merge,
    nucleus,
    preprocess,
    render,
    screen,
    serve,
    simulate,
    train,
    watch,
    widefield,
)
from ._errors import debug_enabled

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

app = typer.Typer(
    name="ainu-engine",
    help="Cell-state calls from single-molecule localization microscopy of nuclei (AINU).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=_CONTEXT,
    # plain help (click's): options one a line, help wrapped to the terminal (the boxed rich
    # tables ran to 150-190 lines at 80 columns)
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ainu-engine {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help=("Show tracebacks for errors (also AINU_DEBUG=1)."))
    ] = False,
) -> None:
    """ainu-engine: read SMLM localizations; simulate, render, train, screen and explain nuclei."""
    ctx.obj = {"debug": debug or debug_enabled()}
    if ctx.obj["debug"]:
        # tracebacks of errors that a batch records and goes past (screen: "internal error in
        # STAGE") go to the ainu_engine loggers at debug level: print them on stderr
        import logging

        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger = logging.getLogger("ainu_engine")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


def paragraphs(doc: str | None) -> str:
    """A docstring as help text: the lines of each paragraph joined (the terminal wraps them),
    paragraphs kept apart by a blank line."""
    text = inspect.cleandoc(doc or "")
    return "\n\n".join(
        " ".join(line.strip() for line in para.splitlines())
        for para in text.split("\n\n")
        if para.strip()
    )


COMMANDS = {
    "info": info.info,
    "convert": convert.convert,
    "preprocess": preprocess.preprocess,
    "formats": formats.formats,
    "simulate": simulate.simulate,
    "render": render.render,
    "train": train.train,
    "evaluate": evaluate.evaluate,
    "export": export.export,
    "screen": screen.screen,
    "explain": explain.explain,
    "clusters": clusters.clusters,
    "live": live.live,
    "serve": serve.serve,
    "watch": watch.watch,
    "merge": merge.merge,
    "doctor": doctor.doctor,
    "example": example.example,
    "bench": bench.bench,
}
for _name, _fn in COMMANDS.items():
    app.command(_name, help=paragraphs(_fn.__doc__))(_fn)

#: Command groups: ``ainu-engine GROUP COMMAND`` (each a module per command).
GROUPS = {"widefield": widefield.COMMANDS, "nucleus": nucleus.COMMANDS}
for _group, _module in (("widefield", widefield), ("nucleus", nucleus)):
    _sub = typer.Typer(
        help=_module.HELP,
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings=_CONTEXT,
    )
    for _name, _fn in _module.COMMANDS.items():
        _sub.command(_name, help=paragraphs(_fn.__doc__))(_fn)
    app.add_typer(_sub, name=_group)
