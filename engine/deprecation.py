"""Old import paths of moved modules: one warning, one shape (see CHANGELOG.md)."""

from __future__ import annotations

import warnings

__all__ = ["REMOVED_IN", "warn_moved"]

#: The release in which the deprecated aliases go.
REMOVED_IN = "0.3.0"


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
