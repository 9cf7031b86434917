"""The JBC neutrophil study (../shared/data/jbc-neutrophils, real N-STORM fields): the manifest
builder against the README's own table, every mapped channel present in its file, and per-file
channel maps in training manifests (read, selected, refused, rendered)."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

DATA = REPO.parent / "shared" / "data" / "jbc-neutrophils"
HERE = REPO / "docs" / "results" / "jbc-neutrophils"
pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason="the JBC neutrophil files live in ../shared/data/jbc-neutrophils"
)


def _builder():
    spec = importlib.util.spec_from_file_location("build_manifest", HERE / "build_manifest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _readme_table() -> dict[str, dict]:
    """The README's table (an independent, hand-written reading of the names): file -> mouse,
    condition and protein per channel."""
    rows = {}
    for line in (DATA / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].endswith(".txt"):
            f, mouse, cond, c561, c647, c488 = cells
            name = {"5-LO": "5lo", "cPLA2": "cpla2", "FLAP": "flap"}
            chans = {name[p]: c for p, c in ((c561, "561"), (c647, "647"), (c488, "405/488")) if p}
            rows[f] = {"group": mouse, "condition": cond, "channels": chans}
    return rows


def test_the_builder_reads_every_name_as_the_readme_does(tmp_path):
    table = _readme_table()
    assert len(table) == 21
    rows = _builder().build(DATA, tmp_path / "manifest.csv")
    assert len(rows) == 21
    for r in rows:
        want = table[Path(r["path"]).name]
        assert r["group"] == want["group"] and r["condition"] == want["condition"]
        got = dict(pair.split("=") for pair in r["channels"].split(";"))
        assert got == want["channels"], Path(r["path"]).name
        assert r["label"] == ("unstim" if want["condition"] == "unstim" else "activated")
    with open(tmp_path / "manifest.csv") as fh:
        assert next(csv.reader(fh)) == ["path", "label", "condition", "group", "channels",
                                        "acquisition"]  # fmt: skip


def test_the_committed_manifest_is_the_builders(tmp_path):
    _builder().build(DATA, tmp_path / "m.csv")
    ours = [r[1:] for r in csv.reader(open(tmp_path / "m.csv"))]  # paths differ by folder
    committed = [r[1:] for r in csv.reader(open(HERE / "manifest.csv"))]
    assert ours == committed


@pytest.mark.parametrize("bad", ["m4_lps_5lo561.txt", "m1_unstim_5lo562_cpla2647.txt",
                                 "m1_unstim_5lo_cpla2.txt", "notes.txt"])  # fmt: skip
def test_names_the_rules_do_not_read_are_refused(bad):
    with pytest.raises(ValueError, match=re.escape(bad)):
        _builder().parse_name(bad)


def test_every_mapped_channel_is_in_its_file():
    from ainu_engine.io import read

    for r in csv.DictReader(open(HERE / "manifest.csv")):
        locs = read(HERE / r["path"])
        names = set(locs.meta.channel_names.values())
        for pair in r["channels"].split(";"):
            protein, channel = pair.split("=")
            assert channel in names, (r["path"], protein, channel, names)


def _cpla2_manifest(tmp_path) -> Path:
    """The rows that image cPLA2, paths absolute."""
    out = tmp_path / "cpla2.csv"
    with open(HERE / "manifest.csv") as src, open(out, "w", newline="") as dst:
        rows = [r for r in csv.DictReader(src) if "cpla2=" in r["channels"]]
        for r in rows:
            r["path"] = str((HERE / r["path"]).resolve())
        w = csv.DictWriter(dst, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def test_a_manifest_of_channel_maps_selects_the_models_channels(tmp_path):
    pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    from ainu_engine.errors import InputError
    from ainu_engine.training.data import read_manifest

    m = read_manifest(_cpla2_manifest(tmp_path), channels=["cpla2"])
    assert m.channel_names == ("cpla2",) and len(m) == 16  # m1 2, m2 10, m3 4 fields
    assert {c["cpla2"] for c in m.channel_maps} == {"561", "647"}
    assert set(m.groups) == {"m1", "m2", "m3"}
    two = r"names \['cpla2', 'flap'\]; the model takes \['cpla2', '5lo'\]"  # a two-protein model
    with pytest.raises(InputError, match=two):
        read_manifest(_cpla2_manifest(tmp_path), channels=["cpla2", "5lo"])
    # the study's manifest: rows without cPLA2 are refused, naming both lists
    with pytest.raises(InputError, match=r"names \['5lo', 'flap'\]; the model takes \['cpla2'\]"):
        read_manifest(HERE / "manifest.csv", channels=["cpla2"])
    with pytest.raises(InputError, match="say which the model takes"):
        read_manifest(HERE / "manifest.csv")


def test_each_row_is_rendered_with_its_own_channel(tmp_path):
    """cPLA2 is channel 647 in one file and 561 in another: each render holds the
    localizations of its own file's cPLA2 channel."""
    pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    from ainu_engine.io import read
    from ainu_engine.render import RenderSpec
    from ainu_engine.training.data import RenderCache, load_nuclei, read_manifest
    from ainu_engine.training.train import _model_channels

    m = read_manifest(_cpla2_manifest(tmp_path), channels=["cpla2"])
    spec = _model_channels(m, RenderSpec(pixel_nm=100, sigma_nm=100, size=64))
    data = load_nuclei(m, spec, RenderCache(tmp_path / "cache"))
    assert not data.failed and len(data.images) == 16
    for row in (0, 5):
        locs = read(m.files[row])
        want = int(np.sum(locs.channel == [k for k, v in locs.meta.channel_names.items()
                                           if v == m.channel_maps[row]["cpla2"]][0]))  # fmt: skip
        assert data.stats[row]["n_localizations"] == [want]
    with pytest.raises(ValueError, match="name the model's channels"):
        _model_channels(m, RenderSpec(channels=(1,)))


