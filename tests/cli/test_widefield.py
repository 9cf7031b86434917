"""``ainu-engine widefield``: simulate → segment → features → train, on the command line, with
a bad file in the batch (reported in one line, the rest done)."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
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
