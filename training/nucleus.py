"""Deprecated alias of :mod:`ainu_engine.training.nucleus_prediction` (moved in 0.2.0)."""

from ainu_engine.deprecation import warn_moved

from .nucleus_prediction import *  # noqa: F403
from .nucleus_prediction import __all__  # noqa: F401

warn_moved(__name__, "ainu_engine.training.nucleus_prediction")
