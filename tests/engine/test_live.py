"""Live classification (issue 18): the running render equals the batch render after any sequence
of adds (CPU, and the CUDA kernel in Numba's simulator), the stop rule, bad input, and replay
whose final call is screen's call."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from ainu_engine.errors import ChannelError, InputError
from ainu_engine.io import Localizations, Metadata, read
from ainu_engine.live import LiveNucleus, SessionClosed, StopRule, replay, replay_file
from ainu_engine.render import RenderSpec, render

pytest.importorskip("onnxruntime", reason="live calls need the cpu extra")

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
BATCH = REPO / "examples" / "screen"


@pytest.fixture(scope="module")
def clf():
    from ainu_engine import Classifier

    with Classifier.load(MODEL, backend="onnxruntime", device="cpu", render_device="cpu") as c:
        yield c


def nucleus(n=20_000, seed=0, centre=(40_000.0, 25_000.0), channels=(1,), precision=False):
    rng = np.random.default_rng(seed)
    r = 5000 * np.sqrt(rng.random(n))
    a = rng.random(n) * 2 * np.pi
    return Localizations(
        centre[0] + r * np.cos(a),
        centre[1] + r * np.sin(a),
        frame=np.sort(rng.integers(0, 5000, n)),
        channel=rng.choice(channels, n),
        precision_nm=rng.uniform(5, 30, n) if precision else None,
    )


def close_to(live_img, batch_img):
    bright = batch_img > 0.01 * batch_img.max()
    rel = np.abs(live_img[bright] - batch_img[bright]) / batch_img[bright]
    return live_img.shape == batch_img.shape and float(rel.max()) <= 1e-5


def spec_session(clf, spec: RenderSpec):
    """A session whose model renders with ``spec`` (the classifier's metadata patched)."""
    import copy
    from dataclasses import replace

    other = copy.copy(clf)
    other.info = replace(
        clf.info, render_spec=spec, channel_names=("ch1", "ch2")[: spec.n_channels]
    )
    return LiveNucleus(other)


@pytest.mark.parametrize("precision", [False, True])
def test_the_running_render_equals_the_batch_render_after_any_adds(clf, precision):
    spec = RenderSpec(pixel_nm=50, sigma_nm=40, size=0, sigma_from_precision=precision,
                      channels=(1, 2))  # fmt: skip
    locs = nucleus(channels=(1, 2), precision=precision)
    rng = np.random.default_rng(1)
    # out of order: the far corners first, so that the render has to grow on every side
    order = np.argsort(-np.abs(locs.x_nm - locs.x_nm.mean()) - np.abs(locs.y_nm - 25_000))
    shuffled = locs[order]
    with spec_session(clf, spec) as live:
        start = 0
        for size in [1, 1, 7, *rng.integers(1, 4000, 40).tolist()]:
            live.add(shuffled[start : start + size])
            start += size
            if start >= locs.n:
                break
            if rng.random() < 0.2:
                done = shuffled[:start]
                assert close_to(live.render(spec).image, render(done, spec, device="cpu").image)
        live.add(shuffled[start:])
        assert live.n_localizations == locs.n
        assert close_to(live.render(spec).image, render(locs, spec, device="cpu").image)


def test_the_model_input_and_call_equal_the_batch_ones(clf):
    locs = read(BATCH / "slide1" / "somatic_0000.bin")
    with LiveNucleus(clf) as live:
        for start in range(0, locs.n, 997):
            live.add(locs[start : start + 997])
        call = live.call()
        np.testing.assert_allclose(
            live.render().image, render(locs, clf.info.render_spec, device="cpu").image, atol=1e-5
        )
    ref = clf.classify(locs)
    assert call.label == ref.label and call.qc == ref.qc
    for c in ref.probabilities:
        assert call.probabilities[c] == pytest.approx(ref.probabilities[c], abs=1e-5)


def test_the_cuda_kernel_accumulates_exactly_too(clf):
    from ainu_engine.kernels import cuda_available

    if not cuda_available(allow_simulator=True):
        pytest.skip("no CUDA GPU and the CUDA simulator is not enabled")
    spec = RenderSpec(pixel_nm=400, sigma_nm=300, size=0)
    locs = nucleus(n=60, seed=3)
    with spec_session(clf, spec) as live:
        live.device = "cuda"
        for start in range(0, locs.n, 13):
            live.add(locs[start : start + 13])
        assert close_to(live.render(spec).image, render(locs, spec, device="cpu").image)


def test_a_region_rejects_what_is_outside_and_renders_like_an_roi(clf):
    locs = nucleus(n=5000)
    box = (36_000.0, 21_000.0, 44_000.0, 29_000.0)
    poly = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]])
    from ainu_engine.nuclei import points_in_polygon

    inside = points_in_polygon(poly, locs.x_nm, locs.y_nm)
    spec = clf.info.render_spec
    with LiveNucleus(clf, region_nm=box) as live:
        report = live.add(locs)
        assert report.added == int(inside.sum()) and report.outside == int((~inside).sum())
        batch = render(locs[inside], spec, device="cpu", roi_nm=poly)
        np.testing.assert_allclose(live.render().image, batch.image, atol=1e-5)
        assert live.render().area_um2 == pytest.approx(batch.area_um2)


