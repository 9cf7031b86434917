"""Why a nucleus got its call: batched occlusion equal to Captum's on any backend, CAM, overlays,
and attribution against ground-truth structures (nucleoli, periphery)."""

from ._occlusion import Attribution, forward_fn, occlusion

__all__ = ["Attribution", "forward_fn", "occlusion"]
