"""Drift correction by RCC (issue 35): a known drift added to a simulated nucleus is recovered,
sparse or structureless fields are refused with the reason, traces round-trip as files."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.io import Localizations
from ainu_engine.preprocess import Drift, SparseFieldError, correct_drift, estimate_drift
from ainu_engine.simulate import simulate_nucleus

N_FRAMES = 60_000  # the simulator's acquisition


def _true_drift(frame):
    f = np.asarray(frame, np.float64) / N_FRAMES
    return 250 * f - 80 * f**2, -150 * f + 60 * np.sin(np.pi * f)


@pytest.fixture(scope="module")
def nucleus():
    return simulate_nucleus("hiPSC", rng=np.random.default_rng(1), channels=("h3",))


def _rms_after_offset(est, true):
    r = est - true
    return float(np.sqrt(np.mean((r - r.mean()) ** 2)))  # RCC's drift is relative


def test_rcc_recovers_a_known_drift_within_2_nm_rms(nucleus, tmp_path):
    s = nucleus
    tx, ty = _true_drift(s.frame)
    locs = Localizations(s.x_nm + tx, s.y_nm + ty, frame=s.frame)
    drift = estimate_drift(locs)
    frames = np.arange(drift.first_frame, drift.last_frame + 1)
    ex, ey = drift.at(frames)
    gx, gy = _true_drift(frames)
    assert _rms_after_offset(ex, gx) <= 2.0 and _rms_after_offset(ey, gy) <= 2.0
    assert drift.details["pairs_used"] >= drift.details["segments"] - 1
    fixed = correct_drift(locs, drift)
    off = np.mean(fixed.x_nm - s.x_nm), np.mean(fixed.y_nm - s.y_nm)  # one constant offset left
    assert np.std(fixed.x_nm - s.x_nm - off[0]) < 3.0 and np.std(fixed.y_nm - s.y_nm - off[1]) < 3.0
    # a trace is data: written, read back, applied the same; and drawn
    back = Drift.read(drift.write(tmp_path / "drift.csv"))
    assert back.method == "file" and np.allclose(back.x_nm, drift.x_nm, atol=1e-3)
    assert np.allclose(correct_drift(locs, back).x_nm, fixed.x_nm, atol=1e-2)
    assert drift.plot(tmp_path / "drift.png").stat().st_size > 1000


def test_sparse_and_structureless_fields_are_refused_with_the_reason(nucleus):
    s = nucleus
    few = Localizations(s.x_nm[::200], s.y_nm[::200], frame=s.frame[::200])
    with pytest.raises(SparseFieldError, match="too sparse for drift correction: 1,"):
        estimate_drift(few)
    rng = np.random.default_rng(0)  # uniform: no structure to correlate
    flat = Localizations(rng.uniform(0, 10_000, 40_000), rng.uniform(0, 10_000, 40_000),
                         frame=np.sort(rng.integers(0, 10_000, 40_000)))  # fmt: skip
    with pytest.raises(SparseFieldError, match="peaks are too weak"):
        estimate_drift(flat)


def test_bad_parameters_and_traces_are_refused(tmp_path):
    locs = Localizations([0.0, 1.0], [0.0, 1.0], frame=[0, 5])
    with pytest.raises(ValueError, match="pixel_nm must be positive"):
        estimate_drift(locs, pixel_nm=0)
    with pytest.raises(ValueError, match="needs frames"):
        estimate_drift(Localizations([0.0], [0.0]))
    short = Drift(0, np.zeros(3), np.zeros(3), method="file")
    with pytest.raises(ValueError, match="covers frames 0-2; the table has frames 0-5"):
        correct_drift(locs, short)
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,x_nm,y_nm\n0,0,0\n2,1,1\n")
    from ainu_engine.errors import InputError

    with pytest.raises(InputError, match="one row per frame"):
        Drift.read(bad)
    (tmp_path / "none.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a drift trace"):
        Drift.read(tmp_path / "none.csv")


def test_the_command_corrects_drift_writes_the_trace_and_refuses_sparse_files(
    nucleus, tmp_path, capsys
):
    import json

    from ainu_engine.cli import main
    from ainu_engine.io import read, write

    s = nucleus
    tx, ty = _true_drift(s.frame)
    write(Localizations(s.x_nm + tx, s.y_nm + ty, frame=s.frame, precision_nm=s.precision_nm),
          tmp_path / "field.parquet")  # fmt: skip
    write(Localizations(s.x_nm[:900], s.y_nm[:900], frame=s.frame[:900]), tmp_path / "few.parquet")
    files = [str(tmp_path / "field.parquet"), str(tmp_path / "few.parquet")]
    code = main(["preprocess", *files, "--out", str(tmp_path / "pre"), "--drift", "rcc",
                 "--resolution", "--json"])  # fmt: skip
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert code != 0  # one file failed: the batch went on and says so
    done = next(x for x in lines if x.get("input", "").endswith("field.parquet") and "out" in x)
    assert done["drift"]["method"] == "rcc" and 200 < done["drift"]["span_nm"] < 260
    assert done["resolution"]["frc_nm"] > 0
    assert (tmp_path / "pre" / "field.drift.png").is_file()
    failed = [x for x in lines if x.get("input", "").endswith("few.parquet")]
    assert failed and "too sparse for drift correction" in json.dumps(failed)
    # a known trace applied to the raw file gives the RCC-corrected table
    code = main(["preprocess", str(tmp_path / "field.parquet"), "--out", str(tmp_path / "again"),
                 "--drift", str(tmp_path / "pre" / "field.drift.csv")])  # fmt: skip
    assert code == 0
    a, b = read(tmp_path / "pre" / "field.parquet"), read(tmp_path / "again" / "field.parquet")
    assert np.allclose(a.x_nm, b.x_nm, atol=0.01) and np.allclose(a.y_nm, b.y_nm, atol=0.01)


def test_channels_imaged_one_after_the_other_are_corrected_each_on_its_own(nucleus):
    s = nucleus
    half = N_FRAMES // 2
    tx, ty = _true_drift(s.frame)
    # channel 1 in the first half of the frames, channel 2 (another target) in the second
    chan = np.where(s.frame < half, 1, 2)
    locs = Localizations(s.x_nm + tx, s.y_nm + ty, frame=s.frame, channel=chan)
    d = estimate_drift(locs)
    assert d.details["sequential_channels"] == [1, 2]
    for lo, hi in ((0, half), (half, N_FRAMES)):  # each block within 2 nm of the truth
        frames = np.arange(max(lo, d.first_frame), min(hi, d.last_frame + 1))
        ex, ey = d.at(frames)
        gx, gy = _true_drift(frames)
        assert _rms_after_offset(ex, gx) <= 2.0 and _rms_after_offset(ey, gy) <= 2.0
    few = Localizations(locs.x_nm[::150], locs.y_nm[::150], frame=locs.frame[::150],
                        channel=chan[::150])  # fmt: skip
    with pytest.raises(SparseFieldError, match="channel 1 .imaged alone, frames 0-"):
        estimate_drift(few)
