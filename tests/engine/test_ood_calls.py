"""Every call says how unlike the training nuclei its nucleus is (issue 33): the bundled model
carries the out-of-distribution reference; an in-distribution set is not flagged and a shifted
one is, with the statistic named; abstention; the live stop rule never stops on an unfamiliar
nucleus; screen rows, summary and report; models from before the reference still load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the calls need onnxruntime (the cpu extra)")

from ainu_engine import Classifier, Prediction  # noqa: E402
from ainu_engine._classifier import UNDECIDED, abstain  # noqa: E402
from ainu_engine.io import Localizations, read  # noqa: E402
from ainu_engine.live import LiveNucleus, StopRule  # noqa: E402
from ainu_engine.simulate import Observation, simulate_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
KW = {"backend": "onnxruntime", "device": "cpu", "render_device": "cpu"}


@pytest.fixture(scope="module")
def clf():
    with Classifier.load(MODEL, **KW) as c:
        yield c


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """New nuclei of the bundled model's training distribution (its observation, another
    seed: examples/make_screen_example.py used seed 11)."""
    root = tmp_path_factory.mktemp("held-out")
    simulate_dataset(root, n_per_class=10, observation=Observation(locs_per_channel=1.2e4),
                     difficulty=0.0, seed=77)  # fmt: skip
    return [read(f) for f in sorted(root.glob("*_00??.parquet"))]


@pytest.fixture(scope="module")
def old_model(tmp_path_factory):
    onnx = pytest.importorskip("onnx", reason="rewriting a model's metadata needs onnx")
    m = onnx.load(str(MODEL))
    for p in m.metadata_props:
        if p.key in ("ainu.training_stats", "ainu.output"):
            d = json.loads(p.value)
            d.pop("ood", None)
            d.pop("embedding", None)
            p.value = json.dumps(d)
    out = tmp_path_factory.mktemp("old") / "old.onnx"
    onnx.save(m, str(out))
    return out


def _sharp(locs: Localizations) -> Localizations:
    """The same nucleus as a localizer reporting 5x better precision."""
    out = locs[np.arange(locs.n)]  # a copy
    out.precision_nm = locs.precision_nm * 0.2
    return out


def test_the_bundled_model_carries_its_reference(clf):
    assert clf.ood is not None and clf.ood.needs_embedding and clf.ood.inputs is not None
    assert clf.info.embedding_name == "embedding"
    assert set(clf.ood.thresholds) == {"input", "features", "residual"}
    assert clf.info.summary()["out_of_distribution"]["reference"] is True


def test_an_in_distribution_set_is_not_flagged_and_a_shifted_one_is(clf, held_out):
    calls = clf.classify_batch(held_out)
    flagged = sum("unfamiliar" in p.qc for p in calls)
    assert flagged <= 2, [(p.ood_score, p.ood_reason) for p in calls]  # 5 % of 20, with slack
    assert all(p.ood_score is not None and p.ood_score >= 0 for p in calls)
    shifted = clf.classify_batch([_sharp(n) for n in held_out])
    assert all("unfamiliar" in p.qc for p in shifted)
    assert min(p.ood_score for p in shifted) > max(p.ood_score for p in calls)
    assert all(p.ood_reason.startswith("median precision ") for p in shifted)
    sparse = clf.classify(held_out[0][np.arange(0, held_out[0].n, 5)])  # density x 0.2
    assert "unfamiliar" in sparse.qc and sparse.ood_score > 1


def test_the_score_survives_the_wire_format(clf, held_out):
    p = clf.classify(_sharp(held_out[0]))
    d = p.to_dict()
    assert d["ood_score"] == p.ood_score and d["ood_reason"] == p.ood_reason
    assert Prediction.from_dict(json.loads(json.dumps(d))) == p
    old = {k: v for k, v in d.items() if k not in ("ood_score", "ood_reason", "abstain_reason")}
    assert Prediction.from_dict(old).ood_score is None  # a client of an older server


def test_abstention_makes_doubtful_calls_undecided_with_the_reason(clf, held_out):
    sure = Prediction("hiPSC", {"hiPSC": 0.97, "somatic": 0.03})
    assert abstain(sure, 0.75) is sure and abstain(sure, None) is sure
    low = abstain(Prediction("hiPSC", {"hiPSC": 0.6, "somatic": 0.4}), 0.75)
    assert low.label == UNDECIDED and low.undecided and "undecided" in low.qc
    assert low.abstain_reason == "low confidence: p(hiPSC) 0.60 < 0.75"
    assert low.probabilities == {"hiPSC": 0.6, "somatic": 0.4}  # the model's, kept
    strict = clf.with_abstention(True)
    p = strict.classify(_sharp(held_out[0]))
    assert p.label == UNDECIDED and p.abstain_reason.startswith("unfamiliar: median precision")
    assert clf.classify(_sharp(held_out[0])).label != UNDECIDED  # the original is untouched
    with pytest.raises(ValueError, match="abstain"):
        clf.with_abstention(1.5)


def test_the_live_stop_rule_never_stops_on_an_unfamiliar_nucleus(clf, held_out):
    rule = StopRule(p=0.5, m=1, min_localizations=0)  # stops at the first call it may

    def last_call(locs):
        with LiveNucleus(clf, stop_rule=rule) as live:
            for s in range(0, locs.n, 4000):
                live.add(locs[s : s + 4000])
                call = live.call()
        return call

    fine = last_call(held_out[1])
    assert fine.stop.stop and fine.ood_score is not None and fine.ood_score <= 1
    # the share of a typical acquisition seen (localizations over the training median); the
    # bundled model has no table of partial acquisitions, so no held-out agreement
    assert 0.5 < fine.firmness["fraction"] <= 1.0 and fine.firmness["agree_with_full"] is None
    odd = last_call(_sharp(held_out[1]))
    assert "unfamiliar" in odd.qc and not odd.stop.stop
    assert "never stops on a nucleus unlike the model's training nuclei" in odd.stop.reason
    assert odd.to_dict()["ood_reason"] == odd.ood_reason
    capped = StopRule(p=0.5, m=1, min_localizations=0, max_frames=10)
    with LiveNucleus(clf, stop_rule=capped) as live:  # max_frames still ends an acquisition
        live.add(_sharp(held_out[1]))
        assert live.call().stop.stop


def test_a_screen_flags_counts_and_reports_unfamiliar_and_undecided(tmp_path, held_out):
    from ainu_engine.io import write
    from ainu_engine.screen import screen

    data = tmp_path / "data"
    data.mkdir()
    for k, n in enumerate(held_out[:6]):
        write(n, data / f"in_{k}.parquet")
        write(_sharp(n), data / f"sharp_{k}.parquet")
    s = screen([data], MODEL, tmp_path / "out", backend="onnxruntime", device="cpu",
               abstain=0.75)  # fmt: skip
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()
    sharp = [r for r in t if "sharp_" in r["source"]]
    assert all("unfamiliar" in r["qc_flags"] and r["predicted"] == UNDECIDED for r in sharp)
    assert all(r["abstain_reason"].startswith("unfamiliar: ") for r in sharp)
    assert s.n_unfamiliar >= 6 and s.n_undecided >= 6 and s.ood_note is None
    assert sum(s.calls.values()) + s.n_undecided == s.n_nuclei  # counted apart
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert doc["undecided"] == s.n_undecided and doc["abstain_below"] == 0.75
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Out-of-distribution" in html and "median precision (" in html


def test_models_from_before_the_reference_still_load(old_model, held_out, tmp_path):
    from ainu_engine.model import read_model_info
    from ainu_engine.screen import screen

    info = read_model_info(old_model)
    assert info.embedding_name is None
    assert "no out-of-distribution reference" in info.summary()["out_of_distribution"]["note"]
    with Classifier.load(old_model, **KW) as old:
        assert old.ood is None
        p = old.classify(_sharp(held_out[0]))
        assert p.ood_score is None and p.ood_reason is None and "unfamiliar" not in p.qc
    from ainu_engine.io import write

    write(held_out[0], tmp_path / "n.parquet")
    s = screen([tmp_path / "n.parquet"], old_model, tmp_path / "out", backend="onnxruntime",
               device="cpu")  # fmt: skip
    assert "no out-of-distribution reference" in s.ood_note
    assert "no out-of-distribution reference" in (tmp_path / "out" / "report.html").read_text()
