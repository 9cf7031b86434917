"""``ainu-engine nucleus ...``: nucleus position predicted from actin (Vasudevan et al. 2022)."""

from __future__ import annotations

import typer

from .evaluate import evaluate
from .predict import predict
from .simulate import simulate
from .train import train

COMMANDS = {"simulate": simulate, "train": train, "predict": predict, "evaluate": evaluate}


def build(paragraphs) -> typer.Typer:
    """The ``nucleus`` command group (``paragraphs`` turns docstrings into help)."""
    app = typer.Typer(
        help="Nucleus position from actin: simulate, train, predict, evaluate.",
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    for name, fn in COMMANDS.items():
        app.command(name, help=paragraphs(fn.__doc__))(fn)
    return app
