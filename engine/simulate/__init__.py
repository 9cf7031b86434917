"""The simulators, with ground truth: SMLM nuclei, widefield DAPI fields, actin cells.

No torch: every part of the engine (tests, demos, benchmarks) uses them.

- SMLM localizations of nuclei in the AINU cell states (:func:`simulate_nucleus`,
  :func:`simulate_dataset`; ``docs/simulation.md``);
- widefield DAPI fields for SCENMED (:func:`simulate_field`, :func:`simulate_widefield`);
- actin + nucleus tiles for nucleus prediction (:func:`simulate_tile`, :func:`simulate_tiles`).

Every simulator takes a seed; the same seed gives the same files on the same machine
(:func:`seeded_rng`).
"""

from ._actin import ActinConfig, SimulatedTile, simulate_tile, simulate_tiles
from ._common import seeded_rng, write_table
from ._smlm import (
    CELL_STATES,
    CHANNELS,
    OUTPUT_FORMATS,
    STRUCTURES,
    CellState,
    Observation,
    SimulatedNucleus,
    effective_state,
    simulate_dataset,
    simulate_nucleus,
)
from ._widefield import PIXEL_UM as WIDEFIELD_PIXEL_UM
from ._widefield import (
    WIDEFIELD_CLASSES,
    NucleusClass,
    SimulatedField,
    effective_class,
    simulate_field,
    simulate_widefield,
)

__all__ = [
    "CELL_STATES",
    "CHANNELS",
    "OUTPUT_FORMATS",
    "STRUCTURES",
    "WIDEFIELD_CLASSES",
    "WIDEFIELD_PIXEL_UM",
    "ActinConfig",
    "CellState",
    "NucleusClass",
    "Observation",
    "SimulatedField",
    "SimulatedNucleus",
    "SimulatedTile",
    "effective_class",
    "effective_state",
    "seeded_rng",
    "simulate_dataset",
    "simulate_field",
    "simulate_nucleus",
    "simulate_tile",
    "simulate_tiles",
    "simulate_widefield",
    "write_table",
]
