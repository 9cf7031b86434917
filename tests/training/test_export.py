"""Export: one self-contained ONNX file with a dynamic batch, checked against PyTorch, whose
metadata round-trips; evaluate and the CLI commands on top of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")
onnx = pytest.importorskip("onnx", reason="the train extra (onnx) is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (cpu extra) is not installed")

from ainu_engine.cli import main  # noqa: E402
from ainu_engine.errors import InputError, OutputError, ParityError  # noqa: E402
from ainu_engine.model import ModelInfo, read_model_info  # noqa: E402
from ainu_engine.onnx_session import ort_session  # noqa: E402
from ainu_engine.render import RenderSpec  # noqa: E402
from ainu_engine.simulate import Observation, simulate_dataset  # noqa: E402
from ainu_engine.training.checkpoint import load_checkpoint  # noqa: E402
from ainu_engine.training.data import RenderCache, read_manifest  # noqa: E402
from ainu_engine.training.export import export_onnx  # noqa: E402
from ainu_engine.training.train import TrainConfig, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("export")
    manifest = simulate_dataset(
        root / "data",
        classes=("hiPSC", "somatic"),
        n_per_class=6,
        channels=("polII", "h3"),
        observation=Observation(locs_per_channel=4000),
        seed=4,
    )
    spec = RenderSpec(pixel_nm=150, sigma_nm=120, size=48, channels=(1, 2))
    train(
        read_manifest(manifest),
        root / "run",
        spec=spec,
        cache=RenderCache(root / "cache", device="cpu"),
        config=TrainConfig(arch="small_cnn", epochs=2, patience=2, batch_size=4, folds=0, seed=0),
    )
    yield root, manifest, spec
    torch.set_num_threads(before)


def test_export_is_self_contained_checked_and_described(run, tmp_path):
    root, _, spec = run
    out = tmp_path / "model.onnx"
    r = export_onnx(root / "run" / "best.pt", out)
    assert r.comparison.passed and r.comparison.max_abs <= 1e-4 and r.comparison.same_argmax
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no external-data file
    m = onnx.load(out)
    onnx.checker.check_model(m, full_check=True)
    assert all(init.data_location != onnx.TensorProto.EXTERNAL for init in m.graph.initializer)
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [2, 48, 48]
    info = read_model_info(out)
    assert info.classes == ("hiPSC", "somatic")
    assert info.render_spec == spec
    assert info.channel_names == ("polII", "h3") and info.input_size == 48
    assert info.preprocessing["mode"] == "image" and info.model["name"] == "small_cnn"
    assert info.provenance["manifest_sha256"] and "git_commit" in info.provenance
    assert info.provenance["checkpoint_sha256"]
    assert "test" in info.metrics and info.training_stats["n_nuclei"] > 0
    # ONNX Runtime at several batch sizes equals PyTorch
    model, _ = load_checkpoint(root / "run" / "best.pt")
    sess = ort_session(out)
    for b in (1, 5):
        x = np.random.default_rng(b).random((b, 2, 48, 48), dtype=np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(sess.run(None, {"image": x})[0], ref, atol=1e-4, rtol=0)


def test_metadata_round_trips_through_the_file(run, tmp_path):
    root, _, _ = run
    out = tmp_path / "m.onnx"
    r = export_onnx(root / "run" / "best.pt", out)
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert ModelInfo.from_metadata(props) == ModelInfo.from_metadata(r.info.to_metadata())
    assert json.loads(props["ainu.render_spec"]) == r.info.render_spec.to_dict()
    # the ONNX Runtime reader (no onnx package needed at screening time) sees the same
    sess = ort_session(out)
    assert ModelInfo.from_metadata(
        dict(sess.get_modelmeta().custom_metadata_map)
    ) == ModelInfo.from_metadata(props)


def test_export_refuses_a_model_that_disagrees_with_pytorch(run, tmp_path, monkeypatch):
    """A model left in training mode (batch-norm on batch statistics) computes something else
    than the exported inference graph: the export must refuse and write nothing."""
    root, _, _ = run
    import ainu_engine.training.checkpoint as tt

    real = tt.load_checkpoint

    def in_training_mode(path):
        model, ckpt = real(path)
        return model.train(), ckpt

    monkeypatch.setattr(tt, "load_checkpoint", in_training_mode)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ParityError, match="differ"):
        export_onnx(root / "run" / "best.pt", out)
    assert list(tmp_path.iterdir()) == []


def test_export_errors(run, tmp_path):
    root, _, _ = run
    (tmp_path / "x.onnx").write_bytes(b"")
    with pytest.raises(OutputError, match="exists"):
        export_onnx(root / "run" / "best.pt", tmp_path / "x.onnx")
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(InputError, match="not an ainu-engine checkpoint"):
        export_onnx(bad, tmp_path / "y.onnx")
    not_model = tmp_path / "plain.onnx"
    not_model.write_bytes(b"garbage")
    with pytest.raises(InputError, match="plain.onnx"):
        read_model_info(not_model)


def test_training_fits_a_temperature_that_the_exported_model_carries(run, tmp_path):
    from ainu_engine import Classifier
    from ainu_engine.scores import softmax

    root, manifest, _ = run
    out = tmp_path / "model.onnx"
    export_onnx(root / "run" / "best.pt", out)
    cal = read_model_info(out).metrics["calibration"]
    assert 0.05 <= cal["temperature"] <= 20 and "validation" in cal["fitted_on"]
    assert "prior" in cal["method"]
    if cal["skipped"] is None:  # fitted: a MAP temperature, never at the search bound
        assert 0.05 < cal["temperature"] < 20
    for k in ("ece_test_before", "ece_test_after", "brier_test_before", "brier_test_after"):
        lo, hi = cal[f"{k}_ci"]
        assert lo <= cal[k] <= hi
    assert (root / "run" / "calibration.png").stat().st_size > 1000  # the reliability diagram
    with Classifier.load(out, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        assert clf.temperature == pytest.approx(cal["temperature"])
        img = np.random.default_rng(0).random((1, 2, 48, 48), dtype=np.float32)
        p = clf.classify(img[0])
        expect = softmax(clf.backend.infer(img).astype(np.float64) / clf.temperature, axis=1)[0]
        assert [p.probabilities[c] for c in clf.info.classes] == pytest.approx(expect.tolist())


def test_evaluate_matches_the_model_channels_by_name_and_maps_them_on_request(
    run, tmp_path, capsys
):
    """The bundled one-channel Pol II model on the two-channel (polII, h3) manifest: the polII
    channel by name, never both merged; a map to a channel the files lack fails every row."""
    _, manifest, _ = run
    bundled = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
    args = ["evaluate", str(bundled), str(manifest), "--json", "--cache", str(tmp_path / "c")]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert json.loads(capsys.readouterr().out)["n_failed"] == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--channel-map", "polII=dna"]) != 0
    errors = (tmp_path / "b" / "errors.csv").read_text().splitlines()[1:]
    assert len(errors) == 12 and all("--channel-map" in e and "'dna'" in e for e in errors)
    capsys.readouterr()


@pytest.mark.slow
def test_cli_export_and_evaluate(run, tmp_path, capsys):
    root, manifest, _ = run
    model = tmp_path / "model.onnx"
    assert main(["export", str(root / "run" / "best.pt"), "--out", str(model), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["parity"]["passed"] and rec["input_shape"] == ["batch", 2, 48, 48]
    assert (
        main(
            [
                "evaluate",
                str(model),
                str(manifest),
                "--out",
                str(tmp_path / "ev"),
                "--json",
                "--cache",
                str(root / "cache"),
            ]
        )
        == 0
    )
    rec = json.loads(capsys.readouterr().out)
    assert rec["n"] == 12 and 0 <= rec["accuracy"] <= 1
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["confusion"] and sum(map(sum, metrics["confusion"])) == 12
    for name in ("confusion.png", "roc.png", "pr.png", "predictions.csv", "errors.csv"):
        assert (tmp_path / "ev" / name).is_file()
    # the ONNX calls equal the PyTorch model's on the same rendered nuclei
    from ainu_engine.training.data import load_nuclei
    from ainu_engine.training.train import predict

    m = read_manifest(manifest)
    data = load_nuclei(m, read_model_info(model).render_spec, RenderCache(root / "cache"))
    torch_model, _ = load_checkpoint(root / "run" / "best.pt")
    p = predict(torch_model, data, np.arange(len(data)))
    rows = (tmp_path / "ev" / "predictions.csv").read_text().splitlines()[1:]
    onnx_p = np.array([[float(v) for v in r.split(",")[-2:]] for r in rows])
    np.testing.assert_allclose(onnx_p, p, atol=1e-5)


@pytest.mark.slow
def test_cli_train_writes_a_run(run, tmp_path, capsys):
    _, manifest, _ = run
    code = main(
        [
            "train",
            str(manifest),
            "--out",
            str(tmp_path / "r"),
            "--arch",
            "small_cnn",
            "--image-size",
            "32",
            "--pixel-nm",
            "200",
            "--sigma-nm",
            "150",
            "--channels",
            "1",  # Pol II of the two simulated channels: never both merged into one
            "--epochs",
            "1",
            "--folds",
            "2",
            "--batch-size",
            "4",
            "--no-groups",
            "--cache",
            str(tmp_path / "c"),
            "--device",
            "cpu",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    rec = json.loads(out)
    assert rec["arch"] == "small_cnn" and "small_cnn" in rec["cv"] and rec["test_n"] == 3
    assert (tmp_path / "r" / "best.pt").is_file() and (tmp_path / "r" / "cv.csv").is_file()
    code = main(["train", str(manifest), "--out", str(tmp_path / "r"), "--arch", "small_cnn"])
    assert code == 1 and "finished run" in capsys.readouterr().err
    code = main(["train", str(manifest), "--out", str(tmp_path / "r2"), "--arch", "densnet121"])
    assert code == 2 and "did you mean densenet121" in capsys.readouterr().err


def test_info_describes_the_exported_model_and_its_checkpoint(run, tmp_path, capsys):
    root, _, spec = run
    model = tmp_path / "model.onnx"
    export_onnx(root / "run" / "best.pt", model)
    assert main(["info", "--json", str(model), str(root / "run" / "best.pt")]) == 0
    onnx_rec, pt_rec = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    for rec in (onnx_rec, pt_rec):
        assert rec["kind"] == "model" and rec["classes"] == ["hiPSC", "somatic"]
        assert rec["input"] == "2 x 48 x 48" and rec["channel_names"] == ["polII", "h3"]
        assert rec["render"]["pixel_nm"] == 150 and rec["render"]["sigma_nm"] == 120
        assert rec["render"]["hash"] == spec.hash() and rec["architecture"] == "small_cnn"
        assert (
            rec["training_nuclei"] > 0
            and rec["test"]["n"] > 0
            and 0 <= rec["test"]["accuracy"] <= 1
        )
        lo, hi = rec["training_ranges"]["area_um2"]
        assert 0 < lo <= hi
        assert len(rec["training_ranges"]["localizations_per_channel"]) == 2
    assert {k: v for k, v in onnx_rec.items() if k != "path"} == {
        k: v for k, v in pt_rec.items() if k != "path"
    }
    assert main(["info", str(model)]) == 0
    text = capsys.readouterr().out
    assert "classes           hiPSC, somatic" in text and "150 nm pixels, sigma 120 nm" in text
    assert "test set          accuracy" in text


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_reduced_precision_export_is_gated_and_loads_like_fp32(run, tmp_path, precision, capsys):
    from ainu_engine import Classifier

    root, manifest, _ = run
    out = tmp_path / f"model-{precision}.onnx"
    r = export_onnx(root / "run" / "best.pt", out, precision=precision, accept_accuracy_drop=True)
    g = r.gate
    assert r.precision == precision and g["n"] >= 1 and 0.0 <= g["agreement"] <= 1.0
    prov = read_model_info(out).provenance
    assert prov["precision"] == precision and prov["precision_gate"]["n"] == g["n"]
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == precision
    if precision == "int8":
        assert prov["calibration"]["method"] == "percentile"
        assert prov["calibration"]["n_images"] > 0
        # a handful of held-out nuclei cannot show <= 1 % disagreement, and the gate says so
        assert g["underpowered"] == (g["disagreement_upper95"] > 0.01)
        assert g["disagreement_upper95"] >= 1.0 - g["agreement"]
    with Classifier.load(out, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        img = np.random.default_rng(0).random((2, 48, 48), dtype=np.float32)
        assert clf.classify(img).label in clf.info.classes
        assert clf.backend.describe()["precision"] == precision
    # screen takes it like an fp32 model: every nucleus called, the call of the fp32 model on
    # as many nuclei as the gate measured on held-out ones (within one nucleus)
    from ainu_engine.screen import screen

    fp32 = tmp_path / "model-fp32.onnx"
    export_onnx(root / "run" / "best.pt", fp32)
    calls = {}
    for name, m in (("fp32", fp32), (precision, out)):
        summary = screen([manifest], m, tmp_path / f"screen-{name}", report=False)
        assert summary.n_failed == 0 and summary.n_nuclei == 12
        assert summary.backend["precision"] == name
        t = pq.read_table(summary.results, columns=["source", "predicted"]).to_pydict()
        calls[name] = dict(zip(t["source"], t["predicted"], strict=True))
    same = sum(calls["fp32"][k] == calls[precision][k] for k in calls["fp32"])
    assert same >= 12 - 1 - round(12 * (1 - g["agreement"])), (same, g)


def test_int8_with_unsigned_activations_is_for_cpus_and_tensorrt_refuses_it(run, tmp_path):
    from ainu_engine import Classifier
    from ainu_engine.backends import BackendUnavailable, create_backend

    root, _, _ = run
    out = tmp_path / "u8.onnx"
    r = export_onnx(root / "run" / "best.pt", out, precision="int8", int8_activations="u8",
                    accept_accuracy_drop=True)  # fmt: skip
    assert read_model_info(out).provenance["calibration"]["activations"] == "u8"
    kept = json.loads((root / "run" / "parity-int8.json").read_text())
    assert kept["calibration"]["activations"] == "u8" and kept["test"] == r.gate

    def activation_zero_points(path):
        graph = onnx.load(str(path)).graph  # weights have "weight", biases int32 zero points
        return [i for i in graph.initializer if i.name.endswith("_zero_point")
                and "weight" not in i.name and i.data_type != onnx.TensorProto.INT32]  # fmt: skip

    u8 = activation_zero_points(out)
    assert u8 and {z.data_type for z in u8} == {onnx.TensorProto.UINT8}
    with Classifier.load(out, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        img = np.random.default_rng(0).random((2, 48, 48), dtype=np.float32)
        assert clf.classify(img).label in clf.info.classes
    for name in ("tensorrt", "onnxruntime-tensorrt"):  # refused before anything is built
        with pytest.raises(BackendUnavailable, match="unsigned activations") as err:
            create_backend(out, name).load()
        assert "--int8-activations s8" in err.value.hint
    s8 = tmp_path / "s8.onnx"
    export_onnx(root / "run" / "best.pt", s8, precision="int8", accept_accuracy_drop=True)
    acts = activation_zero_points(s8)
    assert acts and {z.data_type for z in acts} == {onnx.TensorProto.INT8}
    assert all((onnx.numpy_helper.to_array(z) == 0).all() for z in acts)  # symmetric, for TRT


def test_the_gate_refuses_a_model_whose_calls_disagree(run, tmp_path, monkeypatch):
    from ainu_engine.training import precision as P

    root, _, _ = run
    bad = P.GateReport(n=10, agreement=0.8, max_abs_dp=0.6, accuracy_fp32=0.9,
                       accuracy_reduced=0.6, roc_auc_fp32=None, roc_auc_reduced=None)  # fmt: skip
    assert not bad.passed
    ok = P.GateReport(10, 1.0, 0.01, 0.9, 0.9, None, None)
    assert ok.passed
    # 10 items that all agree allow up to 25.9 % disagreement (Clopper-Pearson, one-sided
    # 95 %): passed, and said to be underpowered; 300 that all agree show <= 1 %
    assert ok.disagreement_upper95 == pytest.approx(1 - 0.05 ** (1 / 10))
    assert ok.underpowered and "too few items to show <= 1% disagreement: up to 25.9%" in str(ok)
    many = P.GateReport(300, 1.0, 0.01, 0.9, 0.9, None, None)
    assert not many.underpowered and "too few" not in str(many)
    assert P.GateReport(300, 299 / 300, 0.01, 0.9, 0.9, None, None).underpowered  # 1 of 300
    monkeypatch.setattr(P, "gate", lambda *a, **k: bad)
    out = tmp_path / "refused.onnx"
    with pytest.raises(ParityError, match="int8 model is refused: calls agree on 80.0%"):
        export_onnx(root / "run" / "best.pt", out, precision="int8")
    assert not out.exists()  # nothing written


# -- bioimage.io ------------------------------------------------------------------------------


def test_bioimageio_package_passes_bioimageio_core(run, tmp_path, monkeypatch):
    """The package is a spec-0.5 model that bioimageio.core tests offline: both weight formats
    (ONNX and the PyTorch state dict) reproduce the test output from the test input, a nucleus
    of the run's held-out split rendered as the model renders it."""
    pytest.importorskip("bioimageio.core", reason="bioimageio.core (dev extra) tests the package")
    import zipfile

    import yaml

    from ainu_engine.training.bioimageio import export_bioimageio
    from ainu_engine.training.precision import run_images

    monkeypatch.setenv("BIOIMAGEIO_PERFORM_IO_CHECKS", "0")
    root, _, spec = run
    out = tmp_path / "pkg.zip"
    r = export_bioimageio(root / "run" / "best.pt", out)
    assert r.test_summary["status"] == "passed"
    names = {d["name"] for d in r.test_summary["details"] if d["status"] == "passed"}
    assert any("(onnx)" in n for n in names) and any("(pytorch_state_dict)" in n for n in names)
    with zipfile.ZipFile(out) as z:
        assert set(z.namelist()) == {
            "rdf.yaml",
            "model.onnx",
            "weights.pt",
            "test_input.npy",
            "test_output.npy",
            "cover.png",
            "README.md",
        }
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        x = np.load(z.open("test_input.npy"))
        y = np.load(z.open("test_output.npy"))
        doc = z.read("README.md").decode()
    assert rdf["format_version"].startswith("0.5") and rdf["type"] == "model"
    assert rdf["cite"][0]["doi"] == "10.1038/s42256-024-00883-x"
    assert rdf["license"] == "BSD-3-Clause"
    ((inp,), (outp,)) = rdf["inputs"], rdf["outputs"]
    assert [a.get("id", a["type"]) for a in inp["axes"]] == ["batch", "channel", "y", "x"]
    assert inp["axes"][1]["channel_names"] == ["polII", "h3"]
    assert outp["axes"][1]["channel_names"] == ["hiPSC", "somatic"]
    assert set(rdf["weights"]) == {"onnx", "pytorch_state_dict"}
    # the test input is a real held-out nucleus as the engine renders it
    _, test_x, _ = run_images(root / "run" / "best.pt", _info(root, tmp_path), {})
    np.testing.assert_allclose(x[0], test_x[0], atol=1e-6)
    assert y.shape == (1, 2) and np.isclose(y.sum(), 1.0, atol=1e-5)
    # the documentation says what the package does not carry, and how to make its input
    assert "does not carry" in doc and "ainu-engine render" in doc and str(spec.pixel_nm) in doc


