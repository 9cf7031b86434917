"""MATLAB v5 MAT-files (``save -v7`` and older; not v7.3, which is HDF5 and read as SMAP).

Localizations are numeric vectors of one length: top-level variables (``x``, ``y``, ...) or the
fields of a struct (SMAP's localization-spread-function data: ``data.x``, ``data.y`` in nm,
``data.t`` in seconds; an ``_sml.mat`` saved as v5: ``saveloc.loc.xnm``...). The struct whose
fields name x and y is found by the same column names as text tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FormatError, MissingColumnError
from ._columns import resolve_roles
from ._localizations import Localizations

#: the 116-byte text header of a v5 MAT-file starts with this
MAT5_MAGIC = b"MATLAB 5.0 MAT-file"
#: structs nested deeper than this are not searched
MAX_DEPTH = 4
VERSIONS = (
    "MATLAB v5 (save -v7 or older: variables or struct fields x, y, ...) and SMAP _sml.mat v7.3"
)


def is_mat5(head: bytes) -> bool:
    return head.startswith(MAT5_MAGIC) and len(head) >= 128 and head[126:128] in (b"IM", b"MI")


# -- a bounded reader of the v5 format ------------------------------------------------------
# (scipy.io.loadmat trusts the sizes a file declares: one flipped bit in a 600-byte file made it
# allocate 256 MiB, and fuzzing crashed it; this reader checks every size against the bytes
# present and reads only numeric arrays and 1 x 1 structs, which is what localizations are.)

#: data element types -> numpy dtype (without byte order)
_MI_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8",
             13: "u8"}  # fmt: skip
MI_MATRIX, MI_COMPRESSED = 14, 15
#: array classes: 6..15 numeric (double, single, int8 ... uint64), 2 struct
_NUMERIC_CLASSES, _STRUCT_CLASS = range(6, 16), 2
#: a compressed element may expand to at most this many times its size (plus 64 MiB)
MAX_EXPANSION = 32


class _Mat5:
    def __init__(self, path: Path, endian: str) -> None:
        self.path, self.e = path, endian

    def fail(self, problem: str) -> FormatError:
        return FormatError(problem, path=self.path, hint=f"supported MATLAB files: {VERSIONS}")

    def u32(self, buf: bytes, pos: int) -> int:
        return int(np.frombuffer(buf, self.e + "u4", 1, pos)[0])

    def elements(self, buf: bytes):
        """(type, payload) of each data element in ``buf``, every size checked."""
        pos = 0
        while pos + 8 <= len(buf):
            tag = self.u32(buf, pos)
            if tag >> 16:  # small element: size and type in one word, data in the next
                size, kind, start, step = tag >> 16, tag & 0xFFFF, pos + 4, 8
                if size > 4:
                    raise self.fail(f"small data element of {size} bytes at byte {pos}")
            else:
                kind, size, start = tag, self.u32(buf, pos + 4), pos + 8
                if size > len(buf) - start:
                    raise self.fail(
                        f"data element at byte {pos} claims {size} bytes; "
                        f"{len(buf) - start} follow (truncated or corrupt)"
                    )
                step = 8 + size + ((-size) % 8 if kind != MI_COMPRESSED else 0)
            yield kind, buf[start : start + size]
            pos += step

    def inflate(self, payload: bytes) -> bytes:
        import zlib

        cap = 64 * 2**20 + MAX_EXPANSION * len(payload)
        z = zlib.decompressobj()
        try:
            out = z.decompress(payload, cap)
        except zlib.error as err:
            raise self.fail(f"compressed variable is corrupt ({err})") from err
        if z.unconsumed_tail:
            raise self.fail(f"compressed variable expands beyond {cap >> 20} MiB")
        return out

    def variable(self, kind: int, payload: bytes, depth: int = 0):
        """(name, value) of a top-level or nested element; value None for what is not numbers
        or a 1 x 1 struct of them."""
        if kind == MI_COMPRESSED:
            if depth:
                raise self.fail("compressed element inside a variable")
            inner = list(self.elements(self.inflate(payload)))
            return self.variable(*inner[0], depth) if inner else ("", None)
        if kind != MI_MATRIX or depth > MAX_DEPTH:
            return "", None
        sub = list(self.elements(payload))
        if len(sub) < 3 or sub[0][0] != 6 or len(sub[0][1]) < 8 or sub[1][0] != 5:
            raise self.fail("array without flags, dimensions and name")
        cls = self.u32(sub[0][1], 0) & 0xFF
        dims = np.frombuffer(sub[1][1], self.e + "i4", len(sub[1][1]) // 4)
        name = bytes(sub[2][1]).decode("latin-1")
        if dims.size == 0 or (dims < 0).any():
            raise self.fail(f"variable {name!r} has dimensions {dims.tolist()}")
        count = int(np.prod(dims.astype(np.float64)))
        if cls in _NUMERIC_CLASSES:
            if len(sub) < 4 or sub[3][0] not in _MI_TYPES:
                raise self.fail(f"numeric variable {name!r} without its data")
            dt = np.dtype(self.e + _MI_TYPES[sub[3][0]])
            if len(sub[3][1]) != count * dt.itemsize:
                raise self.fail(
                    f"variable {name!r} is {'x'.join(map(str, dims.tolist()))} but holds "
                    f"{len(sub[3][1]) // dt.itemsize} values"
                )
            values = np.frombuffer(sub[3][1], dt).astype(np.float64)  # real part
            return name, values.reshape(tuple(dims.tolist()), order="F")
        if cls == _STRUCT_CLASS and count == 1 and len(sub) >= 5:
            width = int(np.frombuffer(sub[3][1], self.e + "i4", 1)[0]) if sub[3][1] else 0
            raw = bytes(sub[4][1])
            if width <= 0 or len(raw) % width or len(sub) - 5 != len(raw) // width:
                raise self.fail(f"struct {name!r} has a corrupt field list")
            names = [raw[i : i + width].split(b"\0", 1)[0].decode("latin-1")
                     for i in range(0, len(raw), width)]  # fmt: skip
            fields = {}
            for field, (k, p) in zip(names, sub[5:], strict=True):
                fields[field] = self.variable(k, p, depth + 1)[1]
            return name, fields
        return name, None  # cells, chars, struct arrays, sparse, objects: not localizations


def load_mat5(path: Path) -> dict:
    """The numeric variables and 1 x 1 structs of a MATLAB v5 file, by name (structs as dicts,
    arrays as float64 in MATLAB's shape)."""
    data = Path(path).read_bytes()
    if len(data) < 128 or not is_mat5(data[:128]):
        raise FormatError("not a MATLAB v5 MAT-file", path=path, hint=f"supported: {VERSIONS}")
    reader = _Mat5(Path(path), "<" if data[126:128] == b"IM" else ">")
    out = {}
    for kind, payload in reader.elements(data[128:]):
        name, value = reader.variable(kind, payload)
        if name and value is not None:
            out[name] = value
    return out


def _vectors(d: dict) -> dict[str, np.ndarray]:
    """The numeric vectors (1-D, or N x 1) of a struct or workspace, by name."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            continue
        a = np.asarray(v)
        if a.dtype.kind in "biuf" and a.ndim <= 2 and (a.ndim < 2 or 1 in a.shape):
            out[str(k)] = a.reshape(-1)
    return out


def _structs(d: dict, prefix: str = "", depth: int = 0):
    """(name, fields) of the workspace and every struct in it, outermost first."""
    yield prefix or "the workspace", d
    if depth >= MAX_DEPTH:
        return
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _structs(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)


def _candidates(d: dict, prefix: str = "", depth: int = 0):
    """(name, vectors) of the workspace and every struct in it, outermost first."""
    yield prefix or "the workspace", _vectors(d)
    if depth >= MAX_DEPTH:
        return
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _candidates(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)


def read_mat5(path: Path, head: bytes, opts) -> Localizations:
    """A MATLAB v5 MAT-file: the first struct (or the workspace) whose numeric vectors name x
    and y (or those ``opts.columns`` names)."""
    import pyarrow as pa

    from ._text import generic_options, localizations_from_table

    if not is_mat5(head):
        raise FormatError(
            "not a MATLAB v5 MAT-file",
            path=path,
            expected=f"the header {MAT5_MAGIC.decode()}",
            found=repr(head[:20]),
            hint=f"supported MATLAB files: {VERSIONS}",
        )
    ws = load_mat5(path)
    seen = []
    for where, vec in _candidates(ws):
        if not vec:
            continue
        seen.append(f"{where}: {', '.join(sorted(vec)[:8])}")
        roles = resolve_roles(list(vec), None, path)
        if opts.columns and all(c in vec for c in opts.columns.values()):
            roles = resolve_roles(list(vec), opts.columns, path)
        if "x" not in roles or "y" not in roles:
            continue
        n, ny = len(vec[roles["x"].column]), len(vec[roles["y"].column])
        if ny != n:
            raise FormatError(
                f"{where}: x and y have different lengths", path=path, found=f"{n} and {ny}"
            )
        cols = {k: v for k, v in vec.items() if len(v) == n}
        table = pa.table({k: np.asarray(v, np.float64) for k, v in cols.items()})
        return localizations_from_table(
            table,
            path,
            "mat5",
            roles={k: r for k, r in roles.items() if r.column in cols},
            **generic_options(opts),
        )
    from ._minflux import position_struct, position_vectors

    for where, fields in _structs(ws):
        vectors, warnings = position_vectors(fields, path, where)
        if vectors:  # a MINFLUX-style struct: a position matrix pos (N x 3 or 3 x N)
            return position_struct(vectors, path, "mat5", opts, warnings)
    raise MissingColumnError(
        "MATLAB v5 file without x and y vectors",
        path=path,
        found="; ".join(seen[:4]) or "no numeric vectors",
        hint="name them with --columns x=NAME,y=NAME (columns= in Python)",
    )
