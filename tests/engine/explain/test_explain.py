"""CAM / Grad-CAM / IG, structure fractions, nucleoli replacement, overlays and the explain CLI."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from ainu_engine.cli import main
from ainu_engine.explain._structures import (
    replace_nucleoli,
    structure_fractions,
    structure_masks,
    write_overlay,
)

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")
pytest.importorskip("captum", reason="the train extra (captum) is not installed")

MODEL = "examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx"


@pytest.fixture(scope="module")
def net():
    from ainu_engine.training.models import create_model

    torch.manual_seed(1)
    return create_model("small_cnn", in_chans=1, num_classes=2).eval()


def test_cam_is_the_class_weighted_sum_of_the_last_feature_maps(torch_threads, net):
    from ainu_engine.explain._cam import cam

    img = np.random.default_rng(0).random((1, 32, 32), dtype=np.float32)
    a = cam(net, img, target="all", class_names=["a", "b"])
    assert a.maps.shape == (2, 32, 32) and a.targets == [0, 1]
    with torch.inference_mode():
        f = net.forward_features(torch.from_numpy(img[None]))[0]
        want = torch.einsum("k,khw->hw", net.classifier.weight[1], f)
    # the map's mean over the feature grid is the class logit minus the bias (global average
    # pooling)
    assert float(want.mean()) == pytest.approx(
        float(a.output[1]) - float(net.classifier.bias[1].detach()), rel=1e-4, abs=1e-6
    )
    small = torch.nn.functional.interpolate(
        torch.from_numpy(a.maps[1])[None, None], size=f.shape[-2:], mode="area"
    )[0, 0]
    assert torch.allclose(small, want, rtol=0.2, atol=0.2 * float(want.abs().max()))


def test_gradcam_and_integrated_gradients_run_on_the_model(torch_threads, net):
    from ainu_engine.explain._cam import gradcam, integrated_gradients

    img = np.random.default_rng(1).random((1, 32, 32), dtype=np.float32)
    g = gradcam(net, img, target=0)
    assert g.maps.shape == (1, 32, 32) and np.isfinite(g.maps).all()
    ig = integrated_gradients(net, img, target=1, steps=8)
    # completeness: IG sums to f(x) - f(baseline)
    with torch.inference_mode():
        f0 = net(torch.zeros(1, 1, 32, 32))[0, 1].item()
    assert float(ig.maps.sum()) == pytest.approx(float(ig.output[1]) - f0, rel=0.05, abs=1e-3)


def test_structure_fractions_on_hand_built_masks():
    nucleus = np.zeros((10, 10), bool)
    nucleus[1:9, 1:9] = True  # 64 px
    nucleoli = np.zeros_like(nucleus)
    nucleoli[2:4, 2:4] = True  # 4 px
    amap = np.zeros((10, 10))
    amap[2:4, 2:4] = 3.0  # 12 of positive attribution in the nucleoli
    amap[6, 6] = 4.0  # 4 elsewhere
    amap[7, 7] = -5.0  # negative: not counted
    amap[0, 0] = 9.0  # outside the nucleus: not counted
    fr = structure_fractions(amap, {"nucleus": nucleus, "nucleoli": nucleoli})
    assert fr["nucleoli"]["positive_attribution_fraction"] == pytest.approx(0.75)
    assert fr["nucleoli"]["area_fraction"] == pytest.approx(4 / 64)
    assert fr["nucleoli"]["enrichment"] == pytest.approx(12.0)


def test_masks_from_polygons_and_nucleoli_replacement():
    truth = {
        "outline_nm": [[0, 0], [1000, 0], [1000, 1000], [0, 1000]],
        "nucleoli_nm": [[[200, 200], [400, 200], [400, 400], [200, 400]]],
        "params": {"cell_state": {"periphery_width_nm": 100}},
    }
    m = structure_masks(truth, shape=(20, 20), origin_nm=(0, 0), pixel_nm=50)
    assert m["nucleus"].sum() == 400 and m["nucleoli"].sum() == 16
    assert m["periphery"].sum() == 400 - 16 * 16  # a 2-pixel band
    img = np.zeros((1, 20, 20), np.float32)
    img[0, m["nucleoli"]] = 5.0
    img[0, 12:18, 12:18] = np.arange(36, dtype=np.float32).reshape(6, 6)
    out = replace_nucleoli(img, m, rng=np.random.default_rng(0))
    assert (out[0, ~m["nucleoli"]] == img[0, ~m["nucleoli"]]).all()  # only the nucleoli change
    assert not (out[0, m["nucleoli"]] == 5.0).any()  # they hold cloned pixels now


def test_overlay_png(tmp_path):
    p = write_overlay(
        tmp_path / "o.png",
        np.random.default_rng(0).random((2, 16, 16)),
        np.linspace(-1, 1, 256).reshape(16, 16),
    )
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_cli_on_the_bundled_model(capsys, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime (cpu extra) is not installed")
    code = main(
        [
            "explain",
            "examples/screen/slide1",
            "--model",
            MODEL,
            "--out",
            str(tmp_path),
            "--window",
            "16",
            "--stride",
            "8",
            "--perturb",
            "nucleoli",
            "--device",
            "cpu",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 2 and all(r["method"] == "occlusion" for r in recs)
    for r in recs:
        if (
            importlib.util.find_spec("onnx") is not None
        ):  # 16/8 on 64 px: 17 % of the work -> incremental
            assert r["params"]["incremental"] is True and r["params"]["work_fraction"] < 0.35
        assert (tmp_path / r["overlay"].split("/")[-1]).is_file()
        maps = np.load(r["map"])
        assert maps.shape == (1, 64, 64)
        nuc = r["structures"][r["targets"][0]]["nucleoli"]
        assert 0 < nuc["area_fraction"] < 0.3
        assert r["after_nucleoli_replaced"] in ("hiPSC", "somatic")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["nuclei"] == 2 and "perturb_nucleoli" in summary
    code = main(
        [
            "explain",
            "examples/screen/slide1",
            "--model",
            MODEL,
            "--out",
            str(tmp_path / "w"),
            "--window",
            "16",
            "--stride",
            "8",
            "--no-incremental",
            "--device",
            "cpu",
            "--json",
        ]
    )
    whole = [json.loads(line) for line in capsys.readouterr()[0].splitlines()]
    assert code == 0 and [r["params"]["incremental"] for r in whole] == [False, False]
    for a, b in zip(recs, whole, strict=True):  # the same maps either way
        ma, mb = np.load(a["map"]), np.load(b["map"])
        assert np.abs(ma - mb).max() <= 1e-5 * np.abs(mb).max()
    code = main(
        [
            "explain",
            "examples/screen/slide1",
            "--model",
            MODEL,
            "--out",
            str(tmp_path / "x"),
            "--method",
            "cam",
        ]
    )
    assert code == 1 and "needs the PyTorch model" in capsys.readouterr().err


def test_explain_defaults_to_the_papers_window_in_proportion_and_refuses_a_whole_image_window(
    capsys, tmp_path
):
    pytest.importorskip("onnxruntime", reason="onnxruntime (cpu extra) is not installed")
    from ainu_engine.explain._run import default_window

    assert (
        default_window(512) == (64, 32)
        and default_window(64) == (8, 4)
        and default_window(768) == (96, 48)
    )
    assert (
        default_window(64, 16) == (16, 8)
        and default_window(64, 16, 3) == (16, 3)
        and default_window(4) == (1, 1)
    )
    code = main(
        [
            "explain",
            "examples/screen/slide1/hiPSC_0000.bin",
            "--model",
            MODEL,
            "--out",
            str(tmp_path / "d"),
            "--device",
            "cpu",
            "--json",
        ]
    )
    rec = json.loads(capsys.readouterr()[0])
    assert code == 0 and rec["params"]["window"] == [8, 8] and rec["params"]["stride"] == [4, 4]
    code = main(
        [
            "explain",
            "examples/screen/slide1/hiPSC_0000.bin",
            "--model",
            MODEL,
            "--out",
            str(tmp_path / "w"),
            "--window",
            "64",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "covers the whole 64 px input" in err and "default is 8" in err


def test_a_map_without_positive_attribution_is_null_in_json_and_said_in_text(
    capsys, tmp_path, monkeypatch
):
    """The structure shares of such a map are NaN: strict JSON files (null) and plain words."""
    pytest.importorskip("onnxruntime", reason="onnxruntime (cpu extra) is not installed")
    import ainu_engine.explain._structures as st

    real = st.structure_fractions

    def none_positive(m, masks):  # the real function on a map with no positive value
        return real(-np.abs(m), masks)

    monkeypatch.setattr(st, "structure_fractions", none_positive)

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} written to JSON"))

    code = main(
        [
            "explain",
            "examples/screen/slide1/hiPSC_0000.bin",
            "--model",
            MODEL,
            "--out",
            str(tmp_path / "a"),
            "--device",
            "cpu",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and "no positive attribution" in out and "nan" not in (out + err).lower()
    assert "no map with positive attribution" in err
    rec = strict((tmp_path / "a" / "explain.jsonl").read_text())
    assert rec["structures"]["hiPSC"]["nucleoli"]["positive_attribution_fraction"] is None
    summary = strict((tmp_path / "a" / "summary.json").read_text())
    assert summary["structures"]["label=hiPSC, target=hiPSC"]["nucleoli"]["n"] == 0
    code = main(
        [
            "explain",
            "examples/screen/slide1/hiPSC_0000.bin",
            "--model",
            MODEL,
            "--out",
            str(tmp_path / "b"),
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert (
        code == 0
        and strict(capsys.readouterr()[0])["structures"]["hiPSC"]["nucleoli"]["enrichment"] is None
    )


def test_attribution_colours_follow_the_paper_blue_for_evidence_for_the_class():
    import matplotlib

    from ainu_engine.explain._structures import ATTRIBUTION_CMAP

    cmap = matplotlib.colormaps[ATTRIBUTION_CMAP]
    r_pos, _, b_pos, _ = cmap(1.0)  # the largest positive attribution (vmax)
    r_neg, _, b_neg, _ = cmap(0.0)  # the most negative one (vmin)
    assert b_pos > r_pos and r_neg > b_neg
