"""``read``, ``write``, format detection and the per-file summary behind ``ainu-engine info``."""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .._validate import check_choice, check_pixel_size_nm
from ..errors import AinuError, FormatError, OutputError, PixelSizeError, UnknownFormatError
from . import _arrow, _hdf5, _insight3, _matlab, _minflux, _rapidstorm, _smlm, _text
from ._atomic import atomic_path
from ._common import check_input_path, read_head
from ._localizations import Localizations

_log = logging.getLogger("ainu_engine.io")
__all__ = ["read", "write", "detect_format", "FORMATS", "Format", "ReadOptions", "summarize"]


@dataclass(frozen=True)
class ReadOptions:
    """Options every reader receives (most use only ``camera_pixel_nm``).

    Attributes
    ----------
    camera_pixel_nm : (float, float) or None
        The camera pixel (x, y; nm) of files in camera pixels that do not record it.
    columns : mapping of str to str, optional
        Engine column -> the file's column, for generic tables.
    unit : str, optional
        The unit of unit-less coordinate columns (``px``, ``nm``, ``um``).
    frame_base : int
        The file's first frame number.
    header : bool, optional
        Whether a text table has a header row (None: detect).
    frame_from : str, optional
        A column frames are derived from (e.g. time stamps).
    exposure_s : float, optional
        The exposure, to turn time stamps into frames.
    comment_lines : int
        Lines starting with ``#`` before a text table's header (skipped).
    channel_file : str or None
        A ``.npy`` of each row's channel (:func:`read`'s ``channel_file``).
    """

    camera_pixel_nm: tuple[float, float] | None = None
    columns: Mapping[str, str] | None = None
    unit: str | None = None
    frame_base: int = 0
    header: bool | None = None
    frame_from: str | None = None
    exposure_s: float | None = None
    comment_lines: int = 0
    channel_file: str | None = None


@dataclass(frozen=True)
class Format:
    """One localization file format: its name, what it is, extensions, reader, writer.

    Attributes
    ----------
    name : str
        The format's name (``insight3``, ``thunderstorm``, ...).
    title : str
        What it is, for people.
    extensions : tuple of str
        Its file extensions.
    read : callable
        ``read(path, options) -> Localizations``.
    write : callable or None
        Its writer, where the engine writes it.
    units : str
        The unit of its coordinates (``nm``, ``px``, ``um``, ``m``).
    frames : str
        How it numbers frames (``0-based``, ``1-based``).
    """

    name: str
    title: str
    extensions: tuple[str, ...]
    read: Callable
    write: Callable | None = None
    units: str = "nm"
    frames: str = "0-based"


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format(
            "insight3",
            "Insight3 / N-STORM binary molecule list",
            (".bin",),
            _insight3.read_insight3,
            _insight3.write_insight3,
            units="1-based camera pixels (x_nm = (xc - 1) * pixel)",
            frames="1-based",
        ),
        Format(
            "nstorm_txt",
            "N-STORM / Insight3 text export",
            (".txt",),
            _text.read_nstorm_txt,
            units="nm (Xc, Yc, Zc)",
            frames="1-based",
        ),
        Format(
            "thunderstorm",
            "ThunderSTORM CSV",
            (".csv",),
            _text.read_thunderstorm,
            _text.write_thunderstorm,
            units="nm or px (from the column names)",
            frames="1-based",
        ),
        Format(
            "nanoimager",
            "ONI Nanoimager (NimOS) CSV",
            (".csv",),
            _text.read_nanoimager,
            units="nm",
            frames="0-based",
        ),
        Format(
            "picasso",
            "Picasso HDF5 + YAML",
            (".hdf5", ".h5"),
            _hdf5.read_picasso,
            units="0-based camera pixels (x_nm = x * pixel); z in nm",
            frames="0-based",
        ),
        Format(
            "smlm",
            "SMLM file format (.smlm zip)",
            (".smlm", ".zip"),
            _smlm.read_smlm,
            units="from the manifest (nm when it names none)",
            frames="0-based",
        ),
        Format(
            "rapidstorm",
            "rapidSTORM text",
            (".txt",),
            _rapidstorm.read_rapidstorm,
            units="from the XML header (nanometer)",
            frames="0-based",
        ),
        Format(
            "elyra",
            "Zeiss Elyra (ZEN) table",
            (".txt",),
            _text.read_elyra,
            units="nm",
            frames="1-based (First Frame)",
        ),
        Format(
            "decode",
            "DECODE HDF5 emitter set",
            (".h5", ".hdf5"),
            _hdf5.read_decode,
            units="px per meta.px_size (x, y); z in nm",
            frames="0-based",
        ),
        Format(
            "smap",
            "SMAP _sml.mat (MATLAB 7.3)",
            (".mat",),
            _hdf5.read_smap,
            units="nm (xnm, ynm, znm)",
            frames="1-based",
        ),
        Format(
            "mat73",
            "MATLAB v7.3 struct with a position matrix (MINFLUX conversions)",
            (".mat",),
            _hdf5.read_mat73,
            units="nm (metres converted, with a warning)",
            frames="from a time field (--frame-from t)",
        ),
        Format(
            "minflux_npy",
            "Abberior Imspector MINFLUX .npy",
            (".npy",),
            _minflux.read_minflux_npy,
            units="metres, converted to nm (last iteration)",
            frames="from tim (--frame-from tim --exposure-s)",
        ),
        Format(
            "zip",
            "a .zip holding exactly one localization file",
            (".zip",),
            lambda path, head, opts: _read_zip(path, head, opts),  # defined below
            units="the member's",
            frames="the member's",
        ),
        Format(
            "mat5",
            "MATLAB v5 MAT-file (variables or struct fields x, y, ...)",
            (".mat",),
            _matlab.read_mat5,
            units="from the field names, else nm (warned) or --unit",
            frames="0-based unless frame_base=1; or from a time field (--frame-from)",
        ),
        Format(
            "csv",
            "generic CSV/TSV with a header",
            (".csv", ".tsv", ".txt"),
            _text.read_generic_csv,
            units="from the column names, else nm (warned) or --unit",
            frames="0-based unless frame_base=1",
        ),
        Format(
            "parquet", "Parquet", (".parquet", ".pq"), _arrow.read_parquet, _arrow.write_parquet
        ),
        Format(
            "arrow",
            "Arrow IPC (Feather v2)",
            (".arrow", ".feather", ".ipc", ".arrows"),
            _arrow.read_arrow,
            _arrow.write_arrow,
        ),
    ]
}

