"""SCENMED: cell states from widefield DAPI images of nuclei (Radhakrishnan et al., Sci. Rep. 7,
17946, 2017), on the engine's contracts.

Fields are read with their pixel size (:func:`read_field`), segmented as the paper does
(:func:`segment_field`, :func:`segment_files`: a QC row for every object), cut into centred
crops and patches (:func:`extract_patches`), measured (:func:`nucleus_features`, the
heterochromatin/euchromatin ratio :func:`hc_ec_ratio`), and called by an exported model on the
engine's backends (:class:`WidefieldClassifier`). The training side is
:mod:`ainu_engine.training.scenmed`; the specification is
``methods/scenmed_and_nucleus_prediction.md``.
"""

from ._classify import WidefieldCall, WidefieldClassifier
from ._features import FAMILIES, LAYOUTS, feature_names, nucleus_features
from ._hcec import HC_RULE, compare_ratios, hc_ec_ratio, nucleus_mask, plot_hc_ec
from ._io import Field, pixel_um_of, read_field, read_fields, read_scenmed_h5
from ._nuclei import (
    SCENMED_PIXEL_UM,
    NucleusTable,
    features_of,
    read_manifest,
    read_segmentation,
    segment_files,
    to_scenmed_pixel,
    write_segmentation,
)
from ._patches import extract_patches, patch_offsets
from ._report import thumbnail_png, write_report
from ._screen import RESULT_COLUMNS, expand_fields, screen_fields
from ._segment import (
    DROP_REASONS,
    Segmentation,
    SegmentConfig,
    crop_centred,
    match_instances,
    segment_field,
)

__all__ = [
    "DROP_REASONS",
    "FAMILIES",
    "HC_RULE",
    "LAYOUTS",
    "SCENMED_PIXEL_UM",
    "Field",
    "NucleusTable",
    "RESULT_COLUMNS",
    "SegmentConfig",
    "Segmentation",
    "WidefieldCall",
    "WidefieldClassifier",
    "compare_ratios",
    "crop_centred",
    "expand_fields",
    "extract_patches",
    "feature_names",
    "features_of",
    "hc_ec_ratio",
    "match_instances",
    "nucleus_features",
    "nucleus_mask",
    "patch_offsets",
    "pixel_um_of",
    "plot_hc_ec",
    "read_field",
    "read_fields",
    "read_manifest",
    "read_scenmed_h5",
    "read_segmentation",
    "segment_field",
    "screen_fields",
    "segment_files",
    "thumbnail_png",
    "to_scenmed_pixel",
    "write_report",
    "write_segmentation",
]
