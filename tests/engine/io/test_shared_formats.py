"""Every real file in ../shared/data/formats reads as its README says a correct reader reports.

Expected numbers are copied from ../shared/data/formats/README.md (ranges there are given to
about 6 significant digits, hence rel=1e-5); coordinates in pixels are converted with the
pixel size the README names.
"""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.io import read, summarize

# name -> (relative path, read kwargs, expected)
CASES = {
    "insight3": (
        "insight3_bin/storm-analysis_test_300x200_dh_olist.bin",
        {"camera_pixel_nm": 160},
        dict(
            n=120,
            channels={1: 120},
            x=[(21 - 1) * 160, (221 - 1) * 160],
            y=[(21 - 1) * 160, (141 - 1) * 160],
            z=[-750, 750],
            frames_in_file=[1, 5],
        ),
    ),
    "picasso": (
        "picasso_hdf5/testdata_locs.hdf5",
        {},
        dict(
            n=564,
            channels={0: 564},
            x=[695.2725, 3335.891],
            y=[5.24161 * 130, 25.7118 * 130],
            z=None,
            frames_in_file=[11, 990],
            pixel=130.0,
        ),
    ),
    "thunderstorm": (
        "thunderstorm_csv/locan_Thunderstorm_dstorm_data.csv",
        {},
        dict(
            n=19,
            channels={0: 19},
            x=[1320.11, 16566.2],
            y=[1432.21, 27944.9],
            z=None,
            frames_in_file=[2001, 2001],
        ),
    ),
    "nanoimager": (
        "nanoimager_csv/locan_Nanoimager_dstorm_data.csv",
        {},
        dict(n=14, x=[3237.64, 47927.3], y=[3575.89, 70050.4], z=[0, 0], frames_in_file=[0, 4377]),
    ),
    "elyra": (
        "elyra_txt/locan_Elyra_dstorm_data.txt",
        {},
        dict(
            n=15,
            channels={1: 15},
            x=[5369.8, 29981.8],
            y=[6580, 30480.8],
            z=None,
            frames_in_file=[1, 1],
        ),
    ),
    "rapidstorm": (
        "rapidstorm_txt/locan_rapidSTORM_dstorm_data.txt",
        {},
        dict(
            n=14,
            channels={0: 14},
            x=[3995.59, 32716.1],
            y=[1303.61, 26751.7],
            z=None,
            frames_in_file=[0, 0],
        ),
    ),
    "smlm": (
        "smlm_zip/locan_SMLM_dstorm_data.smlm",
        {},
        dict(
            n=10,
            channels={0: 10},
            x=[1653.34, 14215.5],
            y=[5597.88, 18577.3],
            z=None,
            frames_in_file=[0, 0],
        ),
    ),
    "decode": (
        "decode_h5/locan_decode_dstorm_data.h5",
        {},
        dict(
            n=96,
            channels={0: 96},
            x=[-0.5995 * 127, 1.6993 * 127],
            y=[138.0 * 117, 139.993 * 117],
            z=[-934.6, 887.2],
            frames_in_file=[294, 19552],
            pixel=[127.0, 117.0],
        ),
    ),
    "smap": (
        "smap_mat/locan_smap_dstorm_data.mat",
        {},
        dict(
            n=4884,
            channels={0: 4884},
            x=[333.867, 26891.1],
            y=[420.364, 26215.9],
            z=[-2300, 2500],
            frames_in_file=[1, 1001],
            pixel=104.0,
        ),
    ),
}


def _close(got, want, rel=1e-4, abs_=0.05):
    assert got is not None
    assert got == pytest.approx(want, rel=rel, abs=abs_)


@pytest.mark.parametrize("name", sorted(CASES))
def test_reads_as_readme_says(shared_formats, name):
    rel, kwargs, exp = CASES[name]
    locs = read(shared_formats / rel, **kwargs)
    s = summarize(locs)
    assert s["format"] == name
    assert s["n_localizations"] == exp["n"]
    if "channels" in exp:
        assert locs.channel_counts() == exp["channels"]
    _close(s["x_range_nm"], exp["x"])
    _close(s["y_range_nm"], exp["y"])
    if exp["z"] is None:
        assert s["z_range_nm"] is None
    else:
        _close(s["z_range_nm"], exp["z"])
    assert s["frame_range_in_file"] == exp["frames_in_file"]
    if "pixel" in exp:
        assert s["camera_pixel_nm"] == pytest.approx(exp["pixel"])
    assert locs.x_nm.dtype == np.float32 and locs.y_nm.dtype == np.float32


