"""Map the column names that localization software writes onto the engine's columns.

Names such as ``x [nm]`` (ThunderSTORM), ``X (nm)`` (ONI), ``Position X [nm]`` (Zeiss),
``x_nm``, ``xnm`` or ``position_x`` all mean the x coordinate; the unit in the name, when
there is one, says how to convert to nm.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError, MissingColumnError
from ._common import norm_name

ROLES = ("x", "y", "z", "frame", "channel", "photons", "precision")

_BASES: dict[str, tuple[str, ...]] = {
    "x": ("x", "xc", "posx", "positionx", "xposition", "xcoord", "xcoordinate", "position0"),
    "y": ("y", "yc", "posy", "positiony", "yposition", "ycoord", "ycoordinate", "position1"),
    "z": ("z", "zc", "posz", "positionz", "zposition", "zcoord", "zcoordinate", "position2"),
    "frame": (
        "frame",
        "frames",
        "framenumber",
        "frameindex",
        "frameix",
        "firstframe",
        "imagenumber",
        "fr",
        "t",
    ),
    "channel": ("channel", "channelid", "ch", "probe"),
    "photons": ("photons", "photon", "nphotons", "numberphotons", "intensity", "phot", "amplitude"),
    "precision": (
        "precision",
        "uncertainty",
        "uncertaintyxy",
        "locprec",
        "locprecision",
        "localizationprecision",
        "lpxy",
    ),
}

_UNITS = {
    "nm": "nm",
    "nanometer": "nm",
    "nanometers": "nm",
    "nanometre": "nm",
    "nanometres": "nm",
    "px": "px",
    "pix": "px",
    "pixel": "px",
    "pixels": "px",
    "camerapixel": "px",
    "um": "um",
    "µm": "um",
    "μm": "um",
    "micron": "um",
    "microns": "um",
    "micrometer": "um",
    "micrometre": "um",
    "m": "m",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "photon": "photon",
    "photons": "photon",
    "adu": "adu",
    "adcount": "adu",
}

_BRACKET = re.compile(r"^(?P<base>.*?)\s*[\[(](?P<unit>[^\])]*)[\])]\s*$")

#: nm per unit for lengths.
LENGTH_FACTORS = {"nm": 1.0, "um": 1000.0, "m": 1e9}


@dataclass(frozen=True)
class ColumnRole:
    """One source column chosen for an engine role, with the unit read from its name."""

    role: str
    column: str
    unit: str | None  # "nm", "px", "um", "m", "photon", "adu" or None (no unit in the name)


def parse_name(name: str) -> tuple[str, str | None]:
    """Split a column name into a normalised base and a unit (or None)."""
    m = _BRACKET.match(name.strip())
    if m:
        base, unit = m.group("base"), norm_name(m.group("unit")).replace("/", "")
        return norm_name(base), _UNITS.get(unit, unit or None)
    base = norm_name(name)
    for suffix, unit in sorted(_UNITS.items(), key=lambda kv: -len(kv[0])):
        if base.endswith(suffix) and base[: -len(suffix)] in _ALL_BASES:
            return base[: -len(suffix)], unit
    return base, None


_ALL_BASES = {b for bases in _BASES.values() for b in bases}
_UNIT_PREFERENCE = {"nm": 0, "um": 1, "m": 1, None: 2, "photon": 2, "adu": 3, "px": 4}


def match_roles(names: Sequence[str]) -> dict[str, ColumnRole]:
    """Choose a source column for each role from a list of column names.

    Where several columns fit one role (``X (nm)`` and ``X (pix)``), nm beats µm beats
    unit-less beats pixels; among equals the first base in the alias list, then the first
    column, wins (so ``Xc``, drift-corrected, is taken only when there is no plain ``X``;
    readers of formats with both choose explicitly).
    """
    found: dict[str, tuple[tuple[int, int, int], ColumnRole]] = {}
    for idx, name in enumerate(names):
        base, unit = parse_name(name)
        for role, bases in _BASES.items():
            if base in bases:
                key = (_UNIT_PREFERENCE.get(unit, 5), bases.index(base), idx)
                if role not in found or key < found[role][0]:
                    found[role] = (key, ColumnRole(role, name, unit))
    return {role: v[1] for role, v in found.items()}


def apply_mapping(
    names: Sequence[str], mapping: Mapping[str, str], path: Path
) -> dict[str, ColumnRole]:
    """Roles from a user's explicit ``{role: column}`` mapping (roles as in :data:`ROLES`,
    or the engine names ``x_nm``, ``precision_nm``...)."""
    out = {}
    for role, column in mapping.items():
        role = {"x_nm": "x", "y_nm": "y", "z_nm": "z", "precision_nm": "precision"}.get(role, role)
        if role not in ROLES:
            raise ValueError(f"columns: unknown role {role!r}; roles are {', '.join(ROLES)}")
        if column not in names:
            raise MissingColumnError(
                f"column {column!r} (given for {role}) is not in the file",
                path=path,
                found=f"columns {list(names)}",
            )
        out[role] = ColumnRole(role, column, parse_name(column)[1])
    return out


def resolve_roles(
    names: Sequence[str], mapping: Mapping[str, str] | None, path: Path
) -> dict[str, ColumnRole]:
    """Roles found by name, overridden by the user's explicit mapping where given."""
    roles = match_roles(names)
    if mapping:
        given = apply_mapping(names, mapping, path)
        taken = {r.column for r in given.values()}
        roles = {k: r for k, r in roles.items() if r.column not in taken} | given
    return roles


def require(roles: Mapping[str, ColumnRole], path: Path, names: Sequence[str], what: str) -> None:
    for role in ("x", "y"):
        if role not in roles:
            raise MissingColumnError(
                f"no {role} coordinate column",
                path=path,
                expected=f"a {what} column such as '{role} [nm]', '{role.upper()} (nm)' or "
                f"'{role}_nm'",
                found=f"columns {list(names)[:20]}",
                hint="name the columns with columns={'x': ..., 'y': ...} "
                "or --columns x=NAME,y=NAME",
            )


def length_nm(
    values: np.ndarray, role: ColumnRole, *, pixel: float | None, path: Path
) -> np.ndarray:
    """Convert a length column to nm according to its unit (pixels need ``pixel``)."""
    if role.unit in (None, "nm"):
        return values
    if role.unit in LENGTH_FACTORS:
        return values * LENGTH_FACTORS[role.unit]
    if role.unit == "px":
        if pixel is None:  # callers resolve the pixel size first; this is a guard
            raise FormatError(
                f"column {role.column!r} is in pixels and no pixel size is known", path=path
            )
        return values * pixel
    raise FormatError(
        f"column {role.column!r} has a unit ainu-engine cannot convert to nm",
        path=path,
        expected="nm, µm, m or px",
        found=repr(role.unit),
    )


def needs_pixels(roles: Mapping[str, ColumnRole]) -> bool:
    return any(r.unit == "px" for k, r in roles.items() if k in ("x", "y", "precision"))