def _info(root: Path, tmp_path: Path):
    out = tmp_path / "plain.onnx"
    if not out.is_file():
        export_onnx(root / "run" / "best.pt", out)
    return read_model_info(out)


def test_bioimageio_package_that_fails_its_test_is_not_written(run, tmp_path, monkeypatch):
    """A package whose ONNX weights do not reproduce the test output (here: another model's)
    is refused by bioimageio.core's test, and nothing is written."""
    pytest.importorskip("bioimageio.core", reason="bioimageio.core (dev extra) tests the package")
    import ainu_engine.training.bioimageio as B

    monkeypatch.setenv("BIOIMAGEIO_PERFORM_IO_CHECKS", "0")
    root, _, _ = run
    real = B._logits
    monkeypatch.setattr(B, "_logits", lambda path, x: real(path, x) + np.array([[3.0, -3.0]]))
    out = tmp_path / "pkg.zip"
    with pytest.raises(OutputError, match="fails bioimageio.core's test"):
        B.export_bioimageio(root / "run" / "best.pt", out)
    assert not out.exists()


def test_export_cli_bioimageio(run, tmp_path, monkeypatch, capsys):
    pytest.importorskip("bioimageio.core", reason="bioimageio.core (dev extra) tests the package")
    monkeypatch.setenv("BIOIMAGEIO_PERFORM_IO_CHECKS", "0")
    root, _, _ = run
    ckpt = str(root / "run" / "best.pt")
    pkg = tmp_path / "pkg.zip"
    code = main(["export", ckpt, "--bioimageio", str(pkg), "--out", str(tmp_path / "m.onnx")])
    out = capsys.readouterr().out
    assert code == 0 and pkg.is_file() and (tmp_path / "m.onnx").is_file()
    assert "bioimageio.core test passed" in out
    assert main(["export", ckpt, "--bioimageio", str(pkg)]) == 1  # exists
    assert "--force" in capsys.readouterr().err
    assert main(["export", ckpt]) == 2  # neither --out nor --bioimageio
    assert main(["export", ckpt, "--bioimageio", str(pkg), "--precision", "int8"]) == 2