def test_a_channel_map_column_is_checked_row_by_row(tmp_path):
    pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    from ainu_engine.errors import InputError
    from ainu_engine.training.data import read_manifest

    f = (HERE / "manifest.csv").parent / next(csv.DictReader(open(HERE / "manifest.csv")))["path"]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"path,label,channels\n{f.resolve()},a,cpla2=647\n{f.resolve()},b,\n")
    with pytest.raises(InputError, match="line 3.*empty channel map"):
        read_manifest(bad)
    bad.write_text(f"path,label,channels\n{f.resolve()},a,cpla2\n{f.resolve()},b,x=1\n")
    with pytest.raises(InputError, match="line 2.*channels: expected MODELCH=FILECH"):
        read_manifest(bad)


def test_fields_expand_into_their_cells_and_each_cell_renders_its_own_channel(tmp_path,
                                                                             monkeypatch):
    """Two real fields split as screen splits them (detection on all channels pooled): one row
    per cell with the field's label, mouse and channel map; each cell's render holds that
    cell's localizations of the field's own cPLA2 channel."""
    pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    from ainu_engine.io import read
    from ainu_engine.nuclei import split_nuclei
    from ainu_engine.render import RenderSpec
    from ainu_engine.training.data import (
        Manifest,
        RenderCache,
        expand_nuclei,
        load_nuclei,
        read_manifest,
    )
    from ainu_engine.training.train import _model_channels

    m = read_manifest(_cpla2_manifest(tmp_path), channels=["cpla2"])
    two = [0, 5]  # m1 unstim (cPLA2 in 647) and an m2 field with cPLA2 in 561
    sub = Manifest(tuple(m.files[i] for i in two), tuple(m.labels[i] for i in two), m.classes,
                   tuple(m.groups[i] for i in two), m.channel_names, m.path, m.sha256,
                   tuple(m.channel_maps[i] for i in two))  # fmt: skip
    seen = []
    cells = expand_nuclei(sub, mode="detect", on_file=lambda p, n: seen.append(n))
    counts = [sum(1 for _ in split_nuclei(read(f), mode="detect")) for f in sub.files]
    assert seen == counts and len(cells) == sum(counts) and min(counts) >= 2
    assert len(set(zip(cells.files, cells.nucleus_ids, strict=True))) == len(cells)
    for k, f in enumerate(cells.files):
        i = sub.files.index(f)
        assert (cells.labels[k], cells.groups[k], cells.channel_maps[k]) == (
            sub.labels[i], sub.groups[i], sub.channel_maps[i])  # fmt: skip
    spec = _model_channels(cells, RenderSpec(pixel_nm=50, sigma_nm=50, size=64))
    import ainu_engine.nuclei as nuclei_module

    splits = []
    real_split = nuclei_module.split_nuclei

    def counting_split(*args, **kw):
        splits.append(1)
        return real_split(*args, **kw)

    monkeypatch.setattr(nuclei_module, "split_nuclei", counting_split)
    data = load_nuclei(cells, spec, RenderCache(tmp_path / "cache"))
    monkeypatch.undo()
    assert not data.failed and len(data.images) == len(cells)
    assert len(splits) == 2  # each field is read and split once, not once per cell
    for k in (0, len(cells) - 1):
        locs = read(cells.files[k])
        (n,) = [n for n in split_nuclei(locs, mode="detect") if n.id == cells.nucleus_ids[k]]
        cid = [c for c, v in locs.meta.channel_names.items()
               if v == cells.channel_maps[k]["cpla2"]][0]  # fmt: skip
        assert data.stats[k]["n_localizations"] == [int(np.sum(n.locs.channel == cid))]
        assert cells.item_name(k).endswith("#" + cells.nucleus_ids[k])
    with pytest.raises(ValueError, match="mode must be"):
        expand_nuclei(sub, mode="file")


