"""Widefield readers: pixel size from the file or the caller, never guessed; clear errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from ainu_engine.errors import FormatError, InputError, PixelSizeError
from ainu_engine.scenmed import pixel_um_of, read_field, read_fields, read_scenmed_h5

IMG = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)


def test_imagej_tiff_states_its_pixel(tmp_path):
    p = tmp_path / "f.tif"
    tifffile.imwrite(
        p, IMG, imagej=True, resolution=(1 / 0.215, 1 / 0.215), metadata={"unit": "um"}
    )
    f = read_field(p)
    assert f.pixel_um == pytest.approx(0.215, rel=1e-6)
    np.testing.assert_array_equal(f.image, IMG.astype(np.float32))
    assert f.image.dtype == np.float32 and f.name == "f"


def test_ome_tiff_and_resolution_in_cm(tmp_path):
    ome = tmp_path / "f.ome.tif"
    tifffile.imwrite(
        ome, IMG, ome=True, metadata={"PhysicalSizeX": 0.1075, "PhysicalSizeXUnit": "µm"}
    )
    assert pixel_um_of(ome) == pytest.approx(0.1075)
    cm = tmp_path / "cm.tif"
    tifffile.imwrite(cm, IMG, resolution=(1e4 / 0.43, 1e4 / 0.43), resolutionunit="CENTIMETER")
    assert read_field(cm).pixel_um == pytest.approx(0.43, rel=1e-4)


def test_no_pixel_size_is_an_error_unless_given(tmp_path):
    p = tmp_path / "bare.tif"
    tifffile.imwrite(p, IMG)
    with pytest.raises(PixelSizeError, match=r"bare\.tif.*states no pixel size"):
        read_field(p)
    assert read_field(p, pixel_um=0.2).pixel_um == 0.2
    with pytest.raises(PixelSizeError, match="positive"):
        read_field(p, pixel_um=-1.0)


@pytest.mark.parametrize(
    "make, err, msg",
    [
        (lambda p: p.write_bytes(b"not a tiff at all"), FormatError, "not a readable TIFF"),
        (
            lambda p: tifffile.imwrite(p, np.zeros((3, 8, 8), np.uint16), photometric="minisblack"),
            FormatError,
            "2-D",
        ),
        (lambda p: tifffile.imwrite(p, np.full((8, 8), np.nan, np.float32)), FormatError, "NaN"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, make, err, msg):
    p = tmp_path / "bad.tif"
    make(p)
    with pytest.raises(err, match=msg) as e:
        read_field(p, pixel_um=0.215)
    assert "bad.tif" in str(e.value) and "\n" not in str(e.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_field(tmp_path / "nope.tif", pixel_um=0.2)
    with pytest.raises(InputError, match="directory"):
        read_field(tmp_path, pixel_um=0.2)


def test_scenmed_hdf5_layout(tmp_path):
    p = tmp_path / "set.h5"
    with h5py.File(p, "w") as h:
        h["images"] = np.stack([IMG, IMG + 1])
        h["CellType"] = np.array([b"NIH/3T3", b"NIH/3T3"])
    fs = read_fields(p, pixel_um=0.215)
    assert [f.label for f in fs] == ["NIH/3T3"] * 2 and [f.index for f in fs] == [0, 1]
    np.testing.assert_array_equal(fs[1].image, IMG + 1)
    with pytest.raises(PixelSizeError, match="HDF5 layout states no pixel size"):
        read_scenmed_h5(p)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as h:
        h["pictures"] = np.zeros((2, 4, 4))
    with pytest.raises(FormatError, match="no dataset 'images'"):
        read_scenmed_h5(bad, pixel_um=0.2)
    mism = tmp_path / "mism.h5"
    with h5py.File(mism, "w") as h:
        h["images"] = np.zeros((3, 4, 4))
        h["CellType"] = np.array([b"a", b"b"])
    with pytest.raises(FormatError, match="one label per image"):
        read_scenmed_h5(mism, pixel_um=0.2)