def test_bad_values_are_counted_not_dropped_silently(clf):
    x = np.array([1e4, np.nan, 1.1e4, np.inf, 1.2e4])
    with LiveNucleus(clf) as live:
        assert live.add(x_nm=[1e4], y_nm=[2e4], channel=[0], frame=[9]).added == 1  # channel 0
        r = live.add(x_nm=x, y_nm=np.full(5, 2e4), channel=[0, 0, 0, 0, 7], frame=[5, 4, 3, 2, 1])
        assert (r.added, r.not_finite, r.unknown_channel) == (2, 2, 1)  # frames backwards: fine
        assert live.rejected == {"not_finite": 2, "outside": 0, "unknown_channel": 1}
        with pytest.raises(ValueError, match="y_nm has 2 values"):
            live.add(x_nm=[1.0, 2.0, 3.0], y_nm=[1.0, 2.0])


def test_a_second_channel_is_never_merged_into_a_one_channel_model(clf):
    one = nucleus(n=3000, channels=(1,))
    two = nucleus(n=3000, channels=(1, 2), seed=2)
    with LiveNucleus(clf) as live:
        live.add(one)
        r = live.add(two)
        assert r.unknown_channel == int(np.count_nonzero(two.channel == 2))
    named = Localizations(two.x_nm, two.y_nm, channel=two.channel,
                          meta=Metadata(channel_names={1: "561", 2: "647"}))  # fmt: skip
    with LiveNucleus(clf) as live, pytest.raises(ChannelError, match="--channel-map"):
        live.add(named)
    with LiveNucleus(clf, channel_map={"polII": "647"}) as live:
        assert live.add(named).added == int(np.count_nonzero(two.channel == 2))


def test_a_closed_session_says_so_and_nothing_to_call_is_an_error(clf):
    live = LiveNucleus(clf)
    with pytest.raises(InputError, match="no localizations"):
        live.call()
    live.close()
    live.close()  # idempotent
    with pytest.raises(SessionClosed):
        live.add(x_nm=[1.0], y_nm=[1.0])
    with pytest.raises(SessionClosed):
        live.should_stop()
    assert not clf.backend.closed if hasattr(clf.backend, "closed") else True