def test_train_refuses_an_unknown_nuclei_mode(capsys, tmp_path):
    pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    from ainu_engine.cli import main

    code = main(["train", str(HERE / "manifest-cpla2.csv"), "--out", str(tmp_path / "run"),
                 "--channels", "cpla2", "--nuclei", "blobs"])  # fmt: skip
    assert code == 2 and "--nuclei" in capsys.readouterr().err


def _tiny_cpla2_model(path: Path) -> Path:
    """A classifier ONNX file built without torch (logits from the image's mean), with the
    metadata export writes: one channel named cpla2, two classes."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from ainu_engine.model import ModelInfo
    from ainu_engine.render import RenderSpec

    w = numpy_helper.from_array(np.array([[1.0, -1.0]], np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
         helper.make_node("Unsqueeze", ["m", "ax"], ["m2"]),
         helper.make_node("MatMul", ["m2", "w"], ["logits"])],
        "mean", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[w, numpy_helper.from_array(np.array([1], np.int64), "ax")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = RenderSpec(pixel_nm=50, sigma_nm=50, size=64, channels=(0,))
    info = ModelInfo(classes=("activated", "unstim"), input_size=64, channel_names=("cpla2",),
                     render_spec=spec)  # fmt: skip
    for k, v in info.to_metadata().items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, path)
    return path


def test_evaluate_takes_the_channel_map_and_the_cells_of_each_field(tmp_path):
    pytest.importorskip("sklearn", reason="evaluate's metrics need scikit-learn")
    pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    from ainu_engine.training.data import RenderCache
    from ainu_engine.training.evaluate import evaluate

    model = _tiny_cpla2_model(tmp_path / "m.onnx")
    rows = list(csv.DictReader(open(_cpla2_manifest(tmp_path))))
    two = tmp_path / "two.csv"
    with open(two, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([rows[0], rows[-1]])  # m1 activated, cPLA2 in 647; m3 unstim, in 561
    m = evaluate(model, two, tmp_path / "eval", cache=RenderCache(tmp_path / "cache"),
                 backend="onnxruntime", device="cpu", nuclei="detect")  # fmt: skip
    preds = list(csv.DictReader(open(tmp_path / "eval" / "predictions.csv")))
    assert m["n"] == len(preds) >= 4 and all("#det" in p["path"] for p in preds)
    assert {Path(p["path"].split("#")[0]).name for p in preds} == {
        Path(rows[0]["path"]).name, Path(rows[-1]["path"]).name}  # fmt: skip
    assert {p["label"] for p in preds} == {"activated", "unstim"}


@pytest.mark.parametrize(("field", "whole", "cut"), [
    # counts read off docs/results/jbc-neutrophils/overview/*.png (looked at: one outline per
    # visible cell; cut = red, touching the field's edge)
    ("m1_unstim_5lo561_cpla2647", 7, 0),
    ("m2_c5a_5lo561_cpla2_650", 3, 2),
])  # fmt: skip
def test_the_cells_of_a_field_are_found_with_neutrophil_limits(field, whole, cut):
    spec = importlib.util.spec_from_file_location("jbc_cells", HERE / "cells.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (row,) = [r for r in csv.DictReader(open(HERE / "manifest.csv")) if field in r["path"]]
    _, cells = mod.cells_of(row)
    assert (sum(not n.at_edge for n in cells), sum(n.at_edge for n in cells)) == (whole, cut)
    assert all(20.0 <= mod._area(n) <= 200.0 for n in cells if not n.at_edge)


def _rows(tmp_path, names: list[str]) -> Path:
    """A manifest of the study's rows whose files are ``names`` (paths absolute)."""
    out = tmp_path / "rows.csv"
    rows = list(csv.DictReader(open(HERE / "manifest.csv")))
    keep = [dict(r, path=str((HERE / r["path"]).resolve()))
            for n in names for r in rows if Path(r["path"]).stem == n]  # fmt: skip
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    return out


