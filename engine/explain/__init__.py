"""Why a nucleus got its call: batched occlusion equal to Captum's on any backend, CAM, overlays,
and attribution against ground-truth structures (nucleoli, periphery) or a nucleus' outline (the
rim along it), with the replacement tests (nucleoli, rim)."""

from ._occlusion import Attribution, IncrementalPlans, forward_fn, occlusion
from ._run import METHODS, default_window, explain_files, explain_prepared
from ._structures import (
    ATTRIBUTION_CMAP,
    outline_masks,
    replace_rim,
    rim_localizations,
    truth_for,
    write_overlay,
)

__all__ = [
    "ATTRIBUTION_CMAP",
    "METHODS",
    "Attribution",
    "IncrementalPlans",
    "default_window",
    "explain_files",
    "explain_prepared",
    "forward_fn",
    "occlusion",
    "outline_masks",
    "replace_rim",
    "rim_localizations",
    "truth_for",
    "write_overlay",
]
