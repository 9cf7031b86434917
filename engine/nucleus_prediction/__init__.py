"""Nucleus prediction from actin (Vasudevan et al., PLoS ONE 17(7):e0271056, 2022), on the
engine's contracts: an exported generator on any engine backend (:class:`Generator`,
:func:`predict_images`), and the statistics of nucleus positions (:func:`evaluate_positions`,
:func:`evaluate_folders` and the chance models), rebuilt from the paper's text. The training side is
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
from ._folders import evaluate_folders, pair_images, read_image
from ._generate import (
    Generator,
    actin_files,
    from_model_range,
    predict_images,
    read_rgb,
    tiled,
    to_model_range,
)

__all__ = [
    "Generator",
    "Nucleus",
    "actin_files",
    "evaluate_folders",
    "from_model_range",
    "pair_images",
    "predict_images",
    "read_image",
    "read_rgb",
    "tiled",
    "to_model_range",
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
