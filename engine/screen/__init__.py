"""Screening: nuclei from files (whole file, cell ids, ImageJ ROI sets, automatic detection),
a pipelined read → render → batch → infer → write over large batches, resumable results."""

from ._nuclei import NUCLEI_MODES, Nucleus, detect_nuclei, find_roi_set, read_rois_nm, split_nuclei
from ._pipeline import ScreenSummary, expand_inputs, screen

__all__ = ["NUCLEI_MODES", "Nucleus", "ScreenSummary", "detect_nuclei", "expand_inputs", "find_roi_set",
           "read_rois_nm", "screen", "split_nuclei"]
