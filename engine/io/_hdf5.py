"""HDF5-based localization files: Picasso (``/locs`` + YAML sidecar), DECODE emitter sets and
SMAP ``_sml.mat`` (MATLAB 7.3 files are HDF5 with a 512-byte preamble)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FormatError
from ._common import build_localizations, precision_from_xy, resolve_pixel_size
from ._localizations import Localizations

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(head: bytes) -> bool:
    return any(
        head[o : o + 8] == HDF5_SIGNATURE for o in (0, 512, 1024, 2048) if len(head) >= o + 8
    )


def hdf5_kind(path: Path) -> str | None:
    """Which HDF5 localization layout a file has: picasso, decode, smap or None."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if isinstance(f.get("locs"), h5py.Dataset):
                return "picasso"
            if isinstance(f.get("data"), h5py.Group) and "xyz" in f["data"]:
                return "decode"
            if isinstance(f.get("saveloc"), h5py.Group) and "loc" in f["saveloc"]:
                return "smap"
            if _mat73_position_group(f) is not None:
                return "mat73"
    except Exception:  # noqa: BLE001 - a corrupt HDF5 is no known layout; the reader says why
        return None
    return None


def _mat73_position_group(f):
    """The first top-level group (a MATLAB v7.3 struct) holding a position matrix, or None."""
    import h5py

    for name, g in f.items():
        if name.startswith("#") or not isinstance(g, h5py.Group):
            continue
        for field in ("pos", "loc", "xyz"):
            ds = g.get(field)
            if isinstance(ds, h5py.Dataset) and ds.ndim == 2 and (
                ds.shape[0] in (2, 3) or ds.shape[1] in (2, 3)
            ):
                return name
    return None


def read_mat73(path: Path, head: bytes, opts) -> Localizations:
    """A MATLAB v7.3 (HDF5) struct with a position matrix ``pos`` (MINFLUX conversions:
    Ostersehlt et al. 2022): x, y, z from it (nm; metres converted, said in a warning),
    ``id`` → ``trace_id``, ``t`` → ``time_s`` (frames with ``frame_from="t"``), the struct's
    other per-localization fields as columns."""
    import h5py

    from ._minflux import position_struct, position_vectors

    with _open(path, "MATLAB v7.3") as f:
        name = _mat73_position_group(f)
        if name is None:
            raise _layout_error(path, "MATLAB v7.3", "a struct with a position matrix pos", f)
        fields = {k: _read_bounded(ds, path) for k, ds in f[name].items()
                  if isinstance(ds, h5py.Dataset) and ds.dtype.kind in "biuf"}  # fmt: skip
    vectors, warnings = position_vectors(fields, path, name)
    if not vectors:
        raise FormatError(f"MATLAB v7.3 struct {name!r} has no usable position matrix", path=path)
    return position_struct(vectors, path, "mat73", opts, warnings)


#: An HDF5 dataset may declare far more than it stores (chunks never written read as fill
#: values). Past this size, a dataset must store at least 1/MAX_FILL_RATIO of what it declares.
BOUNDED_BYTES, MAX_FILL_RATIO = 64 * 2**20, 50


def _read_bounded(ds, path: Path):
    """``ds[()]``, refused when the dataset declares much more than the file stores (a 20 kB
    file declaring 3e8 rows would allocate gigabytes of fill values), and with the library's
    errors on a corrupt file as FormatError."""
    declared = int(ds.size) * int(ds.dtype.itemsize)
    stored = int(ds.id.get_storage_size())
    if declared > BOUNDED_BYTES and declared > MAX_FILL_RATIO * max(stored, 1):
        raise FormatError(
            f"dataset {ds.name} declares {ds.shape[0] if ds.shape else 0:,} rows "
            f"({declared / 2**30:.1f} GiB) but the file stores {stored:,} bytes of it",
            path=path,
            hint="the file is truncated or was never written completely",
        )
    try:
        return ds[()]
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as err:
        raise FormatError(
            f"dataset {ds.name} cannot be read: {str(err).splitlines()[0][:150]}", path=path
        ) from err