#: cPLA2 in 647 (m1), cPLA2 in 561 (m3), and a field without cPLA2 (5-LO + FLAP)
_MIXED = ["m1_unstim_5lo561_cpla2647", "m3_gmc5a_cpla2561_flap648", "m3_unstim_5lo651_flap648"]


def _cpla2_counts(name: str) -> tuple[int, int]:
    """(localizations of the file's cPLA2 channel, of its other channels)."""
    from ainu_engine.io import read

    (row,) = [r for r in csv.DictReader(open(HERE / "manifest.csv")) if name in r["path"]]
    want = dict(p.split("=") for p in row["channels"].split(";"))["cpla2"]
    locs = read(HERE / row["path"])
    ids = {v: k for k, v in locs.meta.channel_names.items()}
    n = int(np.sum(locs.channel == ids[want]))
    return n, locs.n - n


def test_screen_takes_each_manifest_rows_channel_map(tmp_path):
    """Each field's cells are rendered from its own cPLA2 channel; the field that has none is an
    error naming both lists, and the screen goes on."""
    pq = pytest.importorskip("pyarrow.parquet")
    from ainu_engine.screen import screen

    model = _tiny_cpla2_model(tmp_path / "m.onnx")
    s = screen([_rows(tmp_path, _MIXED)], model, tmp_path / "out", nuclei="detect",
               backend="onnxruntime", device="cpu", report=False)  # fmt: skip
    t = pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()
    by_file: dict[str, int] = {}
    for r in t:
        by_file[Path(r["source"]).stem] = by_file.get(Path(r["source"]).stem, 0) + r["n_loc_cpla2"]
    assert set(by_file) == set(_MIXED[:2])
    for name, n in by_file.items():
        cpla2, other = _cpla2_counts(name)
        # the cells hold most of the field's cPLA2 localizations and none of another channel
        assert 0.5 * cpla2 < n <= cpla2, (name, n, cpla2, other)
    errors = list(csv.DictReader(open(tmp_path / "out" / "errors.csv")))
    assert len(errors) == 1 == s.n_failed
    assert _MIXED[2] in errors[0]["path"]
    assert "maps 5lo, flap; the model takes cpla2" in errors[0]["error"]


