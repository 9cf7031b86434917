"""Property-based round trips: random valid tables written in every writable format read
back exactly (Insight3: to the precision of its float32 pixel coordinates)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ainu_engine.io import Localizations, Metadata, read, write

F32 = np.finfo(np.float32)
coord = st.floats(-1e7, 1e7, allow_nan=False, allow_infinity=False, width=32)
positive = st.floats(0.0009765625, 1e6, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def tables(draw, *, min_size=0, max_frame=2**40, with_extra=True):
    n = draw(st.integers(min_size, 40))
    arr = lambda dtype, elements: draw(hnp.arrays(dtype, n, elements=elements))  # noqa: E731
    opt = lambda: draw(st.booleans())  # noqa: E731
    extra = {}
    if with_extra and opt():
        extra["extra_float"] = arr(np.float64, st.floats(-1e12, 1e12, allow_nan=False))
    if with_extra and opt():
        extra["extra_int"] = arr(np.int64, st.integers(-(2**50), 2**50))
    return Localizations(
        arr(np.float32, coord),
        arr(np.float32, coord),
        z_nm=arr(np.float32, st.floats(-5e3, 5e3, width=32)) if opt() else None,
        frame=arr(np.int64, st.integers(0, max_frame)) if opt() else None,
        channel=arr(np.int32, st.integers(0, 9)) if opt() else None,
        photons=arr(np.float32, positive) if opt() else None,
        precision_nm=arr(np.float32, positive) if opt() else None,
        extra=extra,
        meta=Metadata(camera_pixel_nm=(160.0, 160.0), channel_names={0: "647"} if opt() else {}),
    )


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_same_columns(a: Localizations, b: Localizations, *, skip=()):
    assert a.n == b.n
    for name in a.columns:
        if name in skip:
            continue
        got = b.column(name)
        want = a.column(name)
        np.testing.assert_array_equal(got.astype(want.dtype), want, err_msg=name)


@pytest.mark.parametrize("ext", [".parquet", ".arrow"])
@SETTINGS
@given(locs=tables())
def test_arrow_formats_lossless(tmp_path, ext, locs):
    path = tmp_path / f"t{ext}"
    assert write(locs, path, overwrite=True) == []
    back = read(path)
    assert back.columns == locs.columns
    for name in locs.columns:
        assert back.column(name).dtype == locs.column(name).dtype, name
    assert_same_columns(locs, back)
    assert back.meta.camera_pixel_nm == locs.meta.camera_pixel_nm
    assert back.meta.channel_names == locs.meta.channel_names


@SETTINGS
@given(locs=tables(min_size=1))
def test_thunderstorm_csv_exact(tmp_path, locs):
    path = tmp_path / "t.csv"
    write(locs, path, overwrite=True)
    back = read(path)
    assert back.meta.source_format == "thunderstorm"
    assert set(locs.columns) <= set(back.columns) | {"id"}
    assert_same_columns(locs, back)


@SETTINGS
@given(
    locs=tables(max_frame=2**31 - 2, with_extra=False),
    pixel=st.sampled_from([100.0, 117.0, 160.0, 5.333]),
)
def test_insight3_within_float32_pixels(tmp_path, locs, pixel):
    path = tmp_path / "t.bin"
    warnings = write(locs, path, camera_pixel_nm=pixel, overwrite=True)
    lost = [c for c in ("photons", "precision_nm") if getattr(locs, c) is not None]
    assert bool(warnings) == bool(lost)
    back = read(path)
    assert back.meta.camera_pixel_nm == (pixel, pixel)
    assert back.meta.camera_pixel_source == "sidecar"
    for axis in ("x_nm", "y_nm"):
        want = locs.column(axis).astype(np.float64)
        px = want / pixel + 1.0
        tol = 2 * F32.eps * (np.abs(px) * pixel + np.abs(want)) + 1e-6
        assert np.all(np.abs(back.column(axis) - want) <= tol), axis
    z_written = locs.z_nm is not None and np.any(locs.z_nm != 0)
    if z_written:
        np.testing.assert_array_equal(back.z_nm, locs.z_nm)
    else:
        assert back.z_nm is None  # all-zero z reads as 2-D data
    if locs.frame is not None:
        np.testing.assert_array_equal(back.frame, locs.frame)
    if locs.channel is not None:
        np.testing.assert_array_equal(back.channel, locs.channel)


def test_thunderstorm_refuses_empty_table(tmp_path):
    from ainu_engine.errors import OutputError

    with pytest.raises(OutputError, match="no localizations to write"):
        write(Localizations(np.zeros(0), np.zeros(0)), tmp_path / "e.csv")
    assert not (tmp_path / "e.csv").exists()


def test_write_refuses_to_overwrite_and_leaves_no_partial_file(tmp_path):
    from ainu_engine.errors import OutputError

    locs = Localizations([1.0, 2.0], [3.0, 4.0])
    path = tmp_path / "a.parquet"
    write(locs, path)
    before = path.read_bytes()
    with pytest.raises(OutputError, match="exists already.*--force"):
        write(locs, path)
    with pytest.raises(OutputError, match="Insight3 .bin stores camera pixels") as exc:
        write(locs, tmp_path / "b.bin")
    assert ".part" not in str(exc.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet"]


def test_write_unknown_extension(tmp_path):
    from ainu_engine.errors import OutputError

    with pytest.raises(OutputError, match="cannot tell the output format"):
        write(Localizations([1.0], [2.0]), tmp_path / "a.xyz")


def test_parquet_keeps_provenance(tmp_path):
    locs = read(_sample_ts(tmp_path))
    write(locs, tmp_path / "a.parquet")
    back = read(tmp_path / "a.parquet")
    assert back.meta.source_format == "parquet"
    assert back.meta.details["converted_from"]["format"] == "thunderstorm"
    assert back.meta.frame_offset == 1


def _sample_ts(tmp_path):
    from . import samples

    return samples.thunderstorm(tmp_path / "s.csv")


def test_insight3_keeps_the_channel_names_in_its_sidecar(tmp_path):
    """Insight3 has channel ids only: the names the simulator knew used to be lost, so a Pol II
    model needed --channel-map polII=1 on files the engine itself wrote."""
    import json

    from ainu_engine.io import Localizations, Metadata, read, write

    two = Localizations([1000.0, 2000.0, 3000.0], [1000.0, 1500.0, 2500.0], channel=[1, 2, 2],
                        meta=Metadata(channel_names={1: "polII", 2: "h3"}))  # fmt: skip
    write(two, tmp_path / "n.bin", camera_pixel_nm=160)
    side = json.loads((tmp_path / "n.bin.json").read_text())
    assert side["channel_names"] == {"1": "polII", "2": "h3"}
    back = read(tmp_path / "n.bin")
    assert back.meta.channel_names == {1: "polII", 2: "h3"}
    assert back.meta.camera_pixel_source == "sidecar"
    (tmp_path / "n.bin.json").write_text(json.dumps({**side, "channel_names": ["x"]}))
    from ainu_engine.errors import FormatError

    with pytest.raises(FormatError, match="unreadable sidecar"):
        read(tmp_path / "n.bin")
