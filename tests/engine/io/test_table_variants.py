"""Table variants from other labs (issue 16, defect 5): headerless tables read by column number
with no row lost, metres and micrometres, a time column in seconds, MATLAB v5 MAT-files — on
synthetic files and on the real MINFLUX and SMAP files in ../shared/data/real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ainu_engine.errors import FormatError, MissingColumnError, UnknownFormatError
from ainu_engine.io import read

from . import samples as S

REAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "real"
MINFLUX = REAL / "MINFLUX_NPC_Tracking_Nuclear_Pore_Model_Data.txt"
SMAP_V5 = REAL / "SMAP_lsf_sampledata_npc.mat"


def real(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"real data not found at {REAL} (it lives in ../shared/data/real)")
    return path


def headerless(path: Path, n: int = 6) -> Path:
    """MINFLUX-like: trace id, time (s), x, y, z in metres, tab-separated, no header."""
    x, y = S.coords(n)
    rows = [f"{7 + i // 3}\t{0.5 + 0.01 * i:.4f}\t{x[i] * 1e-9:.6E}\t{y[i] * 1e-9:.6E}\t-7E-8"
            for i in range(n)]  # fmt: skip
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_headerless_table_keeps_its_first_row_and_reads_columns_by_number(tmp_path):
    path = headerless(tmp_path / "minflux.txt")
    locs = read(path, columns={"x": "3", "y": "4", "z": "5"}, unit="m")
    assert locs.n == 6  # the first line is data, not a header
    x, y = S.coords(6)
    np.testing.assert_allclose(locs.x_nm, x, rtol=1e-5)
    np.testing.assert_allclose(locs.y_nm, y, rtol=1e-5)
    np.testing.assert_allclose(locs.z_nm, -70.0, rtol=1e-5)


def test_a_headerless_table_without_columns_says_how_to_name_them(tmp_path):
    path = headerless(tmp_path / "minflux.txt")
    with pytest.raises(MissingColumnError) as exc:
        read(path)
    msg = str(exc.value)
    assert "without a header" in msg and "5 columns" in msg and "--columns x=3,y=4" in msg


def test_no_header_is_explicit_for_a_first_line_that_is_not_all_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2,A\n3,4,B\n")  # a text column: auto-detection would take line 1 as names
    locs = read(path, header=False, columns={"x": "1", "y": "2"})
    assert locs.n == 2 and list(locs.extra["3"]) == ["A", "B"]


@pytest.mark.parametrize(("unit", "factor"), [("um", 1e-3), ("µm", 1e-3), ("m", 1e-9)])
def test_unit_scales_unitless_columns(tmp_path, unit, factor):
    x, y = S.coords(4)
    path = tmp_path / "t.csv"
    rows = "".join(f"{a * factor},{b * factor}\n" for a, b in zip(x, y, strict=True))
    path.write_text("x,y\n" + rows)
    np.testing.assert_allclose(read(path, unit=unit).x_nm, x, rtol=1e-5)


def test_a_time_column_in_seconds_is_no_frame_column_until_an_exposure_says_so(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,y,t\n1,2,0.10\n3,4,0.20\n5,6,0.45\n")
    locs = read(path)
    assert locs.frame is None and "t" in locs.extra
    assert any("--frame-from t --exposure-s" in w for w in locs.meta.warnings)
    timed = read(path, frame_from="t", exposure_s=0.05)
    assert timed.frame.tolist() == [2, 4, 9]
    with pytest.raises(FormatError, match="exposure"):
        read(path, frame_from="t")
    with pytest.raises(MissingColumnError, match="'time'"):
        read(path, frame_from="time", exposure_s=0.1)


def test_whole_numbers_in_a_t_column_are_still_frames(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,y,t\n1,2,1\n3,4,2\n")
    assert read(path).frame.tolist() == [1, 2]


def test_a_mat5_struct_and_top_level_variables(tmp_path):
    import scipy.io

    path = S.mat5(tmp_path / "npc.mat")
    locs = read(path)
    assert locs.meta.source_format == "mat5" and locs.n == 5
    assert locs.frame.tolist() == [1, 2, 3, 4, 5] and "t" in locs.extra
    flat = tmp_path / "flat.mat"
    scipy.io.savemat(flat, {"xnm": np.array([1.0, 2.0]), "ynm": np.array([3.0, 4.0])})
    assert read(flat).x_nm.tolist() == [1.0, 2.0]
    none = tmp_path / "none.mat"
    scipy.io.savemat(none, {"image": np.zeros((4, 4))})
    with pytest.raises(MissingColumnError, match="MATLAB v5 file without x and y"):
        read(none)


def test_a_mat_file_that_is_neither_v5_nor_smap_names_the_supported_versions(tmp_path):
    path = tmp_path / "v4.mat"
    path.write_bytes(bytes(20) + b"\x01\x00" * 40)
    with pytest.raises(UnknownFormatError, match="MATLAB v5"):
        read(path)


# -- the real files ------------------------------------------------------------------------------


def test_real_minflux_headerless_metres():
    path = real(MINFLUX)
    with pytest.raises(MissingColumnError, match="--columns"):
        read(path)
    locs = read(path, columns={"x": "3", "y": "4", "z": "5"}, unit="m")
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    assert locs.n == lines == 10268  # every row, the first one too
    span_x, span_y = np.ptp(locs.x_nm), np.ptp(locs.y_nm)
    assert 2000 < span_x < 3000 and 1200 < span_y < 2000  # "a ~2.4 x 1.6 µm patch" (README)
    assert locs.meta.warnings == ()  # no scale or unit doubt left


def test_real_smap_mat5_with_times_in_seconds():
    path = real(SMAP_V5)
    locs = read(path)
    assert locs.meta.source_format == "mat5" and locs.n == 57778
    assert 8000 < np.ptp(locs.x_nm) < 10000 and 7000 < np.ptp(locs.y_nm) < 9000  # ~9 x 8 µm
    assert locs.frame is None and any("holds times" in w for w in locs.meta.warnings)
    timed = read(path, frame_from="t", exposure_s=0.01)
    assert timed.frame.min() >= 0 and timed.frame.max() > 100


def test_the_mat5_reader_agrees_with_scipy_and_bounds_what_a_corrupt_file_declares(tmp_path):
    import scipy.io

    from ainu_engine.errors import AinuError
    from ainu_engine.io._matlab import load_mat5

    path = tmp_path / "z.mat"
    data = {"x": np.arange(50.0), "y": np.arange(50, dtype=np.int16), "n": {"deep": np.ones(3)}}
    scipy.io.savemat(path, {"s": data, "v": np.float32([1, 2])}, do_compression=True)
    ours, ref = load_mat5(path), scipy.io.loadmat(path, simplify_cells=True)
    np.testing.assert_array_equal(ours["s"]["x"].ravel(), ref["s"]["x"])
    np.testing.assert_array_equal(ours["s"]["y"].ravel(), ref["s"]["y"])
    np.testing.assert_array_equal(ours["s"]["n"]["deep"].ravel(), ref["s"]["n"]["deep"])
    raw = path.read_bytes()
    for pos in range(128, len(raw), 7):  # a flipped byte anywhere: a result or one clear error
        bad = tmp_path / f"bad{pos}.mat"
        bad.write_bytes(raw[:pos] + bytes([raw[pos] ^ 0xFF]) + raw[pos + 1 :])
        try:
            read(bad)
        except AinuError as err:
            assert "\n" not in str(err) and bad.name in str(err)


def test_the_real_smap_mat5_reads_as_scipy_reads_it():
    import scipy.io

    path = real(SMAP_V5)
    ref = scipy.io.loadmat(path, simplify_cells=True)["data"]
    locs = read(path)
    np.testing.assert_array_equal(locs.x_nm, ref["x"].astype(np.float32))
    np.testing.assert_array_equal(locs.extra["t"], ref["t"])


def test_a_foreign_parquet_table_takes_the_same_generic_options(tmp_path):
    """Parquet/Arrow tables not written by ainu-engine are generic tables: --frame-from, the time
    column's warning and --unit apply to them as to CSV (they were ignored there before)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "foreign.parquet"
    pq.write_table(
        pa.table({"x": [1.0, 3.0, 5.0], "y": [2.0, 4.0, 6.0], "t": [0.1, 0.2, 0.45]}), path
    )
    locs = read(path)
    assert locs.frame is None and any("--frame-from t" in w for w in locs.meta.warnings)
    assert read(path, frame_from="t", exposure_s=0.05).frame.tolist() == [2, 4, 9]
    np.testing.assert_allclose(read(path, unit="um").x_nm, [1000.0, 3000.0, 5000.0])
