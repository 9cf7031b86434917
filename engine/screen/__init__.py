"""Screening: a pipelined read → split → render → batch → infer → write over large batches of
localization files, with resumable results, errors, a summary and a report. The split step
(which nuclei a file holds) is :mod:`ainu_engine.nuclei`. :func:`watch` screens files as a
localizer finishes writing them into a folder. :func:`merge` joins the shards of a screen run
as several jobs (``screen(..., shard=(k, n))``; SLURM job arrays, several machines)."""

from ._options import LocalExecutor, RayExecutor, ScreenOptions
from ._pipeline import ScreenSummary, screen
from ._report import write_overview
from ._shards import MergeError, merge, parse_shard, shard_of
from ._watch import settled_files, watch

__all__ = [
    "LocalExecutor",
    "RayExecutor",
    "ScreenOptions",
    "ScreenSummary",
    "screen",
    "settled_files",
    "watch",
    "write_overview",
    "merge",
    "MergeError",
    "parse_shard",
    "shard_of",
]
