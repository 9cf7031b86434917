"""SCENMED's segmentation: each rule of the specification on hand-built fields, and precision
on the widefield simulator's instance ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.scenmed import SegmentConfig, crop_centred, match_instances, segment_field


def _field(ellipses, size=512, bg=100.0):
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), bg)
    truth = np.zeros((size, size), np.int32)
    for k, (cy, cx, ry, rx, level) in enumerate(ellipses, 1):
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        img[m] = level
        truth[m] = k
    return img, truth


def _reasons(seg):
    return sorted((round(r["centroid_y"]), r["reason"]) for r in seg.table)


def test_each_rule_gives_its_reason():
    img, truth = _field(
        [
            (100, 100, 35, 30, 1500.0),  # kept: 70 x 60 px, area ~3300
            (100, 300, 15, 15, 1500.0),  # bbox 30 < 50: small_bbox
            (300, 100, 10, 40, 1500.0),  # bbox 80 but area ~1250 <= 2000: too_small
            (300, 300, 70, 40, 1500.0),  # bbox 140 > 128: too_large
            (420, 300, 30, 30, 3900.0),  # every pixel > 3700: overexposed
        ]
    )
    seg = segment_field(img)
    assert _reasons(seg) == [
        (100, "kept"),
        (100, "small_bbox"),
        (300, "too_large"),
        (300, "too_small"),
        (420, "overexposed"),
    ]
    assert seg.crops.shape == (1, 128, 128) and seg.masks.shape == (1, 128, 128)
    # the kept crop: the nucleus centred, zero outside, the values kept
    c, m = seg.crops[0], seg.masks[0]
    assert np.all(c[~m] == 0) and c[m].max() == 1500.0
    ys, xs = np.nonzero(m)
    assert abs(ys.mean() - 63.5) <= 1.0 and abs(xs.mean() - 63.5) <= 1.0
    assert match_instances(seg.labels, truth)["true_positives"] == 1


def test_kept_crop_holds_the_original_values():
    img, truth = _field([(200, 200, 40, 30, 1500.0)])
    seg = segment_field(img)
    assert [r["reason"] for r in seg.table] == ["kept"]
    c, m = seg.crops[0], seg.masks[0]
    assert set(np.unique(c[m])) <= {1500.0, 100.0}
    # the watershed's foreground markers are the edges: the region takes in a ring of 1-2 px
    assert np.mean(c[m] == 1500.0) > 0.9
    r = match_instances(seg.labels, truth)
    assert r["precision"] == 1.0 and r["mean_iou"] > 0.85


def test_empty_field_and_edge_band():
    seg = segment_field(np.full((256, 256), 500.0))
    assert [r["reason"] for r in seg.table] == ["empty_field"] and len(seg.crops) == 0
    # a nucleus whose body reaches into the 15 px band is cut there (kept, flagged) or dropped
    img, _ = _field([(40, 40, 33, 33, 1500.0)], bg=100.0)
    img[:5, :] = 100.0
    for drop, want in ((False, "kept"), (True, "touches_edge")):
        seg = segment_field(img, SegmentConfig(drop_edge=drop))
        rows = [r for r in seg.table if r["reason"] != "small_bbox"]
        assert [r["reason"] for r in rows] == [want]
        assert rows[0]["edge_cut"] is True
        if want == "kept":
            assert rows[0]["bbox_r0"] >= 15 and rows[0]["bbox_c0"] >= 15


def test_crop_centred_pads_and_cuts():
    img = np.arange(200 * 200, dtype=np.float32).reshape(200, 200)
    mask = np.zeros((200, 200), bool)
    mask[10:150, 20:60] = True
    c, m = crop_centred(img, mask, (10, 20, 150, 60), 128)
    assert c.shape == (128, 128) and m[:, :44].sum() == 0 and m.sum() == 128 * 40
    assert c[0, 44] == img[10 + 6, 20]  # 140 rows cut symmetrically to 128


@pytest.mark.slow
def test_precision_on_simulated_fields_is_at_least_090():
    from ainu_engine.simulate import WIDEFIELD_CLASSES, simulate_field

    tp = n = 0
    for k, name in enumerate(WIDEFIELD_CLASSES):
        for s in range(3):
            f = simulate_field(np.random.default_rng([k, s]), [WIDEFIELD_CLASSES[name]])
            seg = segment_field(f.image)
            r = match_instances(seg.labels, f.labels)
            tp += r["true_positives"]
            n += r["n_predicted"]
            # a drop reason for every object, and only the rules' reasons
            assert {x["reason"] for x in seg.table} <= {
                "kept", "small_bbox", "touches_edge", "too_large", "too_small", "overexposed"
            }  # fmt: skip
    assert n >= 30
    assert tp / n >= 0.9