def _open(path: Path, what: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise FormatError(
            f"not a readable {what} file (HDF5 expected)",
            path=path,
            found=str(err).split(";")[0][:80],
        ) from err


def _layout_error(path: Path, what: str, expected: str, f) -> FormatError:
    return FormatError(
        f"not a {what} file",
        path=path,
        expected=expected,
        found=f"HDF5 with top-level keys {sorted(f.keys())[:10]}",
    )


# --------------------------------------------------------------------------------------
# Picasso
# --------------------------------------------------------------------------------------


def _yaml_docs(path: Path) -> list:
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _any(loader, suffix, node):  # Picasso files may carry python/tuple and similar tags
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_scalar(node)

    _Loader.add_multi_constructor("", _any)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [d for d in yaml.load_all(fh, Loader=_Loader) if isinstance(d, dict)]
    except yaml.YAMLError as err:
        raise FormatError(
            "unreadable YAML sidecar", path=path, found=str(err).splitlines()[0][:80]
        ) from err


def picasso_pixel_size(yaml_path: Path):
    """Pixel size (nm) from the last YAML document that records one (Picasso's own rule)."""
    for doc in reversed(_yaml_docs(yaml_path)):
        for key in ("Pixelsize", "Camera.Pixelsize"):
            if doc.get(key) is not None:
                return doc[key]
    return None


def read_picasso(path: Path, head: bytes, opts) -> Localizations:
    """Picasso HDF5: ``/locs`` compound dataset, x/y/lpx/lpy in 0-based camera pixels,
    z in nm, 0-based frames; the pixel size comes from ``NAME.yaml`` beside it."""
    import h5py

    with _open(path, "Picasso HDF5") as f:
        ds = f.get("locs")
        if not isinstance(ds, h5py.Dataset) or ds.dtype.names is None:
            raise _layout_error(path, "Picasso HDF5", "a compound dataset /locs", f)
        locs = _read_bounded(ds, path)
    names = locs.dtype.names
    for col in ("x", "y"):
        if col not in names:
            raise FormatError(
                f"Picasso /locs has no {col!r} field", path=path, found=f"fields {list(names)}"
            )
    yaml_path = path.with_suffix(".yaml")
    file_px = picasso_pixel_size(yaml_path) if yaml_path.is_file() else None
    pixel, src, warnings = resolve_pixel_size(
        path,
        from_file=file_px,
        user=opts.camera_pixel_nm,
        needed=True,
        file_what=f"sidecar {yaml_path.name}",
    )
    if file_px is None and src == "user":
        warnings.append(
            f"no Picasso YAML sidecar ({yaml_path.name}) with a pixel size; used the given one"
        )
    px, py = pixel
    x = locs["x"].astype(np.float64) * px
    y = locs["y"].astype(np.float64) * py
    z = locs["z"].astype(np.float64) if "z" in names else None
    prec = None
    if "lpx" in names or "lpy" in names:
        lpx = locs["lpx"].astype(np.float64) * px if "lpx" in names else None
        lpy = locs["lpy"].astype(np.float64) * py if "lpy" in names else None
        prec = precision_from_xy(lpx, lpy)
    used = {"x", "y", "z", "frame", "photons"}
    extra = {k: locs[k].copy() for k in names if k not in used}
    frame = locs["frame"] if "frame" in names else None
    if frame is not None and frame.dtype.kind == "f":
        f = frame.astype(np.float64)
        whole = np.isfinite(f) & (np.rint(f) == f)
        if not whole.all():
            # SPINNA and other modules write molecules with the mean frame of their
            # localizations: kept as ``frame_mean``, the frame is that rounded
            extra["frame_mean"] = f
            frame = np.rint(f)
            warnings.append(
                f"frame holds {int((~whole).sum())} non-integer values (a mean frame of merged "
                "localizations, as Picasso's SPINNA/RESI write): kept as column frame_mean, "
                "frame = rounded"
            )
    return build_localizations(
        path,
        "picasso",
        x=x,
        y=y,
        z=z,
        frame=frame,
        frame_offset=0,
        photons=locs["photons"] if "photons" in names else None,
        precision=prec,
        extra=extra,
        pixel=pixel,
        pixel_source="sidecar" if src == "file" else src,
        warnings=warnings,
    )


# --------------------------------------------------------------------------------------
# DECODE
# --------------------------------------------------------------------------------------


def _dataset(f, key):
    import h5py

    ds = f.get(key)
    if not isinstance(ds, h5py.Dataset) or ds.shape is None:  # h5py.Empty datasets
        return None
    return _read_bounded(ds, Path(f.file.filename))


def read_decode(path: Path, head: bytes, opts) -> Localizations:
    """DECODE emitter set: ``data/xyz`` (x, y in px when ``meta.xy_unit == 'px'``, z in nm),
    ``data/frame_ix`` (0-based), ``meta`` attribute ``px_size`` = (x, y) nm."""
    import h5py

    with _open(path, "DECODE HDF5") as f:
        if not (isinstance(f.get("data"), h5py.Group) and "xyz" in f["data"]):
            raise _layout_error(path, "DECODE HDF5", "a group /data with dataset xyz", f)
        meta = dict(f["meta"].attrs) if isinstance(f.get("meta"), h5py.Group) else {}
        data = {k: _dataset(f["data"], k) for k in f["data"].keys()}
        version = f["decode"].attrs.get("version") if "decode" in f else None
    xyz = data.pop("xyz")
    if xyz is None or xyz.ndim != 2 or xyz.shape[1] < 2:
        raise FormatError(
            "DECODE data/xyz has an unexpected shape",
            path=path,
            expected="(N, 2) or (N, 3)",
            found=str(None if xyz is None else xyz.shape),
        )
    n = xyz.shape[0]
    unit = meta.get("xy_unit", "px")
    unit = unit.decode() if isinstance(unit, bytes) else str(unit)
    file_px = meta.get("px_size")
    file_px = None if file_px is None else [float(v) for v in np.atleast_1d(file_px)]
    pixel, src, warnings = resolve_pixel_size(
        path,
        from_file=file_px,
        user=opts.camera_pixel_nm,
        needed=unit == "px",
        file_what="meta.px_size",
    )
    if unit not in ("px", "nm"):
        raise FormatError(
            "DECODE meta.xy_unit is neither 'px' nor 'nm'", path=path, found=repr(unit)
        )
    scale = pixel if unit == "px" else (1.0, 1.0)
    x = xyz[:, 0].astype(np.float64) * scale[0]
    y = xyz[:, 1].astype(np.float64) * scale[1]
    z = xyz[:, 2].astype(np.float64) if xyz.shape[1] > 2 else None
    frame = data.pop("frame_ix", None)
    phot = data.pop("phot", None)
    sig = data.pop("xyz_sig", None)
    prec = None
    extra = {}
    if sig is not None and sig.shape[0] == n:
        prec = precision_from_xy(
            sig[:, 0].astype(np.float64) * scale[0], sig[:, 1].astype(np.float64) * scale[1]
        )
        if sig.shape[1] > 2:
            extra["z_sig_nm"] = sig[:, 2].astype(np.float32)
    for k, v in data.items():
        if v is None or v.ndim == 0 or v.shape[0] != n:
            continue
        if v.ndim == 1:
            extra[k] = v
        else:
            for j in range(v.shape[1]):
                extra[f"{k}_{j}"] = v[:, j]
    if n == 0:
        warnings.append("the file holds no localizations (0 emitters)")
    details = {"decode_version": None if version is None else str(version), "xy_unit": unit}
    return build_localizations(
        path,
        "decode",
        x=x,
        y=y,
        z=z,
        frame=frame,
        frame_offset=0,
        photons=phot,
        precision=prec,
        extra=extra,
        pixel=pixel,
        pixel_source=src,
        warnings=warnings,
        details=details,
    )


# --------------------------------------------------------------------------------------
# SMAP
# --------------------------------------------------------------------------------------


def read_smap(path: Path, head: bytes, opts) -> Localizations:
    """SMAP ``_sml.mat`` (MATLAB 7.3): fields of ``saveloc.loc`` (xnm, ynm, znm in nm,
    1-based ``frame``, ``channel``, ``phot``, ``locprecnm``...)."""
    import h5py

    with _open(path, "SMAP _sml.mat") as f:
        loc = f.get("saveloc/loc")
        if not isinstance(loc, h5py.Group):
            raise _layout_error(path, "SMAP _sml.mat", "a struct saveloc.loc", f)
        fields = {}
        for k in loc.keys():
            v = _dataset(loc, k)
            if v is not None and np.issubdtype(v.dtype, np.number):
                fields[k] = np.asarray(v).reshape(-1)
        cam = _dataset(f, "saveloc/file/info/cam_pixelsize_um")
    file_px = None if cam is None else [float(v) * 1000.0 for v in np.ravel(cam)[:2]]
    has_nm = "xnm" in fields and "ynm" in fields
    if not has_nm and not ("xpix" in fields and "ypix" in fields):
        raise FormatError(
            "SMAP saveloc.loc has no xnm/ynm (nor xpix/ypix) fields",
            path=path,
            found=f"fields {sorted(fields)[:20]}",
        )
    pixel, src, warnings = resolve_pixel_size(
        path,
        from_file=file_px,
        user=opts.camera_pixel_nm,
        needed=not has_nm,
        file_what="saveloc.file.info.cam_pixelsize_um",
    )
    n = len(fields["xnm" if has_nm else "xpix"])
    for k, v in fields.items():
        if len(v) != n:
            raise FormatError(
                f"SMAP field {k!r} has {len(v)} values",
                path=path,
                expected=f"{n} like the coordinates",
                found=str(len(v)),
            )
    if has_nm:
        x, y = fields.pop("xnm").astype(np.float64), fields.pop("ynm").astype(np.float64)
    else:
        x = fields.pop("xpix").astype(np.float64) * pixel[0]
        y = fields.pop("ypix").astype(np.float64) * pixel[1]
    z = fields.pop("znm").astype(np.float64) if "znm" in fields else None
    frame = fields.pop("frame", None)
    channel = fields.pop("channel", None)
    phot = fields.pop("phot", None)
    prec = fields.pop("locprecnm", None)
    return build_localizations(
        path,
        "smap",
        x=x,
        y=y,
        z=z,
        frame=frame,
        frame_offset=1,
        channel=channel,
        photons=phot,
        precision=prec,
        extra=fields,
        pixel=pixel,
        pixel_source=src,
        warnings=warnings,
    )
