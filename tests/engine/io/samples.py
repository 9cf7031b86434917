"""Writers of small, valid files in every supported format, for tests.

Each builder writes ``n`` localizations with known nm coordinates (x = 1000 + 10 i,
y = 2000 + 20 i) so that tests can check what a reader reports. Pixel-unit formats use a
100 nm camera pixel.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

PIXEL_NM = 100.0


def coords(n: int):
    i = np.arange(n, dtype=np.float64)
    return 1000.0 + 10.0 * i, 2000.0 + 20.0 * i


def thunderstorm(path: Path, n: int = 5, *, rows: list[str] | None = None) -> Path:
    x, y = coords(n)
    lines = ['"id","frame","x [nm]","y [nm]","intensity [photon]","uncertainty [nm]"']
    lines += (
        rows
        if rows is not None
        else [f"{i + 1},{i + 1},{x[i]},{y[i]},{500 + i},{10 + i}" for i in range(n)]
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def nanoimager(path: Path, n: int = 5, *, rows: list[str] | None = None, new: bool = False) -> Path:
    x, y = coords(n)
    if new:
        header = (
            "Image ID,Drift corrected,Channel,Frame,X (nm),X precision (nm),X (pix),"
            "Y (nm),Y precision (nm),Y (pix),Z (nm),Z precision (nm),Z (pix),Photons,"
            "Background,PSF Sigma X (pix),PSF Sigma Y (pix),Sigma X var,Sigma Y var,p-value"
        )
        body = [
            f"1,1,{i % 2},{i},{x[i]},3,{x[i] / 117},{y[i]},4,{y[i] / 117},0,0,0,{300 + i},"
            f"5,1.2,1.3,0.1,0.1,0.5"
            for i in range(n)
        ]
    else:
        header = "Channel,Frame,X (nm),Y (nm),Z (nm),Photons,Background"
        body = [f"{i % 2},{i},{x[i]},{y[i]},0,{300 + i},5" for i in range(n)]
    path.write_text("\n".join([header] + (rows if rows is not None else body)) + "\n")
    return path


ELYRA_HEADER = (
    "Index\tFirst Frame\tNumber Frames\tFrames Missing\tPosition X [nm]\t"
    "Position Y [nm]\tPrecision [nm]\tNumber Photons\tBackground variance\t"
    "Chi square\tPSF half width [nm]\tChannel\tZ Slice"
)


def elyra(path: Path, n: int = 5, *, rows: list[str] | None = None) -> Path:
    x, y = coords(n)
    body = (
        rows
        if rows is not None
        else [
            f"{i + 1}\t{i + 1}\t1\t0\t{x[i]}\t{y[i]}\t{9 + i}\t{400 + i}\t5.3\t0.2\t110.0\t1\t1"
            for i in range(n)
        ]
    )
    data = "\r\n".join([ELYRA_HEADER] + body) + "\r\n"
    appendix = "\r\r\nVoxelSizeX : 0.1 \xb5m\r\r\nVoxelSizeY : 0.1 \xb5m\r\r\n"
    path.write_bytes(data.encode("latin-1") + b"\x00" + appendix.encode("latin-1"))
    return path


NSTORM_HEADER = (
    "Channel Name\tX\tY\tXc\tYc\tHeight\tArea\tWidth\tPhi\tAx\tBG\tI\tFrame\t"
    "Length\tLink\tValid\tZ\tZc\tPhotons\tLateral Localization Accuracy"
)


def nstorm_txt(path: Path, n: int = 5, *, rows: list[str] | None = None) -> Path:
    x, y = coords(n)
    names = ["647", "488"]
    body = (
        rows
        if rows is not None
        else [
            f"{names[i % 2]}\t{x[i] + 5}\t{y[i] + 5}\t{x[i]}\t{y[i]}\t1000\t5000\t300\t0\t1\t50\t"
            f"4000\t{i + 1}\t1\t-1\t1\t{-100 + i}\t{-100 + i}\t{800 + i}\t{12 + i}"
            for i in range(n)
        ]
    )
    path.write_text("\n".join([NSTORM_HEADER] + body) + "\n")
    return path


RAPID_FIELD = '<field identifier="{id}" syntax="floating point" semantic="s" unit="{unit}" />'


def rapidstorm(path: Path, n: int = 5, *, rows: list[str] | None = None) -> Path:
    x, y = coords(n)
    fields = "".join(
        RAPID_FIELD.format(id=i, unit=u)
        for i, u in [
            ("Position-0-0", "nanometer"),
            ("Position-1-0", "nanometer"),
            ("ImageNumber-0-0", "frame"),
            ("Amplitude-0-0", "A/D count"),
        ]
    )
    header = f'# <localizations insequence="true" repetitions="variable">{fields}</localizations>'
    body = rows if rows is not None else [f"{x[i]} {y[i]} {i} {1000 + i}" for i in range(n)]
    path.write_text("\n".join([header] + body) + "\n")
    return path


def rapidstorm_tracks(path: Path, *, rows: list[str] | None = None) -> Path:
    top = "".join(
        RAPID_FIELD.format(id=i, unit=u)
        for i, u in [
            ("Position-0-0", "nanometer"),
            ("Position-1-0", "nanometer"),
            ("ImageNumber-0-0", "frame"),
        ]
    )
    child = "".join(
        RAPID_FIELD.format(id=i, unit=u)
        for i, u in [
            ("Position-0-0", "nanometer"),
            ("Position-0-0-uncertainty", "nanometer"),
            ("Position-1-0", "nanometer"),
            ("Position-1-0-uncertainty", "nanometer"),
            ("ImageNumber-0-0", "frame"),
        ]
    )
    header = (
        f'# <localizations insequence="true" repetitions="variable">{top}'
        f'<localizations insequence="true" repetitions="variable">{child}</localizations>'
        "</localizations>"
    )
    body = (
        rows
        if rows is not None
        else [
            "100 200 1 2 99 5 199 5 0 101 5 201 5 1",
            "300 400 7 1 300 6 400 8 7",
        ]
    )
    path.write_text("\n".join([header] + body) + "\n")
    return path


def generic_csv(
    path: Path,
    n: int = 5,
    *,
    header: str = "x_nm,y_nm,frame,channel",
    rows: list[str] | None = None,
) -> Path:
    x, y = coords(n)
    body = rows if rows is not None else [f"{x[i]},{y[i]},{i},0" for i in range(n)]
    path.write_text("\n".join([header] + body) + "\n")
    return path


def picasso(
    path: Path,
    n: int = 5,
    *,
    pixel: float | None = PIXEL_NM,
    z: bool = False,
    values: dict | None = None,
) -> Path:
    import h5py

    x, y = coords(n)
    fields = [
        ("frame", "<u4"),
        ("x", "<f4"),
        ("y", "<f4"),
        ("photons", "<f4"),
        ("lpx", "<f4"),
        ("lpy", "<f4"),
    ] + ([("z", "<f4")] if z else [])
    arr = np.zeros(n, dtype=fields)
    arr["frame"] = np.arange(n)
    arr["x"] = x / PIXEL_NM
    arr["y"] = y / PIXEL_NM
    arr["photons"] = 1000
    arr["lpx"] = arr["lpy"] = 0.1
    if z:
        arr["z"] = np.linspace(-200, 200, n)
    for k, v in (values or {}).items():
        arr[k] = v
    with h5py.File(path, "w") as f:
        f.create_dataset("locs", data=arr)
    if pixel is not None:
        path.with_suffix(".yaml").write_text(
            "Camera.Pixelsize: 160\nGenerated by: Picasso simulate\n---\n"
            f"Generated by: Picasso Localize\nPixelsize: {pixel}\n"
        )
    return path


def decode(path: Path, n: int = 5, *, px_size=(PIXEL_NM, PIXEL_NM), xy_unit: str = "px") -> Path:
    import h5py

    x, y = coords(n)
    xyz = (
        np.stack([x / px_size[0], y / px_size[1], np.zeros(n)], axis=1)
        if xy_unit == "px"
        else np.stack([x, y, np.zeros(n)], axis=1)
    )
    with h5py.File(path, "w") as f:
        d = f.create_group("data")
        d["xyz"] = xyz.astype(np.float32)
        d["frame_ix"] = np.arange(n, dtype=np.int64)
        d["phot"] = np.full(n, 700, np.float32)
        d["xyz_sig"] = np.full((n, 3), 0.1, np.float32)
        d["prob"] = np.ones(n, np.float32)
        d.create_dataset("bg_cr", data=h5py.Empty("f4"))
        m = f.create_group("meta")
        m.attrs["px_size"] = np.array(px_size, np.float32)
        m.attrs["xy_unit"] = xy_unit
        f.create_group("decode").attrs["version"] = "0.10.0"
    return path


def smap(path: Path, n: int = 5, *, fields: dict | None = None) -> Path:
    import h5py

    x, y = coords(n)
    cols = {
        "xnm": x,
        "ynm": y,
        "znm": np.zeros(n),
        "frame": np.arange(1, n + 1.0),
        "channel": np.zeros(n),
        "phot": np.full(n, 900.0),
        "locprecnm": np.full(n, 11.0),
    }
    cols.update(fields or {})
    with h5py.File(path, "w") as f:
        g = f.create_group("saveloc/loc")
        for k, v in cols.items():
            g[k] = np.asarray(v, np.float32).reshape(1, -1)
        f["saveloc/file/info/cam_pixelsize_um"] = np.array([[0.104], [0.104]])
    return path


def mat5(path: Path, n: int = 5, *, fields: dict | None = None) -> Path:
    """A MATLAB v5 MAT-file like SMAP's sample data: a struct ``data`` with x, y (nm), t (s)."""
    import scipy.io

    x, y = coords(n)
    data = {"x": x, "y": y, "t": np.arange(n) * 0.05 + 0.1, "frame": np.arange(1, n + 1.0)}
    data.update(fields or {})
    scipy.io.savemat(path, {"data": data}, do_compression=False)
    return path