#: Which format ``write`` picks from an output's extension.
WRITE_EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".csv": "thunderstorm",
    ".bin": "insight3",
}


def _format_by_name(name: str) -> Format:
    if name in FORMATS:
        return FORMATS[name]
    close = difflib.get_close_matches(name, list(FORMATS), n=3)
    raise UnknownFormatError(
        f"unknown format {name!r}",
        expected=f"one of {', '.join(FORMATS)}",
        hint=f"did you mean {' or '.join(close)}?" if close else None,
    )


def _hdf5_format(p: Path, head: bytes) -> str:
    """Which HDF5 layout (Picasso, DECODE, SMAP v7.3) a file has, or a clear error."""
    kind = _hdf5.hdf5_kind(p)
    if kind is None:
        mat = head.startswith(b"MATLAB 7.3")
        raise UnknownFormatError(
            "MATLAB v7.3 (HDF5) file without SMAP's saveloc.loc"
            if mat
            else "HDF5 file with no known localization layout",
            path=p,
            expected="Picasso /locs, DECODE /data/xyz or SMAP saveloc.loc",
            hint=f"supported MATLAB files: {_matlab.VERSIONS}; save it with -v7, or convert "
            "it to CSV or Parquet"
            if mat
            else "convert it to CSV or Parquet, or name its format with --format",
        )
    return kind


def _container_format(p: Path, head: bytes) -> str | None:
    """The format of an HDF5 file, a zip archive or a NumPy .npy (None: none of them)."""
    if _hdf5.is_hdf5(head):
        return _hdf5_format(p, head)
    if head.startswith(b"PK\x03\x04"):
        if _smlm.is_smlm_zip(p, head):
            return "smlm"
        members = _zip_members(p)
        if len(members) == 1:
            return "zip"
        raise UnknownFormatError(
            "zip archive that is neither an SMLM file (no manifest.json) nor one file",
            path=p,
            found=f"{len(members)} files: {', '.join(members[:6])}",
            hint="unpack it and read the files one by one",
        )
    if head.startswith(_minflux.NPY_MAGIC):
        if _minflux.is_minflux_npy(p):
            return "minflux_npy"
        raise UnknownFormatError(
            "a NumPy .npy file that is not an Abberior MINFLUX export",
            path=p,
            hint="a pyMINFLUX colour assignment (.npy) goes with its table: "
            "--channel-file FILE.npy (channel_file= in Python)",
        )
    return None


