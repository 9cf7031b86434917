"""napari plugin (npe2; the ``napari`` extra): a reader for every localization format the
engine reads — points layers in nm, one a channel, and the render as an image layer at its
pixel size — and a widget that classifies a points layer's nucleus with an exported model and
shows the call and the occlusion map. The manifest is ``napari.yaml`` beside this file."""

from ._reader import MAX_POINTS, META_KEY, get_reader, layers_of, read_layers
from ._widget import (
    NucleusCall,
    classify_points,
    make_classify_widget,
    points_to_localizations,
    same_file_points,
)

__all__ = [
    "MAX_POINTS",
    "META_KEY",
    "NucleusCall",
    "classify_points",
    "get_reader",
    "layers_of",
    "make_classify_widget",
    "points_to_localizations",
    "read_layers",
    "same_file_points",
]
