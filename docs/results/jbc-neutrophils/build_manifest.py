"""The manifest of the JBC neutrophil study (Schmider, Bauer et al., J. Biol. Chem. 2020), built
from the file names in ../shared/data/jbc-neutrophils/ by the rules of its README, never by hand:

- ``mM_CONDITION_PROTEINS[_ACQ].txt``: mouse, condition (``unstim``; ``c5a`` and ``gmc5a`` are
  activated), then each protein (``5lo``, ``cpla``/``cpla2``, ``flap``) with its channel;
- ``641`` and ``651`` are typos for 561; ``488`` is the ``405/488`` channel of the three-colour
  file; ``648``–``650`` after a protein, and a separate trailing ``_647``/``_648``/``_650``, are
  acquisition numbers, not wavelengths: such a protein is in the one channel (561 or 647) that
  no other protein of the file takes.

One row per file (a field of view: the unit of acquisition): ``path`` (relative to the
manifest), ``label`` (``unstim`` / ``activated``), ``condition``, ``group`` (the mouse) and
``channels`` (the file's channel map, e.g. ``5lo=561;cpla2=647``).

Per protein, ``manifest-PROTEIN.csv`` beside ``OUT.csv`` holds the rows that image it (a model of
one protein takes those; a row whose map lacks the protein is an error, never skipped silently).

Usage: ``python docs/results/jbc-neutrophils/build_manifest.py DATA_DIR OUT.csv``
"""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path

PROTEINS = {"5lo": "5lo", "cpla2": "cpla2", "cpla": "cpla2", "flap": "flap"}
#: the number after a protein -> its channel; None: an acquisition number
CHANNEL_OF = {"561": "561", "647": "647", "488": "405/488", "641": "561", "651": "561",
              "648": None, "649": None, "650": None}  # fmt: skip
CONDITIONS = {"unstim": "unstim", "c5a": "activated", "gmc5a": "activated"}
_NAME = re.compile(r"^m(?P<mouse>\d+)_(?P<condition>[a-z0-9]+?)_(?P<rest>.+)\.txt$")
_TOKEN = re.compile(r"^(?P<protein>5lo|cpla2|cpla|flap)(?P<number>\d{3})?$")


def parse_name(name: str) -> dict:
    """Mouse, condition, label and channel map of one file name.

    Parameters
    ----------
    name : str
        A file name of the study.

    Returns
    -------
    dict
        ``group``, ``condition``, ``label``, ``channels`` (protein -> channel name),
        ``acquisition`` (the trailing acquisition number, or None).

    Raises
    ------
    ValueError
        A name the rules do not read.

    Examples
    --------
    >>> parse_name("m2_c5a_5lo561_cpla2_648.txt")["channels"]
    {'5lo': '561', 'cpla2': '647'}
    >>> parse_name("m3_unstim_5lo651_flap649.txt")["channels"]
    {'5lo': '561', 'flap': '647'}
    """
    m = _NAME.match(name)
    if not m or m["condition"] not in CONDITIONS:
        raise ValueError(f"{name}: not mM_CONDITION_PROTEINS.txt with a known condition")
    channels: dict[str, str | None] = {}
    acquisition = None
    for token in m["rest"].split("_"):
        t = _TOKEN.match(token)
        if t:
            number = t["number"]
            if number is not None and number not in CHANNEL_OF:
                raise ValueError(f"{name}: unknown channel or acquisition number {number}")
            channels[PROTEINS[t["protein"]]] = CHANNEL_OF.get(number) if number else None
            if number and CHANNEL_OF[number] is None:
                acquisition = number
        elif token.isdigit() and channels:
            acquisition = token  # cpla2_647: the acquisition of a further field
        else:
            raise ValueError(f"{name}: cannot read {token!r}")
    free = [c for c in ("561", "647") if c not in channels.values()]
    unknown = [p for p, c in channels.items() if c is None]
    if len(unknown) > len(free) or len(unknown) > 1:
        raise ValueError(f"{name}: the channels of {unknown} cannot be told from the name")
    for p in unknown:
        channels[p] = free[0]
    return {
        "group": f"m{m['mouse']}",
        "condition": m["condition"],
        "label": CONDITIONS[m["condition"]],
        "channels": channels,
        "acquisition": acquisition,
    }


def build(
    data_dir: str | os.PathLike, out: str | os.PathLike, *, protein: str | None = None
) -> list[dict]:
    """Write the manifest of every ``m*.txt`` in ``data_dir`` to ``out``.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The study's folder.
    out : str or os.PathLike
        The manifest (paths in it are relative to its folder).
    protein : str, optional
        Only the files that image this protein (``cpla2``, ``5lo``, ``flap``).

    Returns
    -------
    list of dict
        The rows.
    """
    data_dir, out = Path(data_dir), Path(out)
    rows = []
    for f in sorted(data_dir.glob("m*.txt")):
        r = parse_name(f.name)
        if protein is not None and protein not in r["channels"]:
            continue
        rel = os.path.relpath(f.resolve(), out.resolve().parent)
        rows.append({"path": rel, "label": r["label"], "condition": r["condition"],
                     "group": r["group"],
                     "channels": ";".join(f"{p}={c}" for p, c in sorted(r["channels"].items())),
                     "acquisition": r["acquisition"] or ""})  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    print(f"{len(build(sys.argv[1], sys.argv[2]))} rows -> {sys.argv[2]}")
    for p in sorted(set(PROTEINS.values())):
        dest = Path(sys.argv[2]).with_name(f"manifest-{p}.csv")
        print(f"{len(build(sys.argv[1], dest, protein=p))} rows -> {dest}")
