"""Old import paths of moved modules: one warning, one shape (see CHANGELOG.md)."""

from __future__ import annotations

import warnings

__all__ = ["MOVED_MODULES", "REMOVED_IN", "warn_moved"]

#: The release in which the deprecated aliases go.
REMOVED_IN = "0.3.0"

#: The deprecated aliases of moved modules, old path -> new (each re-exports documented names:
#: the API reference and the docstring checks leave them out)
MOVED_MODULES = {
    "ainu_engine.widefield": "ainu_engine.scenmed",
    "ainu_engine.training.simulate": "ainu_engine.simulate",
    "ainu_engine.training.widefield_simulate": "ainu_engine.simulate",
    "ainu_engine.training.actin_simulate": "ainu_engine.simulate",
    "ainu_engine.training.widefield": "ainu_engine.training.scenmed",
    "ainu_engine.training.nucleus": "ainu_engine.training.nucleus_prediction",
}


def warn_moved(old: str, new: str) -> None:
    """Warn that module ``old`` moved to ``new`` (a ``DeprecationWarning`` at the importer).

    Parameters
    ----------
    old, new : str
        The old and the new import path.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_moved("a.b", "a.c")
    >>> str(w[0].message)
    'a.b moved to a.c; the old path goes in 0.3.0'
    """
    warnings.warn(
        f"{old} moved to {new}; the old path goes in {REMOVED_IN}", DeprecationWarning, stacklevel=3
    )
