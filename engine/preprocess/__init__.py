"""Preprocessing between a localizer's table and an analysis, as SMLM packages offer it:
filters (localization precision, photons, PSF width, frame range; on every channel or one),
linking the repeated localizations of one blinking emitter into one (Picasso's "link"), drift
correction by redundant cross-correlation (RCC), and resolution estimates (NeNA, FRC).

A model records the preprocessing it was trained with (:class:`Preprocess`, in its metadata);
``screen``, ``live``, ``serve`` and ``explain`` apply that same preprocessing to every table
before its nuclei are rendered (:func:`apply`), as they apply the model's rendering.
"""

from ._drift import Drift, SparseFieldError, correct_drift, estimate_drift
from ._resolution import Resolution, frc, nena
from ._steps import (
    Preprocess,
    apply,
    apply_once,
    filter_localizations,
    link,
    model_filters,
    range_of,
)

__all__ = [
    "Drift",
    "Preprocess",
    "Resolution",
    "SparseFieldError",
    "apply",
    "apply_once",
    "correct_drift",
    "estimate_drift",
    "filter_localizations",
    "frc",
    "link",
    "model_filters",
    "nena",
    "range_of",
]
