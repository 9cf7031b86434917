"""ainu-engine render: images + sidecars per nucleus, formats, cell ids, ROIs, failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from ainu_engine.cli import main
from ainu_engine.simulate import Observation, simulate_dataset

OBS = Observation(locs_per_channel=4000)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(
        out / "one", classes=["hiPSC"], n_per_class=2, channels=("polII", "h3"), observation=OBS
    )
    simulate_dataset(
        out / "multi", classes=["mock"], n_per_class=2, nuclei_per_file=2, observation=OBS
    )
    simulate_dataset(
        out / "field",
        classes=["mock"],
        n_per_class=2,
        nuclei_per_file=2,
        field_mode=True,
        roi=True,
        format="insight3",
        observation=OBS,
    )
    return out


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_tiff_with_sidecar_maps_pixels_to_nm(capsys, dataset, tmp_path):
    files = sorted((dataset / "one").glob("hiPSC_000?.parquet"))
    code, out, err = run(
        capsys, "render", *files, "--out", tmp_path, "--channels", "1,2", "--size", "256", "--json"
    )
    assert code == 0, err
    assert "no CUDA GPU found" in err  # the CPU fallback is reported
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 2
    img = tifffile.imread(recs[0]["image"])
    assert img.shape == (2, 256, 256) and img.dtype == np.float32
    side = json.loads((tmp_path / "hiPSC_0000.tiff.json").read_text())
    assert side["render_spec"]["channels"] == [1, 2] and side["shape"] == [2, 256, 256]
    assert side["pixel_nm"] > 0 and len(side["origin_nm"]) == 2
    assert side["source"].endswith("hiPSC_0000.parquet")


def test_raw_npy_and_png(capsys, dataset, tmp_path):
    f = dataset / "one" / "hiPSC_0000.parquet"
    assert (
        run(
            capsys,
            "render",
            f,
            "--out",
            tmp_path,
            "--size",
            "0",
            "--image-format",
            "npy",
            "--pixel-nm",
            "40",
        )[0]
        == 0
    )
    raw = np.load(tmp_path / "hiPSC_0000.npy")
    side = json.loads((tmp_path / "hiPSC_0000.npy.json").read_text())
    assert raw.shape == tuple(side["raw_shape"]) and side["pixel_nm"] == 40
    assert raw.sum() == pytest.approx(side["n_localizations"]["0"], rel=2e-3)  # raw: no scaling
    assert (
        run(capsys, "render", f, "--out", tmp_path, "--image-format", "png", "--size", "128")[0]
        == 0
    )
    png = (tmp_path / "hiPSC_0000.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 500
    code, _, err = run(
        capsys, "render", f, "--out", tmp_path, "--image-format", "png", "--size", "128"
    )
    assert code == 1 and "exists already" in err


def test_one_image_per_cell_id_and_per_roi(capsys, dataset, tmp_path):
    code, out, err = run(
        capsys,
        "render",
        dataset / "multi" / "mock_0000.parquet",
        "--out",
        tmp_path / "cells",
        "--size",
        "64",
        "--json",
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "cells").glob("*.tiff")) == [
        "mock_0000_cell000.tiff",
        "mock_0000_cell001.tiff",
    ]
    code, out, err = run(
        capsys,
        "render",
        dataset / "field" / "mock_0000.bin",
        "--roi",
        dataset / "field" / "mock_0000.roi.zip",
        "--out",
        tmp_path / "rois",
        "--size",
        "64",
        "--json",
    )
    assert code == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["nucleus"] for r in recs] == ["nucleus-000", "nucleus-001"]
    truth = json.loads((dataset / "field" / "mock_0000.truth.json").read_text())
    for r, nu in zip(recs, truth["nuclei"], strict=True):
        assert r["area_um2"] == pytest.approx(nu["area_um2"], rel=0.03)


def test_bad_files_do_not_stop_the_batch(capsys, dataset, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n")
    good = dataset / "one" / "hiPSC_0001.parquet"
    code, _, err = run(capsys, "render", bad, good, "--out", tmp_path / "o", "--size", "32")
    assert code == 1 and "bad.csv" in err and (tmp_path / "o" / "hiPSC_0001.tiff").exists()
    assert (
        run(capsys, "render", good, "--out", tmp_path, "--pixel-nm", "10", "--magnification", "10")[
            0
        ]
        == 2
    )
    assert run(capsys, "render", good, "--out", tmp_path, "--method", "sklearn")[0] == 2
