"""The preprocessing a model records (issue 35): train records it, and screen, live and every
call apply it as training did — filters, linking, drift (a nucleus too sparse for RCC is
flagged, never silently left), the resolution QC columns — and bad specs are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ainu_engine.errors import InputError
from ainu_engine.io import read
from ainu_engine.preprocess import Preprocess, apply

pytest.importorskip("onnxruntime", reason="calls need the cpu extra")

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
NUCLEUS = REPO / "examples" / "screen" / "slide2" / "somatic_0000.csv"


def _with_preprocess(tmp_path, pre: Preprocess | dict, stats: dict | None = None) -> Path:
    """The bundled model with ``pre`` recorded (and training_stats updated), as train writes."""
    import onnx

    proto = onnx.load(str(MODEL))
    props = {p.key: p.value for p in proto.metadata_props}
    mode = json.loads(props["ainu.preprocessing"])
    mode["localizations"] = pre.to_dict() if isinstance(pre, Preprocess) else pre
    props["ainu.preprocessing"] = json.dumps(mode)
    if stats:
        props["ainu.training_stats"] = json.dumps({**json.loads(props["ainu.training_stats"]),
                                                   **stats})  # fmt: skip
    del proto.metadata_props[:]
    for k, v in props.items():
        proto.metadata_props.add(key=k, value=v)
    out = tmp_path / f"model-{abs(hash(json.dumps(mode, sort_keys=True))) % 10**8}.onnx"
    onnx.save(proto, str(out))
    return out


def _classifier(path):
    from ainu_engine import Classifier

    return Classifier.load(path, backend="onnxruntime", device="cpu", render_device="cpu")


def test_every_call_applies_the_recorded_filters_and_linking(tmp_path):
    locs = read(NUCLEUS)
    pre = Preprocess(precision_nm=(0, 14), link_nm=40, link_dark_frames=2)
    want, report = apply(locs, pre)
    assert 0 < report["out"] < locs.n
    with _classifier(MODEL) as plain, _classifier(_with_preprocess(tmp_path, pre)) as rec:
        got = rec.classify(locs)
        ref = plain.classify(want)  # the plain model on the table preprocessed by hand
        assert got.n_localizations == [want.n] == ref.n_localizations
        assert got.probabilities == pytest.approx(ref.probabilities, abs=1e-6)
        assert rec.classify(want).n_localizations == [want.n]  # applied once, not twice
        assert "preprocessing     precision_nm=0-14,link_nm=40,link_dark_frames=2" in \
            _info_text(rec.info.path)


def _info_text(path) -> str:
    import contextlib
    import io

    from ainu_engine.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["info", str(path)]) == 0
    return buf.getvalue()


def test_screen_applies_it_and_reports_the_resolution_columns(tmp_path):
    from ainu_engine.screen import screen

    pre = Preprocess(precision_nm=(0, 14), resolution=True)
    model = _with_preprocess(tmp_path, pre, {"resolution": {"frc_nm": {"min": 1.0, "p01": 1.0,
                                                                       "p99": 2.0, "max": 2.0}}})
    files = [p for p in sorted((REPO / "examples" / "screen" / "slide2").glob("*.csv"))
             if p.name != "manifest.csv"]
    screen(files, model, tmp_path / "out", device="cpu", csv=True)
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()
    assert len(rows) == len(files) >= 2
    for row in rows:
        locs = read(row["source"])
        assert row["n_localizations"] == int((locs.precision_nm <= 14).sum())
        assert row["frc_nm"] is not None and row["frc_nm"] > 0
        # every FRC is far above 1.25 x the (made-up) worst training nucleus's 2 nm
        assert "poor_resolution" in row["qc_flags"].split(",")


def test_live_filters_each_batch_and_links_on_the_whole_table(tmp_path):
    from ainu_engine.live import LiveNucleus

    locs = read(NUCLEUS)
    filters = Preprocess(precision_nm=(0, 14))
    linking = Preprocess(precision_nm=(0, 14), link_nm=40, link_dark_frames=2)
    for pre in (filters, linking):
        model = _with_preprocess(tmp_path, pre)
        with _classifier(model) as clf, LiveNucleus(clf) as live:
            for start in range(0, locs.n, 3000):
                live.add(locs[start : start + 3000])
            call = live.call()
            want = clf.classify(locs)  # screen's call on the whole table
            assert call.n_localizations == want.n_localizations
            assert call.probabilities == pytest.approx(want.probabilities, abs=1e-5)
            assert live.rejected["filtered"] == int((locs.precision_nm > 14).sum())


def test_a_nucleus_too_sparse_for_the_recorded_drift_correction_is_flagged(tmp_path):
    locs = read(NUCLEUS)[:1500]  # fewer than two RCC segments' worth
    with _classifier(_with_preprocess(tmp_path, Preprocess(drift="rcc"))) as clf:
        p = clf.classify(locs)
    assert "drift_uncorrected" in p.qc and p.n_localizations == [1500]


def test_bad_recorded_preprocessing_and_missing_columns_are_one_line_errors(tmp_path):
    from ainu_engine import Classifier
    from ainu_engine.io import Localizations

    bad = _with_preprocess(tmp_path, {"precision_nm": [0, 10], "blur": 3})
    with pytest.raises(InputError, match="preprocessing.localizations: unknown preprocessing blur"):
        Classifier.load(bad, backend="onnxruntime", device="cpu")
    with _classifier(_with_preprocess(tmp_path, Preprocess(photons=(100, 1e9)))) as clf:
        locs = read(NUCLEUS)
        bare = Localizations(locs.x_nm, locs.y_nm, frame=locs.frame)
        with pytest.raises(InputError, match="the model's preprocessing: the table has no photons"):
            clf.classify(bare)


def test_specs_parse_and_refuse_with_the_key():
    p = Preprocess.parse("precision_nm=-30,photons=500-,link_nm=30,drift=rcc,resolution=true")
    assert p.precision_nm == (float("-inf"), 30.0) and p.photons[0] == 500.0
    assert Preprocess.parse(p.to_spec()) == p
    for bad, words in (("blur=3", "expected key=value"), ("drift=fft", "drift must be one of"),
                       ("link_nm=x", "link_nm: bad value"), ("precision_nm=5", "precision_nm")):
        with pytest.raises(ValueError, match=words):
            Preprocess.parse(bad)


@pytest.mark.slow
def test_train_records_the_preprocessing_and_its_resolution_range(tmp_path, torch_threads):
    pytest.importorskip("torch", reason="the train extra (torch) is not installed")
    from ainu_engine.model import read_model_info
    from ainu_engine.render import RenderSpec
    from ainu_engine.simulate import Observation, simulate_dataset
    from ainu_engine.training.data import RenderCache, read_manifest
    from ainu_engine.training.export import export_onnx
    from ainu_engine.training.train import TrainConfig, train

    m = simulate_dataset(tmp_path / "d", classes=("hiPSC", "somatic"), n_per_class=6,
                         channels=("polII",), seed=3,
                         observation=Observation(locs_per_channel=4000))  # fmt: skip
    pre = Preprocess(precision_nm=(0, 20), link_nm=30, resolution=True)
    cfg = TrainConfig(arch="small_cnn", epochs=1, patience=1, batch_size=4, folds=0, seed=0,
                      preprocess=pre)  # fmt: skip
    train(read_manifest(m), tmp_path / "run", config=cfg, spec=RenderSpec(pixel_nm=150,
          sigma_nm=120, size=32), cache=RenderCache(tmp_path / "c", device="cpu"))  # fmt: skip
    export_onnx(tmp_path / "run" / "best.pt", tmp_path / "m.onnx")
    info = read_model_info(tmp_path / "m.onnx")
    assert Preprocess.of_model(info.preprocessing) == pre
    frc = info.training_stats["resolution"]["frc_nm"]
    assert 0 < frc["min"] <= frc["max"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert Preprocess.from_dict(config["train_config"]["preprocess"]) == pre
    # a nucleus of the training data, called: counted after the recorded filters and linking
    row = read(read_manifest(m).files[0])
    want, _ = apply(row, pre)
    with _classifier(tmp_path / "m.onnx") as clf:
        p = clf.classify(row)
    assert p.n_localizations == [want.n] and p.frc_nm is not None
    assert np.isfinite(p.frc_nm)