def test_live_explain_and_clusters_take_the_rows_channel_maps(tmp_path):
    from ainu_engine.clusters import run_clusters
    from ainu_engine.explain import explain_files
    from ainu_engine.live import replay_file
    from ainu_engine.render import manifest_channel_maps

    model = _tiny_cpla2_model(tmp_path / "m.onnx")
    manifest = _rows(tmp_path, _MIXED)
    maps = manifest_channel_maps([manifest])
    assert [m["cpla2"] for m in maps.values() if "cpla2" in m] == ["647", "561"]

    from ainu_engine import Classifier

    with Classifier.load(model, backend="onnxruntime", device="cpu", render_device="cpu",
                         file_channel_maps=maps) as clf:  # fmt: skip
        path = next(p for p in maps if _MIXED[1] in p)
        res = list(replay_file(path, clf, nuclei="detect", frames_per_update=20000))
        assert res and all(r.updates for r in res)
        assert all(len(r.final.n_localizations) == 1 for r in res)  # the model's one channel
        assert sum(r.final.n_localizations[0] for r in res) <= _cpla2_counts(_MIXED[1])[0]
        from ainu_engine.errors import ChannelError

        with pytest.raises(ChannelError, match="the model takes cpla2"):
            list(replay_file(next(p for p in maps if _MIXED[2] in p), clf, nuclei="detect"))

    s = explain_files([manifest], model, tmp_path / "explain", nuclei="detect", limit=2,
                      window=32, stride=32, backend="onnxruntime", device="cpu")  # fmt: skip
    assert s["nuclei"] == 2 and not s["failed"]

    doc = run_clusters([manifest], tmp_path / "clusters", channel="cpla2", nuclei="detect",
                       eps_nm=100, min_samples=5, area_limits_um2=(20.0, 200.0))  # fmt: skip
    nuclei = list(csv.DictReader(open(tmp_path / "clusters" / "nuclei.csv")))
    used = {}
    for r in nuclei:
        used[Path(r["source"]).stem] = used.get(Path(r["source"]).stem, 0) + int(
            r["n_localizations"])
    for name in _MIXED[:2]:
        assert 0 < used[name] <= _cpla2_counts(name)[0]
    assert len(doc["failed"]) == 1 and "cpla2" in doc["failed"][0]["error"]


def test_explain_measures_the_rim_of_real_cells_and_replaces_it(tmp_path):
    from ainu_engine.explain import explain_files

    model = _tiny_cpla2_model(tmp_path / "m.onnx")
    s = explain_files([_rows(tmp_path, _MIXED[:1])], model, tmp_path / "x", nuclei="detect",
                      window=16, stride=16, backend="onnxruntime", device="cpu", rim_nm=1000,
                      perturb="rim")  # fmt: skip
    rim = s["structures"]["label=None, target=activated"]["rim"]
    assert rim["n"] == s["nuclei"] >= 5  # every cell of the field has an outline
    assert 0.2 < rim["area_fraction_mean"] < 0.7  # a 1 µm band of a ~10 µm nucleus
    assert s["perturb_rim"]["n"] == s["nuclei"]
    assert set(s["perturb_rim"]["mean_probability"]) == {"activated", "unstim"}


