"""Widefield image inputs (SCENMED): fields → nuclei → crops, patches, HC/EC, features."""

from .classify import WidefieldCall, WidefieldClassifier
from .io import Field, pixel_um_of, read_field, read_fields, read_scenmed_h5
from .segment import DROP_REASONS, Segmentation, SegmentConfig, match_instances, segment_field

__all__ = [
    "WidefieldCall",
    "WidefieldClassifier",
    "DROP_REASONS",
    "Field",
    "SegmentConfig",
    "Segmentation",
    "match_instances",
    "pixel_um_of",
    "read_field",
    "read_fields",
    "read_scenmed_h5",
    "segment_field",
]