def test_the_model_carries_its_out_of_distribution_reference(run, tmp_path):
    """Training fits the reference (features of the fitted nuclei, thresholds on the validation
    nuclei); export adds the embedding output; ONNX Runtime and torch give the same scores."""
    from ainu_engine import Classifier
    from ainu_engine.io import read
    from ainu_engine.ood import OodReference

    root, manifest, _ = run
    summary = json.loads((root / "run" / "metrics.json").read_text())
    # 12 nuclei: 3 validation nuclei are too few, and the run says where its thresholds came from
    assert summary["ood"]["held_out"]["source"] == "training nuclei (3 held-out nuclei are too few)"
    assert set(summary["ood"]["thresholds"]) >= {"features", "input"}
    out = tmp_path / "model.onnx"
    r = export_onnx(root / "run" / "best.pt", out)
    assert r.info.embedding_name == "embedding"
    assert [o.name for o in ort_session(out).get_outputs()] == ["logits", "embedding"]
    ref = OodReference.from_training_stats(r.info.training_stats)
    assert ref is not None and ref.needs_embedding and ref.features.dim == 128
    nucleus = read(sorted((root / "data").glob("hiPSC_00??.parquet"))[0])
    kw = {"device": "cpu", "render_device": "cpu"}
    with Classifier.load(out, "onnxruntime", **kw) as a, \
            Classifier.load(root / "run" / "best.pt", "torch", **kw) as b:  # fmt: skip
        pa, pb = a.classify(nucleus), b.classify(nucleus)
    assert pa.ood_score is not None and pa.ood_score == pytest.approx(pb.ood_score, rel=1e-3)
    assert pa.ood_reason == pb.ood_reason


def test_batchnorm_as_depthwise_conv_is_the_same_function_and_leaves_no_batchnorm():
    """DenseNet's pre-activation batch norms (no convolution before them to fold into) become
    depthwise 1x1 convolutions, which ONNX Runtime quantizes (docs/results/int8-profile)."""
    import io

    import onnx
    import torch

    from ainu_engine.onnx_session import ort_session
    from ainu_engine.training.precision import batchnorm_as_depthwise_conv

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.BatchNorm2d(3), torch.nn.ReLU(), torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
    )  # fmt: skip
    for bn in (net[0], net[3]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.randn(2, 3, 16, 16)
    buf = io.BytesIO()
    torch.onnx.export(net, (x,), buf, input_names=["image"], output_names=["out"], dynamo=False,
                      do_constant_folding=False)  # fmt: skip
    model = onnx.load_from_string(buf.getvalue())
    n_bn = sum(node.op_type == "BatchNormalization" for node in model.graph.node)
    assert batchnorm_as_depthwise_conv(model) == n_bn == 2
    onnx.checker.check_model(model)
    assert not any(node.op_type == "BatchNormalization" for node in model.graph.node)
    got = ort_session(model.SerializeToString()).run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-5, atol=1e-5)
