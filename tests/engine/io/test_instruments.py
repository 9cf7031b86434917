"""Files of today's instruments and tools (../shared/data/instruments, issue 35), read in place and
compared with an independent reading of each format (numpy, h5py, scipy.io, the csv module)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ainu_engine.errors import InputError, UnknownFormatError
from ainu_engine.io import read

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "instruments"


def _file(name: str) -> Path:
    p = DATA / name
    if not p.is_file():
        pytest.skip(f"the instrument files live in ../shared/data/instruments ({name} absent)")
    return p


def test_a_table_with_comment_lines_before_its_header():
    """vLUME re-saves ThunderSTORM tables with two '#' lines first."""
    p = _file("vLUME_RiesLab_U2OS_microtubules_ThunderSTORM_single.csv")
    lines = p.read_text().splitlines()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    locs = read(p)
    assert locs.n == len(rows) == 2848  # "#2848 point's captured"
    np.testing.assert_allclose(locs.x_nm, [float(r["x"]) for r in rows], rtol=1e-6)
    np.testing.assert_allclose(locs.z_nm, [float(r["z"]) for r in rows], rtol=1e-5, atol=1e-3)
    assert locs.frame[0] == int(rows[0]["frame"])  # a generic table: frames as written
    assert any("comment line" in w for w in locs.meta.warnings)


def test_picasso_mean_frames_are_kept_and_rounded():
    """SPINNA writes molecules with the mean frame of their localizations."""
    h5py = pytest.importorskip("h5py")
    p = _file("picasso_SPINNA_A549_EGFR_mols.hdf5")
    with h5py.File(p) as f:
        raw = f["locs"][()]
    locs = read(p)
    assert locs.n == len(raw) == 4230
    np.testing.assert_allclose(locs.extra["frame_mean"], raw["frame"])
    np.testing.assert_array_equal(locs.frame, np.rint(raw["frame"]).astype(np.int64))
    np.testing.assert_allclose(locs.x_nm, raw["x"] * 130.0, rtol=1e-6)  # 130 nm in the YAML
    assert any("frame_mean" in w for w in locs.meta.warnings)


def test_the_abberior_minflux_npy_in_a_zip():
    p = _file("pyMINFLUX_Abberior_Imspector_2D_ValidOnly.npy.zip")
    with zipfile.ZipFile(p) as z:
        (name,) = z.namelist()
        a = np.load(io.BytesIO(z.read(name)), allow_pickle=False)
    a = a[a["vld"]]
    locs = read(p)
    assert locs.meta.source_format == "minflux_npy" and locs.n == len(a) == 12580
    last = a["itr"][:, -1]["loc"] * 1e9  # metres -> nm, the last iteration
    np.testing.assert_allclose(locs.x_nm, last[:, 0], rtol=1e-6)
    np.testing.assert_allclose(locs.y_nm, last[:, 1], rtol=1e-6)
    assert locs.z_nm is None  # a 2D measurement (z all 0)
    np.testing.assert_array_equal(locs.extra["trace_id"], a["tid"])
    np.testing.assert_allclose(locs.extra["time_s"], a["tim"])
    timed = read(p, frame_from="tim", exposure_s=0.01)
    np.testing.assert_array_equal(timed.frame, np.rint(a["tim"] / 0.01).astype(np.int64))


def test_minflux_structs_in_matlab_v5_and_v7_3():
    h5py = pytest.importorskip("h5py")
    sio = pytest.importorskip("scipy.io")
    p5 = _file("MINFLUX_Ostersehlt2022_U2OS_EGFP-Nup96_DNA-PAINT_v5.mat")
    m = sio.loadmat(p5, squeeze_me=True, struct_as_record=False)["minflux"]
    locs = read(p5)
    assert locs.n == len(m.pos) == 64980 and locs.z_nm is None  # pos N x 3, z all 0
    np.testing.assert_allclose(locs.x_nm, m.pos[:, 0], rtol=1e-6, atol=1e-4)  # nm already
    np.testing.assert_array_equal(locs.extra["trace_id"], m.id)
    p73 = _file("MINFLUX_Ostersehlt2022_U2OS_Nup96-AF647_v7.3.mat")
    with h5py.File(p73) as f:
        pos, t = f["minflux/pos"][()], f["minflux/t"][()].ravel()  # 3 x N (MATLAB transposed)
    locs = read(p73)
    assert locs.meta.source_format == "mat73" and locs.n == pos.shape[1] == 5223
    np.testing.assert_allclose(locs.y_nm, pos[1], rtol=1e-6)
    np.testing.assert_allclose(locs.extra["time_s"], t)


def test_a_two_colour_minflux_table_with_its_assignment_file():
    p = _file("pyMINFLUX_two_fluorophores_df.csv")
    colours = np.load(_file("pyMINFLUX_two_fluorophores_assignment.npy"))
    locs = read(p, channel_file=DATA / "pyMINFLUX_two_fluorophores_assignment.npy")
    assert locs.n == len(colours) == 17955
    np.testing.assert_array_equal(locs.channel, colours)
    assert locs.channel_counts() == {1: 12884, 2: 5071}
    with pytest.raises(UnknownFormatError, match="--channel-file"):
        read(DATA / "pyMINFLUX_two_fluorophores_assignment.npy")
    with pytest.raises(InputError, match="17955 channels for a table of"):
        read(_file("vLUME_MoernerLab_Caulobacter_C_2_R09_xyz.csv"),
             channel_file=DATA / "pyMINFLUX_two_fluorophores_assignment.npy")  # fmt: skip


def test_a_zip_of_several_files_is_refused_with_its_members(tmp_path):
    z = tmp_path / "two.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("a.csv", "x,y\n1,2\n")
        f.writestr("b.csv", "x,y\n1,2\n")
    with pytest.raises(UnknownFormatError, match="2 files: a.csv, b.csv"):
        read(z)
    one = tmp_path / "one.zip"
    with zipfile.ZipFile(one, "w") as f:
        f.writestr("table.csv", "x [nm],y [nm],frame\n1,2,1\n3,4,2\n")
    locs = read(one)
    assert locs.n == 2 and locs.meta.source_format == "thunderstorm"
    assert locs.meta.source_path == str(one)


@pytest.mark.parametrize(
    ("name", "x", "unit_note"),
    [
        ("ColiCoords_ThunderSTORM_Ecoli_LacY-eYFP_03_storm.csv", "x [nm]", False),
        ("SMAP-old_fit3D_cme_2um_site_uncorrected_sml.csv", "x", True),
        ("vLUME_MoernerLab_Caulobacter_C_2_R09_xyz.csv", "x", True),
    ],
)
def test_tables_that_read_as_they_are(name, x, unit_note):
    p = _file(name)
    rows = list(csv.DictReader(p.open()))
    locs = read(p)
    assert locs.n == len(rows)
    np.testing.assert_allclose(locs.x_nm, [float(r[x]) for r in rows], rtol=1e-6)
    # unit-less x/y columns are read as nm and said so, never silently
    assert unit_note == any("name no unit" in w for w in locs.meta.warnings)


def test_the_resi_files_of_one_pore_are_one_channel_each():
    h5py = pytest.importorskip("h5py")
    for k, n in ((1, 44), (2, 215), (3, 262), (4, 155)):
        p = _file(f"picasso_RESI_NPC_R{k}_apicked.hdf5")
        with h5py.File(p) as f:
            raw = f["locs"][()]
        locs = read(p)
        assert locs.n == len(raw) == n
        np.testing.assert_allclose(locs.y_nm / raw["y"], locs.meta.camera_pixel_nm[1], rtol=1e-5)
