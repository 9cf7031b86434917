"""Deprecated alias of :mod:`ainu_engine.training.scenmed`, where this module moved in 0.2.0."""

from ainu_engine.deprecation import warn_moved

from .scenmed import *  # noqa: F403
from .scenmed import __all__  # noqa: F401

warn_moved(__name__, "ainu_engine.training.scenmed")
