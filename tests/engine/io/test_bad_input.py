"""Bad input, for every reader: each gives an AinuError whose one-line message names the file
and the problem; rows with NaN/inf coordinates are dropped with a counted warning."""

from __future__ import annotations

import os
import re

import h5py
import numpy as np
import pytest

from ainu_engine.errors import (
    AinuError,
    FormatError,
    InputError,
    MissingColumnError,
    PixelSizeError,
    UnknownFormatError,
)
from ainu_engine.io import FORMATS, read

from . import samples as S

ALL = sorted(S.BUILDERS)


def make(tmp_path, name, **kw):
    builder, filename = S.BUILDERS[name]
    return builder(tmp_path / filename, **kw)


def assert_one_line(err: AinuError, path) -> str:
    msg = str(err)
    assert "\n" not in msg
    assert os.fspath(path) in msg or os.path.basename(os.fspath(path)) in msg
    return msg


# -- the readers' own happy path (so that the failures below fail for the stated reason) --


@pytest.mark.parametrize("name", ALL)
def test_valid_sample_reads(tmp_path, name):
    path = make(tmp_path, name)
    locs = read(path, format=name)
    assert locs.meta.source_format == name
    assert read(path).meta.source_format == name  # detection agrees
    x, y = S.coords(locs.n)
    if name != "rapidstorm_tracks":
        assert locs.n == 5
        np.testing.assert_allclose(np.sort(locs.x_nm), x, rtol=1e-6)
        np.testing.assert_allclose(np.sort(locs.y_nm), y, rtol=1e-6)


# -- empty file -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_empty_file(tmp_path, name):
    path = tmp_path / S.BUILDERS[name][1]
    path.write_bytes(b"")
    with pytest.raises(InputError) as exc:
        read(path, format=name)
    assert "is empty" in assert_one_line(exc.value, path)
    with pytest.raises(InputError, match="is empty"):
        read(path)


# -- header only ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", S.TEXT_FORMATS)
def test_text_header_only(tmp_path, name):
    builder, filename = S.BUILDERS[name]
    path = builder(tmp_path / filename, rows=[])
    with pytest.raises(FormatError) as exc:
        read(path, format=name)
    assert "header but no localization rows" in assert_one_line(exc.value, path)


def test_rapidstorm_tracks_header_only(tmp_path):
    path = S.rapidstorm_tracks(tmp_path / "t.txt", rows=[])
    with pytest.raises(FormatError, match="header but no rows"):
        read(path)


def test_insight3_header_only_claiming_records_is_truncated(tmp_path):
    path = tmp_path / "h.bin"
    path.write_bytes(b"M425" + np.array([1, 6, 10], "<i4").tobytes())
    with pytest.raises(FormatError) as exc:
        read(path, camera_pixel_nm=160)
    msg = assert_one_line(exc.value, path)
    assert "truncated record" in msg and "record 1 of 10" in msg


def test_insight3_header_with_zero_molecules_is_empty(tmp_path):
    path = tmp_path / "h.bin"
    path.write_bytes(b"M425" + np.array([1, 6, 0], "<i4").tobytes())
    locs = read(path, camera_pixel_nm=160)
    assert locs.n == 0 and any("no localizations" in w for w in locs.meta.warnings)


@pytest.mark.parametrize(
    "name,build",
    [
        ("picasso", lambda f: f.create_group("other")),
        ("decode", lambda f: f.create_group("data")),
        ("smap", lambda f: f.create_group("saveloc")),
    ],
)
def test_hdf5_without_the_table(tmp_path, name, build):
    path = tmp_path / S.BUILDERS[name][1]
    with h5py.File(path, "w") as f:
        build(f)
    with pytest.raises(FormatError) as exc:
        read(path, format=name)
    assert f"not a {FORMATS[name].title.split(' (')[0].split(' +')[0]}" in assert_one_line(
        exc.value, path
    ) or "not a" in str(exc.value)
    with pytest.raises(UnknownFormatError, match="no known localization layout"):
        read(path)


def test_smlm_manifest_only(tmp_path):
    import zipfile

    path = S.smlm(tmp_path / "a.smlm")
    with zipfile.ZipFile(path, "w") as zf:  # rewrite: manifest without its table
        zf.writestr("manifest.json", '{"formats": {}, "files": []}')
    with pytest.raises(FormatError, match="manifest lists no table"):
        read(path)


