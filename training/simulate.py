"""Deprecated alias of :mod:`ainu_engine.simulate`, where this simulator moved in 0.2.0."""

from ainu_engine.deprecation import warn_moved
from ainu_engine.simulate import *  # noqa: F403
from ainu_engine.simulate import __all__  # noqa: F401

warn_moved(__name__, "ainu_engine.simulate")
