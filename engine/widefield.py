"""Deprecated alias of :mod:`ainu_engine.scenmed` (SCENMED moved there in 0.2.0; the
nucleus-position statistics moved to :mod:`ainu_engine.nucleus_prediction`). The submodules
``ainu_engine.widefield.io``, ``.segment``, ... are gone: import their names from
:mod:`ainu_engine.scenmed` (CHANGELOG.md)."""

from .deprecation import warn_moved
from .scenmed import *  # noqa: F403
from .scenmed import __all__  # noqa: F401

warn_moved(__name__, "ainu_engine.scenmed")