@pytest.mark.parametrize("name", ["parquet", "arrow"])
def test_arrow_formats_zero_rows_is_empty(tmp_path, name):
    from ainu_engine.io import Localizations, write

    path = tmp_path / S.BUILDERS[name][1]
    write(Localizations(np.zeros(0), np.zeros(0)), path)
    assert read(path).n == 0


# -- truncated binary -----------------------------------------------------------------------


def test_insight3_truncated_record(tmp_path):
    path = make(tmp_path, "insight3")
    data = path.read_bytes()
    path.write_bytes(data[: 16 + 72 * 2 + 30])  # 2 full records and part of the third
    with pytest.raises(FormatError) as exc:
        read(path)
    msg = assert_one_line(exc.value, path)
    assert "truncated record" in msg and "record 3 of 5" in msg


@pytest.mark.parametrize("name", ["parquet", "arrow", "picasso", "decode", "smap"])
def test_truncated_binary_container(tmp_path, name):
    path = make(tmp_path, name)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AinuError) as exc:
        read(path, format=name)
    msg = assert_one_line(exc.value, path)
    assert re.search(r"corrupt|truncated|not a readable|cannot be read", msg)


def test_smlm_truncated_table(tmp_path):
    path = S.smlm(tmp_path / "a.smlm", cut=5)
    with pytest.raises(FormatError) as exc:
        read(path)
    assert "truncated table" in assert_one_line(exc.value, path)


# -- wrong magic ----------------------------------------------------------------------------


def test_insight3_wrong_magic(tmp_path):
    path = make(tmp_path, "insight3")
    data = bytearray(path.read_bytes())
    data[:4] = b"M426"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError) as exc:
        read(path, format="insight3")
    msg = assert_one_line(exc.value, path)
    assert "wrong magic" in msg and "'M425'" in msg and "M426" in msg
    with pytest.raises(UnknownFormatError):
        read(path)


@pytest.mark.parametrize("name", ["parquet", "arrow"])
def test_arrow_wrong_magic(tmp_path, name):
    path = make(tmp_path, name)
    data = bytearray(path.read_bytes())
    data[:4] = b"XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="wrong magic"):
        read(path, format=name)


# -- non-numeric field ----------------------------------------------------------------------

NON_NUMERIC = {
    "thunderstorm": ("1,1,1000.0,abc,500,10", "line 2", "'y [nm]'"),
    "nanoimager": ("0,0,1000.0,oops,0,300,5", "line 2", "'Y (nm)'"),
    "elyra": (
        "1\t1\t1\t0\tbad\t2000\t9\t400\t5.3\t0.2\t110.0\t1\t1",
        "line 2",
        "'Position X [nm]'",
    ),
    "nstorm_txt": (
        "647\t1\t2\tx1\t2000\t1\t1\t1\t0\t1\t1\t1\t1\t1\t-1\t1\t0\t0\t1\t1",
        "line 2",
        "'Xc'",
    ),
    "rapidstorm": ("1000 2000 zero 5", "line 2", "'frame'"),
    "csv": ("1000,2000,notaframe,0", "line 2", "'frame'"),
}


@pytest.mark.parametrize("name", sorted(NON_NUMERIC))
def test_non_numeric_field(tmp_path, name):
    row, where, column = NON_NUMERIC[name]
    builder, filename = S.BUILDERS[name]
    path = builder(tmp_path / filename, rows=[row])
    with pytest.raises(FormatError) as exc:
        read(path, format=name)
    msg = assert_one_line(exc.value, path)
    assert where in msg and "non-numeric" in msg and column in msg


def test_non_numeric_on_a_later_line(tmp_path):
    rows = [f"{i},{i},{1000 + i},{2000 + i},1,1" for i in range(1, 8)] + ["9,9,1e3,1e3x,1,1"]
    path = S.thunderstorm(tmp_path / "a.csv", rows=rows)
    with pytest.raises(
        FormatError, match=r"line 9: non-numeric value in column 'y \[nm\]'.*'1e3x'"
    ):
        read(path)


def test_rapidstorm_tracks_non_numeric_and_bad_count(tmp_path):
    path = S.rapidstorm_tracks(tmp_path / "t.txt", rows=["100 200 1 1 99 5 199 q 0"])
    with pytest.raises(FormatError, match="line 2: non-numeric value"):
        read(path)
    path = S.rapidstorm_tracks(tmp_path / "t.txt", rows=["100 200 1 3 99 5 199 5 0"])
    with pytest.raises(FormatError, match="line 2: track row length does not match its count"):
        read(path)


