"""Reader details on generated files: variants that the real samples do not cover."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.errors import FormatError
from ainu_engine.io import detect_format, read

from . import samples as S


def test_nanoimager_current_export_precision_and_pixel_columns(tmp_path):
    path = S.nanoimager(tmp_path / "n.csv", new=True)
    assert detect_format(path) == "nanoimager"
    locs = read(path)
    x, _ = S.coords(5)
    np.testing.assert_allclose(locs.x_nm, x)  # X (nm) wins over X (pix)
    np.testing.assert_allclose(locs.precision_nm, np.sqrt((9 + 16) / 2))
    assert "X (pix)" in locs.extra and "p-value" in locs.extra
    assert locs.channel_counts() == {0: 3, 1: 2}
    assert locs.meta.camera_pixel_nm is None


def test_nstorm_txt_channels_by_name_and_corrected_coordinates(tmp_path):
    locs = read(S.nstorm_txt(tmp_path / "n.txt"))
    assert locs.meta.channel_names == {0: "488", 1: "647"}
    assert locs.channel.tolist() == [1, 0, 1, 0, 1]
    x, y = S.coords(5)
    np.testing.assert_allclose(locs.x_nm, x)  # Xc, not X (which is +5)
    np.testing.assert_allclose(locs.extra["X"], x + 5)
    assert locs.frame.tolist() == [0, 1, 2, 3, 4] and locs.meta.frame_offset == 1
    np.testing.assert_allclose(locs.precision_nm, 12 + np.arange(5))
    assert locs.z_nm is not None


def test_decode_in_nm_needs_no_pixel_size(tmp_path):
    locs = read(S.decode(tmp_path / "d.h5", xy_unit="nm"))
    x, y = S.coords(5)
    np.testing.assert_allclose(locs.x_nm, x)
    assert locs.meta.details["xy_unit"] == "nm"


def test_decode_non_square_pixels(tmp_path):
    locs = read(S.decode(tmp_path / "d.h5", px_size=(127.0, 117.0)))
    x, y = S.coords(5)
    np.testing.assert_allclose(locs.x_nm, x, rtol=1e-6)
    np.testing.assert_allclose(locs.y_nm, y, rtol=1e-6)
    np.testing.assert_allclose(locs.precision_nm, np.sqrt((12.7**2 + 11.7**2) / 2), rtol=1e-5)


def test_smlm_units_from_manifest(tmp_path):
    locs = read(S.smlm(tmp_path / "a.smlm", units=("px", "px", "")), camera_pixel_nm=10)
    x, y = S.coords(5)
    np.testing.assert_allclose(locs.x_nm, x * 10)
    locs = read(S.smlm(tmp_path / "b.smlm", units=("um", "um", "")))
    np.testing.assert_allclose(locs.x_nm, x * 1000)
    assert not locs.meta.warnings


def test_rapidstorm_tracks_generated(tmp_path):
    locs = read(S.rapidstorm_tracks(tmp_path / "t.txt"))
    assert locs.n == 3 and locs.extra["track"].tolist() == [0, 0, 1]
    np.testing.assert_allclose(locs.x_nm, [99, 101, 300])
    np.testing.assert_allclose(locs.precision_nm[2], np.sqrt((36 + 64) / 2))
    assert locs.meta.details["n_tracks"] == 2


@pytest.mark.parametrize(
    "header,unit,factor,warned",
    [
        ("x_nm,y_nm,frame,channel", None, 1.0, False),
        ("x [um],y [um],frame,channel", None, 1000.0, False),
        ("x,y,frame,channel", None, 1.0, True),
        ("x,y,frame,channel", "px", 100.0, False),
        ("X_px,Y_px,frame,channel", None, 100.0, False),
        ("position_x,position_y,frame,channel", "um", 1000.0, False),
    ],
)
def test_generic_csv_units(tmp_path, header, unit, factor, warned):
    path = S.generic_csv(tmp_path / "g.csv", header=header)
    locs = read(path, unit=unit, camera_pixel_nm=100)
    x, y = S.coords(5)
    np.testing.assert_allclose(locs.x_nm, x * factor, rtol=1e-6)
    assert any("no unit" in w for w in locs.meta.warnings) == warned


def test_generic_tsv_and_frame_base(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("x_nm\ty_nm\tframe\n1\t2\t1\n3\t4\t2\n")
    assert read(path, frame_base=1).frame.tolist() == [0, 1]
    assert read(path).frame.tolist() == [1, 2]


def test_non_integer_frame_is_an_error(tmp_path):
    path = S.generic_csv(tmp_path / "g.csv", rows=["1,2,0.5,0"])
    with pytest.raises(
        FormatError, match=r"g\.csv, row 1: column 'frame' holds a non-integer value"
    ):
        read(path)


def test_picasso_3d_z_in_nm_and_extras(tmp_path):
    locs = read(S.picasso(tmp_path / "p.hdf5", z=True))
    np.testing.assert_allclose(locs.z_nm, np.linspace(-200, 200, 5))
    assert {"lpx", "lpy"} <= set(locs.extra)
    np.testing.assert_allclose(locs.precision_nm, 10.0, rtol=1e-5)


def test_keep_extra_false_drops_extras(tmp_path):
    locs = read(S.nstorm_txt(tmp_path / "n.txt"), keep_extra=False)
    assert locs.extra == {} and locs.channel is not None


def test_extra_named_like_core_column_is_kept_renamed(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("A,B,frame\n1,2,3\n")
    locs = read(path, columns={"x": "A", "y": "B", "frame": "B"})
    assert locs.frame.tolist() == [2]
    assert locs.extra["frame_source"].tolist() == [3]
