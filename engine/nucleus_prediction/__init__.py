"""Nucleus prediction from actin (Vasudevan et al., PLoS ONE 17(7):e0271056, 2022), on the
engine's contracts: statistics of nucleus positions (:func:`evaluate_positions` and the chance
models), rebuilt from the paper's text. The training side is
:mod:`ainu_engine.training.nucleus_prediction`; the specification is
``methods/scenmed_and_nucleus_prediction.md``.
"""

from ._evaluate import (
    Nucleus,
    bbox_iou,
    chance_circular_cell,
    chance_image,
    evaluate_positions,
    find_nuclei,
    image_metrics,
    log10_binomial_tail,
    match_nuclei,
    paper_numbers,
    proportion,
)

__all__ = [
    "Nucleus",
    "bbox_iou",
    "chance_circular_cell",
    "chance_image",
    "evaluate_positions",
    "find_nuclei",
    "image_metrics",
    "log10_binomial_tail",
    "match_nuclei",
    "paper_numbers",
    "proportion",
]