def test_wrong_number_of_fields(tmp_path):
    path = S.generic_csv(tmp_path / "a.csv", rows=["1,2,3,0", "1,2"])
    with pytest.raises(FormatError, match=r"line 3: wrong number of fields; expected 4"):
        read(path)


# -- NaN / inf coordinates: dropped with a counted warning -----------------------------------

NAN_ROWS = {
    "thunderstorm": ["1,1,NaN,2000,1,1", "2,2,1000,inf,1,1", "3,3,1010,2020,1,1"],
    "nanoimager": ["0,0,nan,2000,0,300,5", "0,1,1000,-inf,0,300,5", "0,2,1010,2020,0,300,5"],
    "elyra": [
        "1\t1\t1\t0\tNaN\t2000\t9\t400\t5.3\t0.2\t110.0\t1\t1",
        "2\t1\t1\t0\t1000\tInf\t9\t400\t5.3\t0.2\t110.0\t1\t1",
        "3\t1\t1\t0\t1010\t2020\t9\t400\t5.3\t0.2\t110.0\t1\t1",
    ],
    "rapidstorm": ["nan 2000 0 5", "1000 inf 0 5", "1010 2020 0 5"],
    "csv": ["nan,2000,0,0", "1000,inf,0,0", "1010,2020,0,0"],
}


@pytest.mark.parametrize("name", sorted(NAN_ROWS))
def test_nan_and_inf_rows_dropped_with_count(tmp_path, name):
    builder, filename = S.BUILDERS[name]
    path = builder(tmp_path / filename, rows=NAN_ROWS[name])
    locs = read(path, format=name)
    assert locs.n == 1
    assert locs.x_nm[0] == pytest.approx(1010) and locs.y_nm[0] == pytest.approx(2020)
    assert any("dropped 2 of 3 rows" in w for w in locs.meta.warnings)


def test_nan_rows_in_binary_formats(tmp_path):
    path = S.picasso(tmp_path / "p.hdf5", values={"x": [np.nan, 1, 2, 3, np.inf]})
    locs = read(path)
    assert locs.n == 3 and any("dropped 2 of 5" in w for w in locs.meta.warnings)
    from ainu_engine.io import Localizations, write

    b = tmp_path / "n.bin"
    write(Localizations([np.nan, 1.0, 2.0], [1.0, 2.0, 3.0]), b, camera_pixel_nm=100)
    locs = read(b)
    assert locs.n == 2 and any("dropped 1 of 3" in w for w in locs.meta.warnings)


# -- pixel size -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-5, 0, float("nan"), float("inf"), 1e9, 0.01])
@pytest.mark.parametrize("name", ["insight3", "thunderstorm"])
def test_negative_or_absurd_user_pixel_size(tmp_path, name, value):
    path = make(tmp_path, name)
    with pytest.raises(PixelSizeError) as exc:
        read(path, camera_pixel_nm=value)
    msg = assert_one_line(exc.value, path)
    assert "camera_pixel_nm" in msg


@pytest.mark.parametrize("bad", ["-130", "0", "1e12"])
def test_absurd_pixel_size_in_picasso_yaml(tmp_path, bad):
    path = S.picasso(tmp_path / "p.hdf5", pixel=bad)
    with pytest.raises(PixelSizeError) as exc:
        read(path)
    msg = assert_one_line(exc.value, path)
    assert "invalid camera pixel size" in msg and bad in msg


def test_negative_pixel_size_in_decode_meta(tmp_path):
    path = S.decode(tmp_path / "d.h5", px_size=(-127.0, 117.0))
    with pytest.raises(
        PixelSizeError, match=r"d\.h5: meta\.px_size records an invalid camera pixel size"
    ):
        read(path)


@pytest.mark.parametrize("name", ["insight3", "picasso"])
def test_pixel_units_without_pixel_size(tmp_path, name):
    builder, filename = S.BUILDERS[name]
    path = builder(tmp_path / filename, pixel=None)
    with pytest.raises(PixelSizeError) as exc:
        read(path)
    assert "--camera-pixel-nm" in assert_one_line(exc.value, path)
    assert read(path, camera_pixel_nm=100).n == 5


def test_thunderstorm_in_pixels_needs_pixel_size(tmp_path):
    path = tmp_path / "px.csv"
    path.write_text('"id","frame","x [px]","y [px]"\n1,1,10.5,20.25\n')
    with pytest.raises(PixelSizeError, match="--camera-pixel-nm"):
        read(path)
    locs = read(path, camera_pixel_nm=100)
    assert locs.x_nm[0] == pytest.approx(1050) and locs.y_nm[0] == pytest.approx(2025)
    assert locs.meta.camera_pixel_source == "user"