def smlm(
    path: Path,
    n: int = 5,
    *,
    rows_declared: int | None = None,
    cut: int = 0,
    units=("nm", "nm", ""),
) -> Path:
    x, y = coords(n)
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("frame", "<i4")])
    arr = np.zeros(n, dtype)
    arr["x"], arr["y"], arr["frame"] = x, y, np.arange(n)
    manifest = {
        "format_version": "0.2",
        "formats": {
            "smlm-table(binary)-0": {
                "type": "table",
                "mode": "binary",
                "columns": "3",
                "headers": ["x", "y", "frame"],
                "dtype": ["float32", "float32", "int32"],
                "shape": ["1", "1", "1"],
                "units": list(units),
            }
        },
        "files": [
            {
                "name": "table-0.bin",
                "type": "table",
                "format": "smlm-table(binary)-0",
                "channel": "default",
                "rows": str(rows_declared if rows_declared is not None else n),
            }
        ],
    }
    raw = arr.tobytes()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("table-0.bin", raw[: len(raw) - cut] if cut else raw)
    return path


def insight3(path: Path, n: int = 5, *, pixel: float | None = PIXEL_NM) -> Path:
    from ainu_engine.io import Localizations, write

    x, y = coords(n)
    write(
        Localizations(x, y, frame=np.arange(n), channel=np.zeros(n)),
        path,
        camera_pixel_nm=PIXEL_NM,
        overwrite=True,
    )
    if pixel is None:
        path.with_name(path.name + ".json").unlink()
    return path


