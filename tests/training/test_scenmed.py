"""SCENMED on the training side: the widefield simulator, the fair split, linear models and the
ablation table, the CNNs (shapes, parameter counts, a CI-size run that learns easy classes)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ainu_engine.scenmed import pixel_um_of, read_manifest, segment_files
from ainu_engine.simulate import (
    WIDEFIELD_CLASSES,
    effective_class,
    simulate_widefield,
)
from ainu_engine.training.scenmed import ablation, fair_split, fit_linear, make_linear


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    """NIH/3T3- vs BJ-like fields, segmented (the paper's easiest pair)."""
    out = tmp_path_factory.mktemp("wf")
    simulate_widefield(out, classes=["NIH3T3", "BJ"], n_fields=8, n_sets=4, seed=11, hdf5=True)
    table = segment_files(read_manifest(out / "manifest.csv"))
    return out, table


def test_simulator_writes_fields_truth_and_layouts(easy, tmp_path):
    import h5py
    import tifffile

    out, table = easy
    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 16 and {r["label"] for r in rows} == {"NIH3T3", "BJ"}
    assert len({r["group"] for r in rows}) == 8  # 4 image sets a class
    f = out / "fields" / "BJ_s0_0000.tif"
    img = tifffile.imread(f)
    assert img.shape == (512, 512) and img.dtype == np.uint16 and img.max() <= 4095
    assert pixel_um_of(f) == pytest.approx(0.215)
    lab = tifffile.imread(out / "truth" / "BJ_s0_0000_labels.tif")
    hc = tifffile.imread(out / "truth" / "BJ_s0_0000_hc.tif").astype(bool)
    assert lab.max() >= 1 and (hc <= (lab > 0)).all()  # heterochromatin lies inside nuclei
    with h5py.File(out / "scenmed.h5") as h:
        assert h["images"].shape == (16, 512, 512) and len(h["CellType"]) == 16
    # the same seed writes the same bytes
    again = tmp_path / "again"
    simulate_widefield(again, classes=["NIH3T3", "BJ"], n_fields=8, n_sets=4, seed=11)
    assert _sha(again / "fields" / "BJ_s0_0000.tif") == _sha(f)
    assert _sha(again / "nuclei.csv") == _sha(out / "nuclei.csv")
    # the segmentation keeps most simulated nuclei
    assert len(table.kept) >= 40


def test_difficulty_one_makes_the_classes_identical():
    a, b = effective_class("NIH3T3", 1.0), effective_class("MCF7", 1.0)
    for f in ("major_axis_um", "n_chromocentres", "chromocentre_gain", "rim_gain"):
        assert getattr(a, f) == pytest.approx(getattr(b, f))
    assert effective_class("BJ", 0.0) == WIDEFIELD_CLASSES["BJ"]
    with pytest.raises(ValueError, match="unknown widefield class"):
        effective_class("HeLa")


def test_fair_split_counts_and_groups():
    y = np.array([0] * 60 + [1] * 40)
    tr, va = fair_split(y, fraction=0.15, seed=0)
    assert np.bincount(y[va]).tolist() == [7, 7]  # floor(0.15 * 100 / 2) per class
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 100
    g = np.array([f"s{i % 5}_{c}" for i, c in enumerate(y)])
    tr, va = fair_split(y, g, fraction=0.15, seed=1)
    assert not set(g[tr]) & set(g[va]) and set(y[va]) == {0, 1}
    with pytest.raises(ValueError, match="one group"):
        fair_split(y, np.where(y == 0, "a", "b"))


def test_linear_models_and_ablation_on_separable_features():
    rng = np.random.default_rng(0)
    names = ["shape_area", "lbp_00", "lbp_01", "pftas_00", "zernike_00"]
    y = np.repeat([0, 1], 50)
    X = rng.normal(size=(100, 5))
    X[:, 1] += 4 * y  # only the LBP family carries the class
    tr, va = fair_split(y, fraction=0.3, seed=0)
    for name in ("logreg", "svm", "rf"):
        _, r = fit_linear(X, y, tr, va, name)
        assert r["val_accuracy"] >= 0.9, name
    rows = ablation(X, y, names, tr, va, model="logreg")
    assert [r["removed"] for r in rows] == ["none", "shape", "lbp", "pftas", "zernike"]
    drop = {r["removed"]: r["delta_val"] for r in rows[1:]}
    assert drop["lbp"] <= -0.2 and all(abs(v) < 0.1 for k, v in drop.items() if k != "lbp")
    with pytest.raises(ValueError, match="model must be"):
        make_linear("knn")
    _, r = fit_linear(X, y, tr, va, "rf", search=3)
    assert set(r["best_params"]) == {"n_estimators", "max_depth", "min_samples_leaf",
                                     "max_features"} and r["val_accuracy"] >= 0.9  # fmt: skip


def test_vgg_scenmed_and_patchnet_follow_the_specification():
    import torch

    from ainu_engine.training.models import create_model

    def n(m):
        return sum(p.numel() for p in m.parameters())

    paper = create_model("vgg_scenmed", in_chans=1, num_classes=2)
    code = create_model("vgg_scenmed", in_chans=1, num_classes=2, width=64, hidden=4096)
    patch = create_model("vgg_scenmed", in_chans=1, num_classes=2, image_size=32)
    # the specification's measured sizes (§5): 19.7 M, 158.6 M, 4.0 M
    assert round(n(paper) / 1e6, 1) == 19.7 and round(n(code) / 1e6, 1) == 158.6
    assert round(n(patch) / 1e6, 1) == 4.0
    convs = [m for m in paper.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 10 and all(c.kernel_size == (3, 3) for c in convs)
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 128, 256, 256, 256]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in paper.features) == 4
    assert sum(isinstance(m, torch.nn.PReLU) for m in paper.features) == 10
    f = paper.forward_features(torch.zeros(2, 1, 128, 128))
    assert f.shape == (2, 256, 8, 8) and paper.penultimate(f).shape == (2, 1024)
    pn = create_model("patchnet_scenmed", in_chans=1, num_classes=2, image_size=11)
    assert pn.forward_features(torch.zeros(1, 1, 11, 11)).shape[-2:] == (6, 6)
    assert pn(torch.zeros(3, 1, 11, 11)).shape == (3, 2)


