"""``ainu-engine nucleus evaluate``: files paired by name, the JSON summary the issue asks for,
the same numbers as the library."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from ainu_engine.cli import main


def _discs(centres, r=8, size=96):
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size), np.uint8)
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 200
    return img


def test_evaluate_pairs_by_name_and_reports_fractions(capsys, tmp_path):
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    for i in range(3):
        tifffile.imwrite(truth / f"Nucleus_{i}.tif", _discs([(30, 30), (60, 70)]))
        tifffile.imwrite(truth / f"Actin_{i}.tif", _discs([(10, 10)]))  # skipped
        # 1 px (0.5 µm) and 6 px (3 µm) away
        tifffile.imwrite(pred / f"Predicted_{i}.tif", _discs([(31, 30), (60, 76)]))
    tifffile.imwrite(pred / "Predicted_9.tif", _discs([(30, 30)]))  # no partner: warned
    code = main(["nucleus", "evaluate", str(pred), str(truth), "--pixel-um", "0.5",
                 "--out", str(tmp_path / "ev"), "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "without a partner" in err
    s = json.loads(out.splitlines()[-1])
    assert s["n_images"] == 3 and s["n_generated"] == 6 and s["n_real"] == 6
    for key, k in (("within_4um", 6), ("within_1um", 3)):
        assert set(s[key]) >= {"fraction", "k", "n", "ci95"}
        assert s[key]["k"] == k and s[key]["n"] == 6
    assert s["within_1um"]["ci95"][0] < 0.5 < s["within_1um"]["ci95"][1]
    full = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert sorted(full["distances_um"]) == [0.5] * 3 + [3.0] * 3
    assert round(full["paper"]["log10_p_image_level"]) == -13485
    assert (tmp_path / "ev" / "distances.png").stat().st_size > 1000