# -- missing required column ----------------------------------------------------------------

MISSING = {
    "thunderstorm": ('"id","frame","x [nm]","z [nm]"\n1,1,5,6\n', "no y coordinate column"),
    "nanoimager": ("Channel,Frame,X (nm),Z (nm)\n0,1,5,6\n", "no y coordinate column"),
    "csv": ("a,b,frame\n1,2,3\n", None),
}


@pytest.mark.parametrize("name", sorted(MISSING))
def test_missing_required_column(tmp_path, name):
    text, problem = MISSING[name]
    path = tmp_path / S.BUILDERS[name][1]
    path.write_text(text)
    with pytest.raises(MissingColumnError) as exc:
        read(path, format=name)
    msg = assert_one_line(exc.value, path)
    assert "no x coordinate column" in msg or (problem and problem in msg)
    assert "columns" in msg


def test_missing_columns_in_binary_formats(tmp_path):
    p = tmp_path / "p.hdf5"
    with h5py.File(p, "w") as f:
        f["locs"] = np.zeros(3, dtype=[("frame", "<u4"), ("x", "<f4")])
    with pytest.raises(FormatError, match=r"p\.hdf5: Picasso /locs has no 'y' field"):
        read(p, camera_pixel_nm=100)
    s = tmp_path / "s_sml.mat"
    with h5py.File(s, "w") as f:
        f["saveloc/loc/frame"] = np.ones((1, 3))
    with pytest.raises(FormatError, match="has no xnm/ynm"):
        read(s)


def test_user_column_mapping_names_missing_column(tmp_path):
    path = S.generic_csv(tmp_path / "a.csv", header="A,B,frame,channel")
    with pytest.raises(MissingColumnError, match=r"column 'Q' \(given for x\) is not in the file"):
        read(path, columns={"x": "Q", "y": "B"})
    locs = read(path, columns={"x": "A", "y": "B"})
    assert locs.n == 5


# -- misleading extension ---------------------------------------------------------------------


def test_csv_content_under_bin_extension(tmp_path):
    path = S.thunderstorm(tmp_path / "really_csv.bin")
    locs = read(path)  # auto: the content decides, and says so
    assert locs.meta.source_format == "thunderstorm"
    assert any("extension .bin does not fit" in w for w in locs.meta.warnings)
    with pytest.raises(FormatError) as exc:
        read(path, format="insight3")
    msg = assert_one_line(exc.value, path)
    assert "wrong magic" in msg and "looks like ThunderSTORM CSV" in msg


@pytest.mark.parametrize("name", ALL)
def test_other_format_under_explicit_format(tmp_path, name):
    """Each reader refuses a file of another format with a FormatError naming the file."""
    other = "parquet" if name != "parquet" else "thunderstorm"
    builder, filename = S.BUILDERS[other]
    content = builder(tmp_path / filename).read_bytes()
    path = tmp_path / ("x" + os.path.splitext(S.BUILDERS[name][1])[1])
    path.write_bytes(content)
    with pytest.raises(AinuError) as exc:
        read(path, format=name, camera_pixel_nm=100)
    assert_one_line(exc.value, path)


def test_unknown_format_name():
    with pytest.raises(UnknownFormatError, match="did you mean thunderstorm"):
        read(__file__, format="thunderstrom")


def test_unrecognised_content(tmp_path):
    path = tmp_path / "noise.dat"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(UnknownFormatError) as exc:
        read(path)
    assert "not a localization format" in assert_one_line(exc.value, path)


# -- paths ------------------------------------------------------------------------------------


def test_directory_given_as_file(tmp_path):
    with pytest.raises(InputError) as exc:
        read(tmp_path)
    assert "is a directory" in assert_one_line(exc.value, tmp_path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError) as exc:
        read(path)
    assert "no such file" in assert_one_line(exc.value, path)


def test_unreadable_file(tmp_path, monkeypatch):
    path = make(tmp_path, "thunderstorm")
    if os.geteuid() != 0:  # a real permission error where the OS enforces one
        path.chmod(0)
        try:
            with pytest.raises(InputError, match="cannot be read: Permission denied"):
                read(path)
        finally:
            path.chmod(0o644)
    # root reads any file, so also simulate the OS refusing the read
    import builtins

    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(InputError) as exc:
        read(path)
    assert "cannot be read: Permission denied" in assert_one_line(exc.value, path)