def detect_format(path: str | os.PathLike, head: bytes | None = None) -> str:
    """Name of the format of the file at ``path``, from its content (not its extension).

    Raises :class:`~ainu_engine.errors.UnknownFormatError` when no known format matches.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    head : bytes, optional
        Its first bytes, when already read.

    Returns
    -------
    str
        A name of :data:`FORMATS`.
    """
    p = Path(path)
    if head is None:
        head = read_head(check_input_path(p))
    if head.startswith(_insight3.MAGIC):
        return "insight3"
    if _arrow.is_parquet(head):
        return "parquet"
    if _arrow.is_arrow_ipc(head):
        return "arrow"
    container = _container_format(p, head)
    if container is not None:
        return container
    if _rapidstorm.is_rapidstorm(head):
        return "rapidstorm"
    if _matlab.is_mat5(head):
        return "mat5"
    if _text.headerless_fields(head) is not None:
        return "csv"  # the first line is all numbers: a table without a header
    parsed = _text.header_fields(head)
    if parsed is not None:
        fields = parsed[0]
        for name, check in (
            ("nstorm_txt", _text.is_nstorm_txt),
            ("elyra", _text.is_elyra),
            ("nanoimager", _text.is_nanoimager),
            ("thunderstorm", _text.is_thunderstorm),
            ("csv", _text.is_generic_table),
        ):
            if check(fields):
                return name
        raise UnknownFormatError(
            "text table without recognisable x/y columns",
            path=p,
            where="line 1",
            found=f"columns {fields[:12]}",
            hint="name them with --columns x=NAME,y=NAME (columns= in Python)",
        )
    if p.suffix.lower() == ".mat":  # MATLAB v4 (no text header), or not MATLAB at all
        raise UnknownFormatError(
            "not a MATLAB file ainu-engine reads",
            path=p,
            found=f"first bytes {head[:8]!r}",
            hint=f"supported MATLAB files: {_matlab.VERSIONS}; save it with -v7",
        )
    raise UnknownFormatError(
        "not a localization format ainu-engine recognises",
        path=p,
        found=f"first bytes {head[:8]!r}",
        hint=f"supported: {', '.join(FORMATS)}; name one with --format",
    )


def _with_channel_file(locs: Localizations, path: Path, channel_file: Path) -> Localizations:
    """``locs`` with each row's channel from a ``.npy`` beside the table."""
    import numpy as np

    from ..errors import InputError

    try:
        a = np.load(check_input_path(channel_file), allow_pickle=False)
    except AinuError:
        raise
    except Exception as err:  # noqa: BLE001 - numpy's errors on a bad .npy vary
        raise InputError(f"cannot be read as a .npy array: {err}", path=channel_file) from err
    if a.ndim != 1 or a.dtype.kind not in "iub" and not (
        a.dtype.kind == "f" and np.all(np.rint(a) == a)
    ):
        raise InputError("a channel file holds one whole number per row", path=channel_file,
                         found=f"an array {a.dtype} of shape {a.shape}")  # fmt: skip
    if len(a) != locs.n or any("dropped" in w for w in locs.meta.warnings):
        raise InputError(
            f"{len(a)} channels for a table of {locs.n} rows", path=channel_file,
            hint=f"the channel file must be the assignment of {path.name}, row for row",
        )  # fmt: skip
    locs.channel = a.astype(np.int32)
    names = {int(c): str(int(c)) for c in np.unique(a)}
    locs.meta = replace(locs.meta, channel_names=names, warnings=tuple(locs.meta.warnings) + (
        f"channels from {channel_file.name}",))  # fmt: skip
    return locs


def _zip_members(p: Path) -> list[str]:
    """The files in a zip archive (no folders, no macOS resource forks)."""
    import zipfile

    with zipfile.ZipFile(p) as z:
        return [i.filename for i in z.infolist()
                if not i.is_dir() and not i.filename.startswith("__MACOSX/")
                and not Path(i.filename).name.startswith("._")]  # fmt: skip


#: the largest member a .zip may unpack to (a zip bomb is refused, not unpacked)
MAX_ZIP_MEMBER_BYTES = 8 * 2**30