def test_nanoimager_channels(shared_formats):
    locs = read(shared_formats / "nanoimager_csv/locan_Nanoimager_dstorm_data.csv")
    assert set(locs.channel_counts()) == {0, 1}
    assert sum(locs.channel_counts().values()) == 14
    assert locs.photons.min() == pytest.approx(130.01, rel=1e-5)
    assert locs.photons.max() == pytest.approx(2076.46, rel=1e-5)


def test_thunderstorm_quoted_header_columns(shared_formats):
    locs = read(shared_formats / "thunderstorm_csv/locan_Thunderstorm_dstorm_data.csv")
    assert locs.columns[:5] == ["x_nm", "y_nm", "frame", "photons", "precision_nm"]
    assert "sigma [nm]" in locs.extra and "chi2" in locs.extra
    assert locs.extra["id"].min() == 73897 and locs.extra["id"].max() == 73915
    assert [locs.precision_nm.min(), locs.precision_nm.max()] == pytest.approx(
        [7.5545, 38.9065], rel=1e-5
    )


def test_picasso_precision_in_nm(shared_formats):
    locs = read(shared_formats / "picasso_hdf5/testdata_locs.hdf5")
    # lpx, lpy in [0.00446, 0.03546] px at 130 nm/px
    assert 0.00446 * 130 * 0.99 <= locs.precision_nm.min()
    assert locs.precision_nm.max() <= 0.03546 * 130 * 1.01
    assert locs.photons.min() == pytest.approx(2547.15, rel=1e-5)


def test_picasso_pixel_size_wins_over_user(shared_formats):
    locs = read(shared_formats / "picasso_hdf5/testdata_locs.hdf5", camera_pixel_nm=160)
    assert locs.meta.camera_pixel_nm == (130.0, 130.0)
    assert any("130 nm" in w and "160" in w for w in locs.meta.warnings)


def test_rapidstorm_track_file(shared_formats):
    locs = read(shared_formats / "rapidstorm_txt/locan_rapidSTORM_dstorm_track_data.txt")
    assert locs.n == 91
    d = locs.meta.details
    assert d["n_tracks"] == 14
    assert d["track_x_range"] == pytest.approx([74.174, 7427.42], rel=1e-5)
    assert d["track_frame_range"] == [1, 247]
    counts = np.bincount(locs.extra["track"])
    assert counts.tolist() == [2, 2, 3, 11, 1, 5, 12, 12, 8, 5, 3, 3, 8, 16]
    assert locs.frame.min() == 0
    assert locs.precision_nm is not None


def test_decode_empty_file_is_empty_table(shared_formats):
    locs = read(shared_formats / "decode_h5/locan_decode_dstorm_data_empty.h5")
    assert locs.n == 0
    assert any("no localizations" in w for w in locs.meta.warnings)


def test_decode_photons_and_prob(shared_formats):
    locs = read(shared_formats / "decode_h5/locan_decode_dstorm_data.h5")
    assert [locs.photons.min(), locs.photons.max()] == pytest.approx([507.9, 9234.4], rel=1e-4)
    assert locs.extra["prob"].min() == pytest.approx(0.16, abs=0.01)
    assert locs.extra["prob"].max() == pytest.approx(1.0)
    assert "bg_cr" not in locs.extra  # h5py.Empty datasets are skipped


def test_smap_fields(shared_formats):
    locs = read(shared_formats / "smap_mat/locan_smap_dstorm_data.mat")
    assert locs.precision_nm.min() == pytest.approx(11.77, rel=1e-3)
    assert locs.precision_nm.max() == pytest.approx(1.154e6, rel=1e-3)
    assert np.all(locs.extra["filenumber"] == 1)


def test_insight3_without_pixel_size_names_the_flag(shared_formats):
    from ainu_engine.errors import PixelSizeError

    with pytest.raises(PixelSizeError, match=r"storm-analysis_test.*--camera-pixel-nm"):
        read(shared_formats / "insight3_bin/storm-analysis_test_300x200_dh_olist.bin")
