"""Validation of user-supplied parameters, in one place.

``ValueError`` names the parameter and the value it got; ``TypeError`` only for wrong types.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_pixel_size_nm", "check_choice"]

#: Camera pixel sizes outside this range (nm) are not a real camera behind a microscope
#: objective: back-projected pixels run from ~50 nm (high magnification sCMOS) to ~1 µm.
PIXEL_SIZE_RANGE_NM = (1.0, 10_000.0)


def check_pixel_size_nm(value, *, name: str = "camera_pixel_nm") -> tuple[float, float] | None:
    """Return a camera pixel size as an ``(x, y)`` pair in nm, or None.

    Accepts one positive number (square pixels) or a pair. Raises ``ValueError`` naming
    ``name`` for a non-finite, non-positive or absurd size (outside 1 nm – 10 µm).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number or a pair of numbers, got {value!r}")
    if isinstance(value, numbers.Real):
        pair = (float(value), float(value))
    else:
        try:
            items = [float(v) for v in value]
        except TypeError as err:
            raise TypeError(f"{name} must be a number or a pair of numbers, got {value!r}") from err
        if len(items) == 1:
            items = items * 2
        if len(items) != 2:
            raise ValueError(f"{name} must be one number or an (x, y) pair, got {value!r}")
        pair = (items[0], items[1])
    lo, hi = PIXEL_SIZE_RANGE_NM
    for v in pair:
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive number of nanometres, got {value!r}")
        if not lo <= v <= hi:
            raise ValueError(
                f"{name} must lie between {lo:g} and {hi:g} nm (a camera pixel back-projected "
                f"into the sample), got {value!r}"
            )
    return pair


def check_choice(value, choices, *, name: str):
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