def test_adds_from_two_threads_are_serialised(clf):
    locs = nucleus(n=40_000)
    spec = RenderSpec(pixel_nm=100, sigma_nm=60, size=0)
    with spec_session(clf, spec) as live:
        halves = [locs[0::2], locs[1::2]]

        def feed(part):
            for s in range(0, part.n, 500):
                live.add(part[s : s + 500])

        threads = [threading.Thread(target=feed, args=(h,)) for h in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert live.n_localizations == locs.n
        assert close_to(live.render(spec).image, render(locs, spec, device="cpu").image)


# -- the stop rule ---------------------------------------------------------------------------------


def test_the_stop_rule():
    rule = StopRule(p=0.9, m=3, min_localizations=100, max_frames=1000)
    firm = [("a", 0.95), ("a", 0.97), ("a", 0.91)]
    assert rule.decide(firm, 500, 200).stop
    assert not rule.decide(firm, 50, 200).stop  # too few localizations
    assert "disagree" in rule.decide([("b", 0.99), *firm[1:]], 500, 200).reason
    assert "p=0.850" in rule.decide([*firm[:2], ("a", 0.85)], 500, 200).reason
    assert not rule.decide(firm[:2], 500, 200).stop  # fewer than m calls
    assert rule.decide([("a", 0.5)], 0, 1000).stop  # max_frames, whatever the calls
    assert StopRule.parse("p=0.8,min=10") == StopRule(p=0.8, min_localizations=10)
    for bad in ("p=2", "m=0", "q=1", "p=x"):
        with pytest.raises(ValueError):
            StopRule.parse(bad)


def test_a_live_session_stops_a_firm_nucleus_early(clf):
    locs = read(BATCH / "slide1" / "somatic_0000.bin")
    rule = StopRule(p=0.8, m=2, min_localizations=2000)
    res = replay(locs, clf, frames_per_update=200, stop_rule=rule)
    assert res.stopped and res.fraction_at_stop() < 1.0
    assert res.stop_update["label"] == res.final.label == "somatic"
    assert res.updates[-1]["n_localizations"] == locs.n
    frames = [u["frame"] for u in res.updates]
    assert frames == sorted(frames)


# -- replay ----------------------------------------------------------------------------------------


def test_replay_ends_on_screens_call_for_every_file_of_the_batch(clf, tmp_path):
    import pyarrow.parquet as pq

    from ainu_engine.screen import screen

    screen([BATCH], MODEL, tmp_path / "s", backend="onnxruntime", device="cpu")
    rows = {r["source"]: r for r in pq.read_table(tmp_path / "s" / "results.parquet").to_pylist()}
    assert len(rows) == 5
    for src, row in rows.items():
        (res,) = list(replay_file(src, clf, frames_per_update=2000))
        assert res.final.label == row["predicted"]
        assert res.final.probabilities["hiPSC"] == pytest.approx(row["p_hiPSC"], abs=1e-5)
        assert ",".join(res.final.qc) == row["qc_flags"]


def test_the_live_command_replays_with_json_lines_and_plots(tmp_path, capsys):
    from ainu_engine.cli import main

    f = BATCH / "slide1" / "somatic_0000.bin"
    out = tmp_path / "live"
    code = main(["live", str(f), "--model", str(MODEL), "--frames-per-update", "1000",
                 "--stop", "p=0.8,m=2,min=2000", "--out", str(out), "--json"])  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    updates = [r for r in lines if not r.get("final")]
    (final,) = [r for r in lines if r.get("final")]
    assert all(
        {"frame", "n_localizations", "label", "probabilities", "stop"} <= set(u) for u in updates
    )
    assert final["label"] == "somatic" and final["same_call_at_stop"] is True
    assert 0 < final["stop_fraction"] < 1
    (png,) = out.glob("*.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_the_integrators_example_loop_in_the_docs_runs(capsys, monkeypatch):
    import re

    monkeypatch.chdir(REPO)
    text = (REPO / "docs" / "live.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    exec(compile(block, "docs/live.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("called somatic after") and len(out) >= 3


def test_replay_waits_for_the_models_channel_and_skips_a_nucleus_without_it(clf, tmp_path):
    """N-STORM images its channels one after the other (647 in the first half of the frames, 561
    in the second): a replay calls from the first localization of the model's channel on, and a
    nucleus without any is skipped with a message, the file's other nuclei still replayed."""
    from ainu_engine import Classifier
    from ainu_engine.io import write

    a = nucleus(n=6000, seed=3)
    meta = Metadata(channel_names={1: "561", 2: "647"})
    ch = np.where(a.frame < 2500, 2, 1)  # 647 first, then 561
    seq = Localizations(a.x_nm, a.y_nm, frame=a.frame, channel=ch, meta=meta)
    with Classifier.load(MODEL, backend="onnxruntime", device="cpu", render_device="cpu",
                         channel_map={"polII": "1"}) as c:  # fmt: skip
        res = replay(seq, c, frames_per_update=500)
        assert min(u["frame"] for u in res.updates) >= 2500  # no call before the first 561
        assert res.final.n_localizations == [int(np.sum(ch == 1))]
        only_647 = Localizations(a.x_nm, a.y_nm, frame=a.frame, channel=np.full(a.n, 2),
                                 meta=meta)  # fmt: skip
        with pytest.raises(InputError, match="no localization of the model's channels"):
            replay(only_647, c, frames_per_update=500)
        # a field of two cells, one without 561: the other is replayed, the first reported
        b = nucleus(n=6000, seed=4, centre=(80_000.0, 25_000.0))
        field = Localizations(
            np.concatenate([a.x_nm, b.x_nm]), np.concatenate([a.y_nm, b.y_nm]),
            frame=np.concatenate([a.frame, b.frame]),
            channel=np.concatenate([np.full(a.n, 2), np.where(b.frame < 2500, 2, 1)]),
            meta=meta,
        )
        path = tmp_path / "field.csv"
        write(field, path)
        skipped = []
        out = list(replay_file(path, c, nuclei="detect", frames_per_update=1000,
                               on_skip=lambda nid, msg: skipped.append(nid)))  # fmt: skip
        assert len(out) == 1 and len(skipped) == 1 and out[0].nucleus_id != skipped[0]


def test_the_agree_condition_and_partial_acquisition_temperatures():
    from dataclasses import replace

    from ainu_engine import Classifier
    from ainu_engine.live import StopRule

    rule = StopRule.parse("p=0.8,m=1,min=0,agree=0.9")
    assert rule.agree == 0.9
    calls = [("hiPSC", 0.95)]
    assert not rule.decide(calls, 100, None, agreement=0.7).stop
    assert "below agree=0.9" in rule.decide(calls, 100, None, agreement=0.7).reason
    assert rule.decide(calls, 100, None, agreement=0.95).stop
    assert "agree ignored" in rule.decide(calls, 100, None).reason
    with pytest.raises(ValueError, match="agree"):
        StopRule(agree=1.5)
    model = "examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
    with Classifier.load(model, backend="onnxruntime", device="cpu", render_device="cpu") as c:
        assert c.temperature_at(0.3) == c.temperature  # no calibration on partial acquisitions
        rows = [{"fraction": 0.1, "temperature": 3.0, "agree_with_full": 0.6},
                {"fraction": 1.0, "temperature": 1.0, "agree_with_full": 1.0}]
        c.info = replace(c.info, metrics={"calibration": {"temperature": 1.0, "by_fraction": rows}})
        assert c.temperature_at(0.55) == pytest.approx(2.0)
        assert c.temperature_at(None) == c.temperature  # the whole-acquisition temperature