@pytest.mark.slow
def test_a_ci_size_cnn_learns_the_easy_pair(easy):
    from ainu_engine.training.scenmed import penultimate_features, train_cnn, tsne

    _, table = easy
    kept = table.kept
    y = np.array([r["label"] == "BJ" for r in kept], int)
    g = np.array([r["group"] for r in kept])
    crops = np.stack([table.crops[r["crop"]] for r in kept])
    tr, va = fair_split(y, g, fraction=0.3, seed=0)
    res = train_cnn(crops, y, tr, va, width=8, hidden=64, epochs=25, patience=25, lr=1e-3,
                    batch_size=16, threads=2)  # fmt: skip
    assert res.val_accuracy >= 0.9 and res.train_accuracy >= 0.9
    xy = tsne(penultimate_features(res.model, crops), seed=0)
    assert xy.shape == (len(crops), 2)
    np.testing.assert_allclose(xy, tsne(penultimate_features(res.model, crops), seed=0))


@pytest.mark.slow
def test_hc_ec_orderings_of_the_paper_hold_on_the_simulator(tmp_path):
    """BJ < MCF10A and BJ < MCF7 (p < 1e-4, Student's t) at n >= 90 nuclei a class (the paper:
    BJ 134, MCF10A 156, MCF7 112), with the assumed threshold rule."""
    from ainu_engine.scenmed import compare_ratios, hc_ec_ratio

    simulate_widefield(tmp_path, classes=["BJ", "MCF10A", "MCF7"], n_fields=36, n_sets=2, seed=5)
    table = segment_files(read_manifest(tmp_path / "manifest.csv"))
    hc: dict[str, list] = {}
    for r in table.kept:
        hc.setdefault(r["label"], []).append(hc_ec_ratio(table.crops[r["crop"]])["hc_ec"])
    rows = {(r["a"], r["b"]): r for r in compare_ratios(hc)}
    for other in ("MCF10A", "MCF7"):
        r = rows[("BJ", other)]
        assert r["n_a"] >= 90 and r["n_b"] >= 90, r
        assert r["mean_a"] < r["mean_b"] and r["student_p"] < 1e-4, (other, r)
