"""``ainu-engine widefield``: simulate → segment → features → train, on the command line, with
a bad file in the batch (reported in one line, the rest done)."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
import tifffile

from ainu_engine.cli import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_simulate_segment_features_train(capsys, tmp_path):
    data, seg = tmp_path / "data", tmp_path / "seg"
    code, out, err = run(capsys, "widefield", "simulate", data, "--classes", "NIH3T3,BJ",
                         "--n-fields", "4", "--n-sets", "2", "--seed", "2", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["fields"] == 8
    code, _, err = run(capsys, "widefield", "simulate", data)
    assert code == 1 and "not empty" in err
    # a manifest plus a broken file and a file without a pixel size
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    tifffile.imwrite(tmp_path / "bare.tif", tifffile.imread(data / "fields" / "BJ_s0_0000.tif"))
    bad = [tmp_path / "broken.tif", tmp_path / "bare.tif"]
    code, out, err = run(capsys, "widefield", "segment", data / "manifest.csv", *bad, "--out", seg,
                         "--json")  # fmt: skip
    assert code == 1
    lines = [json.loads(x) for x in out.splitlines()]
    errors = {x["path"].split("/")[-1]: x["error"] for x in lines if "error" in x}
    assert set(errors) == {"broken.tif", "bare.tif"} and "pixel size" in errors["bare.tif"]
    assert len([x for x in err.splitlines() if x.startswith("error:")]) == 2
    summary = lines[-1]
    assert summary["files"] == 10 and summary["failed"] == 2 and summary["kept"] > 10
    with open(seg / "nuclei.csv") as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for r in rows if r["reason"] == "kept"]
    assert len(kept) == summary["kept"] == len(tifffile.imread(seg / "crops.tif"))
    assert {r["label"] for r in kept} == {"NIH3T3", "BJ"}
    # features from the segmentation folder
    feats = tmp_path / "f.parquet"
    code, out, err = run(capsys, "widefield", "features", seg, "--out", feats, "--json")
    assert code == 0, err
    t = pq.read_table(feats)
    assert t.num_rows == len(kept) and len([c for c in t.column_names if "_" in c]) >= 104
    assert b"assumed" in t.schema.metadata[b"ainu_engine.hc_rule"]
    # a linear model from the features table, group-disjoint
    code, out, err = run(capsys, "widefield", "train", feats, "--model", "rf", "--out",
                         tmp_path / "rf", "--json")  # fmt: skip
    assert code == 0, err
    s = json.loads(out.splitlines()[-1])
    assert s["model"] == "rf" and s["features"] == 104 and s["val_accuracy"] >= 0.8
    m = json.loads((tmp_path / "rf" / "metrics.json").read_text())
    assert [r["removed"] for r in m["ablation"]] == ["none", "shape", "lbp", "pftas", "zernike"]
    assert (tmp_path / "rf" / "confusion.png").stat().st_size > 1000
    code, _, err = run(
        capsys, "widefield", "train", feats, "--model", "knn", "--out", tmp_path / "x"
    )
    assert code == 2 and "--model" in err


@pytest.mark.slow
def test_cnn_train_export_and_screen(capsys, tmp_path):
    """A CI-size CNN and a patch CNN: trained, exported to ONNX (parity-checked), then run by
    ``widefield screen`` through the engine's backend; a widefield model is refused by the SMLM
    classifier."""
    import numpy as np

    from ainu_engine import Classifier
    from ainu_engine.errors import InputError
    from ainu_engine.model import read_model_info
    from ainu_engine.scenmed import WidefieldClassifier, read_segmentation

    data, seg = tmp_path / "data", tmp_path / "seg"
    assert run(capsys, "widefield", "simulate", data, "--n-fields", "3", "--seed", "4")[0] == 0
    assert run(capsys, "widefield", "segment", data / "manifest.csv", "--out", seg)[0] == 0
    for model, extra in (("cnn", []), ("patches", ["--stride", "32", "--balanced-batches"])):
        code, out, err = run(capsys, "widefield", "train", seg, "--model", model, "--width", "4",
                             "--hidden", "16", "--epochs", "2", "--no-groups", "--val-fraction",
                             "0.3", "--out", tmp_path / model, "--json", *extra)  # fmt: skip
        assert code == 0, err
        s = json.loads(out.splitlines()[-1])
        assert s["onnx"]["bytes"] > 1000 and s["onnx"]["parity"]
        assert s["balanced_batches"] == (model == "patches")
        info = read_model_info(tmp_path / model / "model.onnx")
        assert info.preprocessing["mode"] == "widefield" and info.classes == ("BJ", "NIH3T3")
        assert info.input_size == (128 if model == "cnn" else 32)
        with pytest.raises(InputError, match="widefield"):
            Classifier.load(tmp_path / model / "model.onnx")
    # the exported crop model gives the same probabilities through ONNX Runtime as in torch
    import torch

    from ainu_engine.training.checkpoint import load_widefield_model

    net, ck = load_widefield_model(tmp_path / "cnn" / "model.pt")
    assert ck["classes"] == ["BJ", "NIH3T3"] and ck["patch"] is None and not net.training
    table = read_segmentation(seg)
    crops = np.stack(table.crops[:3])
    with WidefieldClassifier.load(tmp_path / "cnn" / "model.onnx") as clf:
        p = np.array([[c.probabilities[k] for k in clf.classes] for c in clf.classify(crops)])
    with torch.inference_mode():
        ref = torch.softmax(net(torch.from_numpy(crops[:, None] / 4095.0).float()), 1).numpy()
    np.testing.assert_allclose(p, ref, atol=1e-4)
    # screen: every object in results.csv, maps for every called nucleus, a report
    scr = tmp_path / "scr"
    code, out, err = run(capsys, "widefield", "screen", data / "fields", "--model",
                         tmp_path / "patches" / "model.onnx", "--out", scr, "--explain",
                         "--json")  # fmt: skip
    assert code == 0, err
    s = json.loads(out.splitlines()[-1])
    with open(scr / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    called = [r for r in rows if r["reason"] == "kept"]
    assert len(called) == s["nuclei"] == sum(s["calls"].values()) + s["no_call"] > 0
    # a nucleus without a usable patch gets no call (and is counted), never a default class
    assert sum(r["call"] == "" for r in called) == s["no_call"]
    assert all(r["call"] in ("BJ", "NIH3T3", "") for r in called)
    assert len(list((scr / "maps").glob("*.npy"))) == len(called)
    assert "Widefield screen" in (scr / "report.html").read_text()