def engine_table(path: Path, n: int = 5) -> Path:
    """Parquet or Arrow IPC, as the extension of ``path`` says."""
    from ainu_engine.io import Localizations, write

    x, y = coords(n)
    write(Localizations(x, y, frame=np.arange(n)), path, overwrite=True)
    return path


parquet = arrow = engine_table


#: format name -> (builder, file name) for valid sample files.
BUILDERS = {
    "thunderstorm": (thunderstorm, "locs.csv"),
    "nanoimager": (nanoimager, "locs.csv"),
    "elyra": (elyra, "locs.txt"),
    "nstorm_txt": (nstorm_txt, "locs.txt"),
    "rapidstorm": (rapidstorm, "locs.txt"),
    "csv": (generic_csv, "locs.csv"),
    "picasso": (picasso, "locs.hdf5"),
    "decode": (decode, "locs.h5"),
    "smap": (smap, "locs_sml.mat"),
    "mat5": (mat5, "locs.mat"),
    "smlm": (smlm, "locs.smlm"),
    "insight3": (insight3, "locs.bin"),
    "parquet": (parquet, "locs.parquet"),
    "arrow": (arrow, "locs.arrow"),
}

TEXT_FORMATS = ("thunderstorm", "nanoimager", "elyra", "nstorm_txt", "rapidstorm", "csv")