def _read_zip(path: Path, head: bytes, opts) -> Localizations:
    """A .zip holding exactly one localization file (pyMINFLUX ships its data so): the member
    unpacked to a temporary folder and read as :func:`read` reads a file."""
    import shutil
    import tempfile
    import zipfile

    members = _zip_members(path)
    if len(members) != 1:
        raise FormatError(f"zip archive holds {len(members)} files, not one", path=path,
                          found=", ".join(members[:6]))  # fmt: skip
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(members[0])
        if info.file_size > MAX_ZIP_MEMBER_BYTES:
            raise FormatError(f"zip member {members[0]} unpacks to {info.file_size} bytes",
                              path=path, expected=f"at most {MAX_ZIP_MEMBER_BYTES}")  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="ainu-zip-") as tmp:
            out = Path(tmp) / Path(members[0]).name
            with z.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            try:
                locs = read(out, camera_pixel_nm=opts.camera_pixel_nm, columns=opts.columns,
                            unit=opts.unit, frame_base=opts.frame_base, header=opts.header,
                            frame_from=opts.frame_from, exposure_s=opts.exposure_s)  # fmt: skip
            except AinuError as err:
                raise type(err)(f"{members[0]} in the zip: {err.problem}", path=path,
                                where=err.where, expected=err.expected, found=err.found,
                                hint=err.hint) from err  # fmt: skip
    locs.meta = replace(locs.meta, source_path=str(path),
                        warnings=(f"read {members[0]} from the zip",) + tuple(locs.meta.warnings))
    return locs


def _detect(p: Path, head: bytes, columns, warnings: list[str]) -> Format:
    """The format of a file by its content (a warning when its extension says otherwise)."""
    try:
        name = detect_format(p, head)
    except (AinuError, MemoryError) as err:
        if not isinstance(err, UnknownFormatError) or not (
            columns and _text.header_fields(head) is not None
        ):
            raise
        name = "csv"  # a text table whose columns the user named
    except Exception as err:  # noqa: BLE001 - detection must not crash on a malformed file
        _log.debug("detecting the format of %s", p, exc_info=err)
        raise UnknownFormatError(
            f"the format cannot be detected ({type(err).__name__}: {str(err)[:100]})", path=p
        ) from err
    ext = p.suffix.lower()
    fmt = FORMATS[name]
    known = {e for f in FORMATS.values() for e in f.extensions}
    if ext in known and ext not in fmt.extensions:
        warnings.append(
            f"the extension {ext} does not fit the content, which is {fmt.title}; read as {name}"
        )
    return fmt


