"""``ainu-engine widefield ...``: SCENMED on widefield DAPI fields (ainu_engine.scenmed)."""

from __future__ import annotations

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

#: the group's help line (``ainu-engine widefield --help``)
HELP = "SCENMED on widefield DAPI fields: simulate, segment, features, train, screen."
