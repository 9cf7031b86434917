"""Performance-critical numeric kernels of ainu-engine (pure functions on arrays, no I/O).

Each kernel has a float64 NumPy reference it is tested against. Nothing here imports
the engine. The CPU kernels (Numba, compiled on first call and cached) are imported with this
package; the GPU kernels (``render_kde_cuda``, ``fill_occluded_cuda``,
``accumulate_deltas_cuda``, ``cuda_available``) import numba.cuda only when first used.
"""

from ._kde import axis_weight, kde_reference, kde_reference_fast, render_kde_cpu
from ._link import link_chains, link_chains_reference, next_frame_distances
from ._morphology import h_maxima, reconstruct_by_dilation
from ._occlusion import (
    accumulate_deltas,
    fill_occluded,
    occlusion_reference,
    window_grid,
    window_starts,
)
from ._raster import grid_counts, polygon_mask, polygon_mask_reference
from ._resize import (
    area_matrix,
    area_weights,
    fit_longest,
    pad_to_square,
    resize_area,
    resize_area_reference,
)
from ._stats import nearest_other_distances, repeat_hits, repeat_hits_reference
from ._threads import share_threads

_GPU = {
    "render_kde_cuda": "_kde_cuda",
    "cuda_available": "_kde_cuda",
    "fill_occluded_cuda": "_occlusion_cuda",
    "accumulate_deltas_cuda": "_occlusion_cuda",
}

__all__ = [
    "accumulate_deltas",
    "accumulate_deltas_cuda",
    "area_matrix",
    "area_weights",
    "axis_weight",
    "cuda_available",
    "fill_occluded",
    "fill_occluded_cuda",
    "fit_longest",
    "grid_counts",
    "h_maxima",
    "kde_reference",
    "kde_reference_fast",
    "link_chains",
    "link_chains_reference",
    "nearest_other_distances",
    "next_frame_distances",
    "occlusion_reference",
    "pad_to_square",
    "polygon_mask",
    "polygon_mask_reference",
    "reconstruct_by_dilation",
    "render_kde_cpu",
    "render_kde_cuda",
    "repeat_hits",
    "repeat_hits_reference",
    "resize_area",
    "resize_area_reference",
    "share_threads",
    "window_grid",
    "window_starts",
]


def __getattr__(name: str):
    # the GPU kernels import numba.cuda: load them on first use so the CPU path stays light
    if name in _GPU:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_GPU[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