def _analysis():
    spec = importlib.util.spec_from_file_location("jbc_analyze", HERE / "analyze.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_permuted_manifests_shuffle_labels_among_each_mouses_fields(tmp_path):
    a = _analysis()
    a.permuted_manifests(tmp_path, 3)
    orig = list(csv.DictReader(open(HERE / "manifest-cpla2.csv")))
    for k in (1, 2, 3):
        perm = list(csv.DictReader(open(tmp_path / f"perm-{k}.csv")))
        assert [Path(r["path"]).name for r in perm] == [Path(r["path"]).name for r in orig]
        for g in ("m1", "m2", "m3"):  # each mouse keeps its class mix
            assert sorted(r["label"] for r in perm if r["group"] == g) == sorted(
                r["label"] for r in orig if r["group"] == g)  # fmt: skip
    a.channel_manifest(tmp_path / "ch.csv")
    ch = list(csv.DictReader(open(tmp_path / "ch.csv")))
    assert {r["label"] for r in ch} == {"ch561", "ch647"}
    # the 561 files, "cpla2651" (a typo for 561, the README says) among them
    assert sorted(Path(r["path"]).stem.split("_", 2)[2] for r in ch if r["label"] == "ch561") == [
        "5lo488_cpla2561_flap647", "cpla2561_flap647", "cpla2561_flap647", "cpla2561_flap648",
        "cpla2561_flap648", "cpla2651_flap647"]  # fmt: skip


def test_scores_count_fields_and_cells_and_shuffles_keep_a_fields_cells_together():
    a = _analysis()
    a.N_BOOT = 200  # the CIs' resamples: enough for a test
    rng = np.random.default_rng(0)
    rows = [{"mouse": m, "field": f"{m}f{k}", "cell": str(c), "label": lab,
             "p": float(rng.uniform(0.6, 1) if lab == "activated" else rng.uniform(0, 0.4))}
            for m in ("m1", "m2") for k, lab in enumerate(["activated", "unstim"] * 2)
            for c in range(5)]  # fmt: skip
    s = a.scores(rows)
    assert (s["cells"], s["fields"], s["accuracy"], s["auc"]) == (40, 8, 1.0, 1.0)
    assert s["field_calls"] == "8/8" and s["ci_single_field_strata"] == []
    flipped = [{**r, "p": 1 - r["p"]} for r in rows]
    assert a.scores(flipped)["balanced_accuracy"] == 0.0
    sh = a._shuffled(rows, np.random.default_rng(1))
    for f in {r["field"] for r in sh}:
        assert len({r["label"] for r in sh if r["field"] == f}) == 1
    one = [r for r in rows if r["field"] in ("m1f0", "m1f1")]  # one field per state
    assert a.scores(one)["ci_single_field_strata"] == ["m1/+", "m1/-"]


def test_the_precision_gate_rebuilds_a_runs_cells_with_their_channel_maps(tmp_path):
    """export --precision fp16/int8 renders the run's held-out nuclei again from data.csv: the
    cells of fields, each from its own row's channel."""
    pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    from types import SimpleNamespace

    from ainu_engine.render import RenderSpec
    from ainu_engine.training.data import RenderCache, load_nuclei
    from ainu_engine.training.precision import _run_manifest

    rows = [{"path": str((HERE / r["path"]).resolve()), "label": r["label"], "nucleus": "det000",
             "channels": r["channels"]}
            for r in csv.DictReader(open(HERE / "manifest.csv"))
            if Path(r["path"]).stem in _MIXED[:2]]  # fmt: skip
    info = SimpleNamespace(channel_names=("cpla2",), training_stats={
        "nuclei": {"mode": "detect", "area_limits_um2": [20.0, 200.0]}})  # fmt: skip
    m = _run_manifest(rows, ("activated", "unstim"), info)
    assert [mp["cpla2"] for mp in m.channel_maps] == ["647", "561"]
    assert m.nucleus_ids == ("det000", "det000") and m.nuclei == ("detect", (20.0, 200.0))
    data = load_nuclei(m, RenderSpec(pixel_nm=100, sigma_nm=100, size=32, channels=(0,)),
                       RenderCache(tmp_path / "cache"))  # fmt: skip
    assert len(data) == 2 and not data.failed


@pytest.mark.parametrize("protein", ["cpla2", "5lo"])
def test_the_final_models_screen_fields_of_the_study_with_each_rows_map(tmp_path, protein):
    """`ainu-engine screen MANIFEST --model models/PROTEIN.onnx --nuclei detect`: the model
    carries its protein and how its cells were detected; each field's own channel is read."""
    from ainu_engine.cli import main
    from ainu_engine.model import read_model_info

    model = HERE / "models" / f"{protein}.onnx"
    info = read_model_info(model)
    assert info.channel_names == (protein,) and set(info.classes) == {"activated", "unstim"}
    assert info.training_stats["nuclei"] == {"mode": "detect", "area_limits_um2": [20.0, 200.0]}
    rows = [r for r in csv.DictReader(open(HERE / f"manifest-{protein}.csv"))]
    # a field where the protein is in 561 and one where it is in 647 (or 405/488 for 5-LO)
    pick = [next(r for r in rows if channel in r["channels"].split(";")) for channel in
            ({"cpla2": ("cpla2=561", "cpla2=647"), "5lo": ("5lo=561", "5lo=405/488")}[protein])]
    m = tmp_path / "m.csv"
    with open(m, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([dict(r, path=str((HERE / r["path"]).resolve())) for r in pick])
    out = tmp_path / "out"
    assert main(["screen", str(m), "--model", str(model), "--nuclei", "detect", "--out",
                 str(out), "--device", "cpu", "--gallery", "0"]) == 0  # fmt: skip
    import pyarrow.parquet as pq

    t = pq.read_table(out / "results.parquet").to_pylist()
    assert {Path(r["source"]).name for r in t} == {Path(r["path"]).name for r in pick}
    assert all(r[f"n_loc_{protein}"] > 0 for r in t)
