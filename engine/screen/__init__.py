"""Screening: a pipelined read → split → render → batch → infer → write over large batches of
localization files, with resumable results, errors, a summary and a report. The split step
(which nuclei a file holds) is :mod:`ainu_engine.nuclei`."""

from ._pipeline import ScreenSummary, screen

__all__ = ["ScreenSummary", "screen"]
