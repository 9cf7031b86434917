"""Strict JSON for the files the engine writes: NaN and infinities become ``null``.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which is not JSON: ``jq``,
JavaScript's ``JSON.parse`` and most other readers reject the whole file. A value that could not
be computed (e.g. the share of positive attribution in a map with none) is written as ``null``.
"""

from __future__ import annotations

import json
import math

__all__ = ["dumps", "finite"]


def finite(obj):
    """``obj`` (dicts, lists, tuples, scalars) with every non-finite float replaced by None.

    Parameters
    ----------
    obj : object
        JSON-like data.

    Returns
    -------
    object

    Examples
    --------
    >>> finite({"a": [1.0, float("nan")]})
    {'a': [1.0, None]}
    """
    if isinstance(obj, float):  # numpy.float64 too
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj, **kwargs) -> str:
    """:func:`json.dumps` of :func:`finite` ``(obj)``; never writes NaN or Infinity.

    Parameters
    ----------
    obj : object
        JSON-like data.
    **kwargs
        Keywords of :func:`json.dumps`.

    Returns
    -------
    str
    """
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
