"""Performance-critical numeric kernels of ainu-engine (pure functions on arrays, no I/O).

Each kernel has a float64 NumPy reference it is tested against. Nothing here imports
the engine; GPU kernels import numba.cuda / cupy only when first used.
"""

from ._kde import axis_weight, kde_reference, render_kde_cpu

__all__ = ["axis_weight", "kde_reference", "render_kde_cpu"]