def read(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    camera_pixel_nm: float | tuple[float, float] | None = None,
    columns: Mapping[str, str] | None = None,
    unit: str | None = None,
    frame_base: int = 0,
    header: bool | None = None,
    frame_from: str | None = None,
    exposure_s: float | None = None,
    keep_extra: bool = True,
    channel_file: str | os.PathLike | None = None,
) -> Localizations:
    """Read a localization file into :class:`Localizations` (coordinates in nm).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    format : str, default "auto"
        A name from :data:`FORMATS`, or ``"auto"`` to detect it from the content. A file
        whose extension suggests another format is read as what its content is, with a
        warning.
    camera_pixel_nm : float or (float, float), optional
        Camera pixel size in nm, used only for files in pixel units that do not record
        their own (the file's metadata wins, with a warning when the two differ). A file
        in pixels with no known size is an error, never a guess.
    columns : mapping, optional
        For generic tables (csv, foreign Parquet/Arrow, MATLAB v5): ``{"x": "X_pos", "y": ...}``;
        roles are x, y, z, frame, channel, photons, precision. In a table without a header the
        columns are numbers counted from 1: ``{"x": "3", "y": "4"}``.
    unit : {"nm", "px", "um", "µm", "m"}, optional
        For generic tables: the unit of coordinate columns whose names carry none.
    frame_base : {0, 1}, default 0
        For generic tables: the number of the first frame in the file.
    header : bool, optional
        For generic text tables: whether the first line names the columns (default: it does
        unless it is all numbers, so no row is ever taken for a header).
    frame_from : str, optional
        For generic tables and MATLAB v5: a time column in seconds to derive frames from,
        frame = round(t / ``exposure_s``) (without it, a column ``t`` of times is kept as an extra
        column and the frames are unknown).
    exposure_s : float, optional
        Seconds per frame, for ``frame_from``.
    keep_extra : bool, default True
        Keep the columns that have no engine meaning (False saves memory when screening).
    channel_file : path, optional
        A ``.npy`` of one whole number per row of the table: each localization's channel (the
        colour assignment pyMINFLUX saves beside a two-colour table). The table must keep every
        row (none dropped as NaN) for the two to line up.

    Returns
    -------
    Localizations

    Raises
    ------
    ainu_engine.errors.AinuError
        For any problem with the file: missing, a directory, empty, unknown or wrong
        format, truncated, non-numeric values, missing columns, unknown pixel size. The
        message names the file and, where it can, the line or record.

    Notes
    -----
    Rows with NaN or infinite x/y/z (or frame, channel) are dropped and counted in
    ``locs.meta.warnings``. Frames become 0-based (``locs.meta.frame_offset`` says what
    was subtracted). See ``docs/formats.md`` for each format's conventions.

    Examples
    --------
    >>> from ainu_engine.io import read
    >>> locs = read("examples/data/nucleus_thunderstorm.csv")
    >>> locs.meta.source_format, locs.n > 0
    ('thunderstorm', True)
    """
    p = check_input_path(path)
    try:
        px = check_pixel_size_nm(camera_pixel_nm)
    except (ValueError, TypeError) as err:
        raise PixelSizeError(str(err), path=p) from err
    unit = {"µm": "um", "μm": "um"}.get(unit, unit)
    check_choice(unit, (None, "nm", "px", "um", "m"), name="unit")
    check_choice(frame_base, (0, 1), name="frame_base")
    if exposure_s is not None and not (math.isfinite(exposure_s) and exposure_s > 0):
        raise ValueError(f"exposure_s must be a positive number of seconds, got {exposure_s!r}")
    opts = ReadOptions(
        camera_pixel_nm=px,
        columns=columns,
        unit=unit,
        frame_base=frame_base,
        header=header,
        frame_from=frame_from,
        exposure_s=exposure_s,
    )
    if header is False and format == "auto":
        format = "csv"  # only generic tables go without a header
    head = read_head(p)
    warnings: list[str] = []
    n_comments, rest = _text.comment_lines(head)
    # a text table after '#' comment lines (rapidSTORM's XML header is a '#' line of its own)
    if n_comments and b"\x00" not in head[:512] and not _rapidstorm.is_rapidstorm(head):
        head = rest
        opts = replace(opts, comment_lines=n_comments)
        warnings.append(f"skipped {n_comments} comment line(s) starting with '#' before the "
                        "header")  # fmt: skip
    if format == "auto":
        fmt = _detect(p, head, columns, warnings)
    else:
        fmt = _format_by_name(format)
    try:
        locs = fmt.read(p, head, opts)
    except FormatError as err:
        if format != "auto":
            try:
                actual = detect_format(p, head)
            except Exception:  # noqa: BLE001 - only a hint: the reader's own error stands
                actual = None
            if actual and actual != fmt.name:
                err.hint = (
                    err.hint + "; " if err.hint else ""
                ) + f"the content looks like {FORMATS[actual].title} (--format {actual})"
                raise type(err)(
                    err.problem,
                    path=err.path,
                    where=err.where,
                    expected=err.expected,
                    found=err.found,
                    hint=err.hint,
                ) from err
        raise
    except (AinuError, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001 - a malformed file fails in many libraries' ways
        # every reader raises AinuError for what it foresees; the rest (csv.Error, zipfile,
        # pyarrow, RecursionError in a nested sidecar...) still gives one line naming the file
        _log.debug("reading %s as %s", p, fmt.name, exc_info=err)
        raise FormatError(
            f"cannot be read as {fmt.title}: {type(err).__name__}: "
            f"{str(err).splitlines()[0][:100] if str(err) else ''}",
            path=p,
        ) from err
    if warnings:
        locs.meta = replace(locs.meta, warnings=tuple(warnings) + tuple(locs.meta.warnings))
    if channel_file is not None:
        locs = _with_channel_file(locs, p, Path(channel_file))
    if not keep_extra:
        locs.extra = {}
    return locs


def write(
    locs: Localizations,
    path: str | os.PathLike,
    *,
    format: str = "auto",
    camera_pixel_nm: float | tuple[float, float] | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Write localizations to Parquet, Arrow IPC, ThunderSTORM CSV or Insight3 .bin.

    The file appears complete or not at all (written beside it, then renamed).

    Parameters
    ----------
    locs : Localizations
    path : str or os.PathLike
        Output file; with ``format="auto"`` its extension picks the format
        (.parquet/.pq, .arrow/.feather/.ipc, .csv -> ThunderSTORM, .bin -> Insight3).
    format : str, default "auto"
        ``parquet``, ``arrow``, ``thunderstorm`` or ``insight3``.
    camera_pixel_nm : float or pair, optional
        For Insight3 (which stores camera pixels): the pixel size; default the one the
        localizations were read with.
    overwrite : bool, default False
        Replace an existing file.

    Returns
    -------
    list of str
        Warnings, e.g. columns the format cannot hold (Insight3 has no photons/precision).

    Examples
    --------
    >>> import tempfile, os
    >>> from ainu_engine.io import read, write
    >>> locs = read("examples/data/nucleus_thunderstorm.csv")
    >>> out = os.path.join(tempfile.mkdtemp(), "nucleus.parquet")
    >>> write(locs, out)
    []
    >>> read(out).n == locs.n
    True
    """
    p = Path(path)
    if format == "auto":
        name = WRITE_EXTENSIONS.get(p.suffix.lower())
        if name is None:
            raise OutputError(
                "cannot tell the output format from the extension",
                path=p,
                expected=f"one of {', '.join(WRITE_EXTENSIONS)}",
                found=repr(p.suffix),
                hint="or pass --to / format=",
            )
    else:
        name = format
    fmt = _format_by_name(name)
    if fmt.write is None:
        writable = [f.name for f in FORMATS.values() if f.write is not None]
        raise OutputError(
            f"ainu-engine cannot write {fmt.title}",
            path=p,
            expected=f"one of {', '.join(writable)}",
        )
    if p.exists() and not overwrite:
        raise OutputError(
            "exists already", path=p, hint="pass --force (overwrite=True) to replace it"
        )
    if p.is_dir():
        raise OutputError("is a directory", path=p)
    try:
        px = check_pixel_size_nm(camera_pixel_nm)
    except (ValueError, TypeError) as err:
        raise PixelSizeError(str(err), path=p) from err
    opts = ReadOptions(camera_pixel_nm=px)
    try:
        with atomic_path(p) as tmp:
            return fmt.write(locs, tmp, opts, final_path=p)
    except OSError as err:
        raise OutputError(f"cannot be written: {err.strerror or err}", path=p) from err


# --------------------------------------------------------------------------------------
# summary for `ainu-engine info`
# --------------------------------------------------------------------------------------


def _num(v) -> float | int:
    """A JSON-friendly number: float32 values in their shortest form."""
    if isinstance(v, np.floating):
        return float(str(v)) if v.dtype == np.float32 else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _range(a: np.ndarray | None):
    if a is None or a.size == 0:
        return None
    return [_num(a.min()), _num(a.max())]


def summarize(locs: Localizations) -> dict:
    """What ``ainu-engine info`` reports about one file, as a JSON-serialisable dict.

    Keys: path, format, n_localizations, channels ({id: count}), channel_names, columns,
    x_range_nm, y_range_nm, z_range_nm, frame_range (0-based), frame_range_in_file (the
    file's own numbering), camera_pixel_nm (a number, or [x, y] when they differ),
    camera_pixel_source, warnings, details.

    Parameters
    ----------
    locs : Localizations
        A file's localizations (with its metadata).

    Returns
    -------
    dict
    """
    m = locs.meta
    px = m.camera_pixel_nm
    frame = _range(locs.frame)
    return {
        "path": m.source_path,
        "format": m.source_format,
        "n_localizations": locs.n,
        "channels": {str(k): v for k, v in locs.channel_counts().items()},
        "channel_names": {str(k): v for k, v in m.channel_names.items()},
        "columns": locs.columns,
        "x_range_nm": _range(locs.x_nm),
        "y_range_nm": _range(locs.y_nm),
        "z_range_nm": _range(locs.z_nm),
        "frame_range": frame,
        "frame_range_in_file": None if frame is None else [f + m.frame_offset for f in frame],
        "camera_pixel_nm": None if px is None else (px[0] if px[0] == px[1] else list(px)),
        "camera_pixel_source": m.camera_pixel_source,
        "warnings": list(m.warnings),
        "details": dict(m.details),
    }
