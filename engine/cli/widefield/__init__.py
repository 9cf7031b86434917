"""``ainu-engine widefield ...``: SCENMED on widefield DAPI fields (ainu_engine.widefield)."""

from __future__ import annotations

import typer

from .features import features
from .screen import screen
from .segment import segment
from .simulate import simulate
from .train import train

COMMANDS = {
    "simulate": simulate,
    "segment": segment,
    "features": features,
    "train": train,
    "screen": screen,
}


def build(paragraphs) -> typer.Typer:
    """The ``widefield`` command group (``paragraphs`` turns docstrings into help)."""
    app = typer.Typer(
        help="SCENMED on widefield DAPI fields: simulate, segment, features, train, screen.",
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    for name, fn in COMMANDS.items():
        app.command(name, help=paragraphs(fn.__doc__))(fn)
    return app
