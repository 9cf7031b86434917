"""``ainu-engine nucleus ...``: nucleus position predicted from actin (Vasudevan et al. 2022)."""

from __future__ import annotations

from .evaluate import evaluate
from .predict import predict
from .simulate import simulate
from .train import train

COMMANDS = {"simulate": simulate, "train": train, "predict": predict, "evaluate": evaluate}

#: the group's help line (``ainu-engine nucleus --help``)
HELP = "Nucleus position from actin: simulate, train, predict, evaluate."
