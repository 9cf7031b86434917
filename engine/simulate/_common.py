"""What the three simulators share: seeded random streams and the tables they write."""

from __future__ import annotations

import csv
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["seeded_rng", "write_table"]


def _key_part(k: str | int) -> int:
    return zlib.crc32(k.encode()) if isinstance(k, str) else int(k)


def seeded_rng(seed: int, *key: str | int, spawn: bool = False) -> np.random.Generator:
    """An independent random stream for ``(seed, *key)``: adding files never changes others.

    Parameters
    ----------
    seed : int
        The run's seed.
    *key : str or int
        What the stream is for (a class name, a file index, ...). Strings enter as their CRC-32.
    spawn : bool
        ``False``: the generator of ``[seed, *key]`` (the widefield and actin simulators).
        ``True``: the child ``SeedSequence(entropy=seed, spawn_key=key)`` (the SMLM simulator).
        Both derivations are kept so every existing seed reproduces its data byte for byte.

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> a = seeded_rng(1, "hiPSC", 0).integers(1 << 30)
    >>> b = seeded_rng(1, "hiPSC", 0).integers(1 << 30)
    >>> bool(a == b), bool(seeded_rng(1, "hiPSC", 1).integers(1 << 30) != a)
    (True, True)
    """
    parts = tuple(_key_part(k) for k in key)
    if spawn:
        return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=parts))
    return np.random.default_rng([seed, *parts])


def write_table(
    path: str | os.PathLike, rows: list[dict], *, fieldnames: Sequence[str] | None = None
) -> None:
    """Write ``rows`` as a CSV table with a header, atomically (complete or not at all).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    rows : list of dict
        One dict a row; the first row's keys are the columns unless ``fieldnames`` says.
    fieldnames : sequence of str, optional
        The columns (needed for an empty table; default ``["path"]`` when there are no rows).
    """
    from ..io import atomic_path

    names = list(fieldnames) if fieldnames is not None else list(rows[0]) if rows else ["path"]
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=names)
        w.writeheader()
        w.writerows(rows)
