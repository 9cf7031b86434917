"""Calls back into Fiji (issue 22): nuclei from an ROI set or from detection come back as
``OUT/rois/<file>.roi.zip``, one ROI per nucleus with its call, in the field's camera pixels —
round-tripped with roifile against the ROIs that went in."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from ainu_engine.screen import screen

roifile = pytest.importorskip("roifile")
pytest.importorskip("onnxruntime", reason="screening needs the cpu extra")


def test_roi_sets_carry_the_calls_back_in_camera_pixels(screen_model, tmp_path):
    from ainu_engine.simulate import Observation, simulate_dataset

    model, _, _ = screen_model
    data = tmp_path / "fields"
    simulate_dataset(data, classes=("hiPSC", "somatic"), n_per_class=3, channels=("polII", "h3"),
                     observation=Observation(locs_per_channel=3000), nuclei_per_file=3,
                     roi=True, field_mode=True, format="insight3", seed=31)  # fmt: skip
    s = screen([data], model, tmp_path / "out", nuclei="roi", report=False)
    assert s.n_failed == 0 and s.n_nuclei == 6
    rows = pq.read_table(s.results).to_pylist()
    sets = sorted((tmp_path / "out" / "rois").glob("*.roi.zip"))
    assert [p.name for p in sets] == sorted(f"{p.name}.roi.zip" for p in data.glob("*.bin"))
    for path in sets:
        src = data / path.name.removesuffix(".roi.zip")
        given = roifile.roiread(src.with_suffix(".roi.zip"))
        back = roifile.roiread(path)
        assert len(back) == len(given) == 3
        mine = {r["nucleus_id"]: r for r in rows if r["source"] == str(src)}
        for roi_in, roi_out in zip(given, back, strict=True):
            nid, call, p = roi_out.name.split(" ")
            r = mine[nid]
            assert call == r["predicted"] and float(p) == pytest.approx(r[f"p_{call}"], abs=0.005)
            assert roi_out.properties["call"] == call and roi_out.properties["qc"]
            assert float(roi_out.properties["p_hiPSC"]) == pytest.approx(r["p_hiPSC"], abs=1e-4)
            # the same polygon, in the same camera pixels, as the ROI that selected the nucleus
            np.testing.assert_allclose(roi_out.coordinates(), roi_in.coordinates(), atol=0.01)
        colours = {r.name.split(" ")[1]: r.stroke_color for r in back}
        assert len(set(colours.values())) == len(colours)  # one colour per call


def test_no_roi_sets_for_whole_file_nuclei(screen_batch, tmp_path):
    model, data, _ = screen_batch
    s = screen([data], model, tmp_path / "out", report=False)
    assert not (tmp_path / "out" / "rois").exists()
    assert s.n_nuclei > 0


def test_the_report_counts_nuclei_in_whole_numbers(screen_batch):
    """A small screen's histograms and bars: every tick of an axis that counts nuclei is a whole
    number (matplotlib's default put 0.25-nucleus ticks on them)."""
    import json

    from ainu_engine.screen._report import _figures

    _, _, single = screen_batch
    table = pq.read_table(single.results).slice(0, 3)  # counts of 0..3: fractional by default
    doc = json.loads((single.out / "summary.json").read_text())
    figures = _figures(table, doc, ["hiPSC", "somatic"])
    assert [t for t, _ in figures][:3] == ["Calls per folder", "Probability per class",
                                            "Quality control"]  # fmt: skip
    checked = 0
    for _, fig in figures:
        for ax in fig.axes:
            for axis, label in ((ax.yaxis, ax.get_ylabel()), (ax.xaxis, ax.get_xlabel())):
                if label == "nuclei":
                    ticks = list(axis.get_ticklocs())
                    assert all(float(t).is_integer() for t in ticks), (label, ticks)
                    checked += 1
    assert checked >= 4
