"""Preprocessing (issue 35, first part): filters and linking of repeated localizations."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.cli import main
from ainu_engine.io import Localizations, read, write
from ainu_engine.preprocess import Preprocess, apply, filter_localizations, link


def _blinking(n_emitters=300, blinks=4, gap=1, seed=0, channel=None):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, 20_000, (n_emitters, 2))
    pos = np.repeat(centre, blinks, axis=0) + rng.normal(0, 5, (n_emitters * blinks, 2))
    first = np.arange(n_emitters) * (blinks * gap + 10)  # emitters far apart in time
    frame = np.repeat(first, blinks) + np.tile(np.arange(blinks) * gap, n_emitters)
    prec = rng.uniform(4, 12, len(pos))
    chan = None if channel is None else np.full(len(pos), channel)
    return Localizations(pos[:, 0], pos[:, 1], frame=frame, precision_nm=prec,
                         photons=np.full(len(pos), 500.0), channel=chan)  # fmt: skip


def test_linking_gives_one_localization_per_emitter_at_the_weighted_mean():
    locs = _blinking()
    out = link(locs, 30.0, 1)
    assert out.n == 300 and np.all(out.extra["n_linked"] == 4)
    assert np.all(out.photons == 2000.0)
    # the first emitter: the precision-weighted mean of its four blinks
    w = 1 / locs.precision_nm[:4].astype(np.float64) ** 2
    assert out.x_nm[0] == pytest.approx((w * locs.x_nm[:4]).sum() / w.sum(), abs=1e-2)
    assert out.precision_nm[0] == pytest.approx(1 / np.sqrt(w.sum()), rel=1e-5)


def test_dark_frames_and_channels_limit_what_is_linked():
    spaced = _blinking(blinks=3, gap=3)  # blinks two dark frames apart
    assert link(spaced, 30.0, 1).n == spaced.n  # one dark frame allowed: nothing joins
    assert link(spaced, 30.0, 2).n == 300
    a, b = _blinking(channel=0), _blinking(channel=1)  # the same positions in two channels
    both = Localizations.concat([a, b])
    assert link(both, 30.0, 1).n == 600
    with pytest.raises(ValueError, match="frames"):
        link(Localizations([0.0, 1.0], [0.0, 1.0]), 30.0)


def test_filters_count_what_they_remove_and_refuse_missing_columns():
    locs = _blinking()
    out, removed = filter_localizations(locs, Preprocess(precision_nm=(0, 8), frames=(0, 999)))
    assert out.n == int(((locs.precision_nm <= 8) & (locs.frame <= 999)).sum())
    assert removed["precision_nm"] == int((locs.precision_nm > 8).sum())
    two = Localizations.concat([_blinking(channel=0), _blinking(channel=1)])
    out, _ = filter_localizations(two, Preprocess(precision_nm=(0, 8), channel=1))
    assert (out.channel == 0).sum() == 1200  # the other channel is kept whole
    with pytest.raises(ValueError, match="sigma"):
        filter_localizations(locs, Preprocess(psf_nm=(0, 200)))
    with pytest.raises(ValueError, match="lo <= hi"):
        Preprocess(photons=(10, 1))
    with pytest.raises(ValueError, match="link_nm"):
        Preprocess(link_nm=-1)
    pre = Preprocess(precision_nm=(0, 20), link_nm=30)
    assert Preprocess.from_dict(pre.to_dict()) == pre
    done, report = apply(locs, pre)
    assert report == {"in": 1200, "removed": {"precision_nm": 0}, "linked": 300, "out": 300,
                      "drift": None, "drift_trace": None}


def test_the_command_writes_the_tables_and_refuses_bad_parameters(tmp_path, capsys):
    write(_blinking(), tmp_path / "a.parquet")
    code = main(["preprocess", str(tmp_path / "a.parquet"), "--out", str(tmp_path / "pre"),
                 "--precision-nm", "-20", "--link-nm", "30", "--json"])  # fmt: skip
    assert code == 0
    out = read(tmp_path / "pre" / "a.parquet")
    assert out.n == 300 and "n_linked" in out.extra
    assert main(["preprocess", str(tmp_path / "a.parquet"), "--out", str(tmp_path / "p2")]) == 2
    assert main(["preprocess", str(tmp_path / "a.parquet"), "--out", str(tmp_path / "p3"),
                 "--photons", "9-1"]) == 2  # fmt: skip
    capsys.readouterr()


def test_the_chain_kernel_equals_its_reference_and_picassos_link():
    from ainu_engine.kernels import link_chains, link_chains_reference

    rng = np.random.default_rng(1)
    n = 400
    frame = np.sort(rng.integers(0, 60, n))  # crowded: several per frame, chains compete
    x, y = rng.uniform(0, 400, (2, n))
    group = rng.integers(0, 2, n)
    for d, dark in ((30.0, 0), (50.0, 2)):
        got = link_chains(frame, x, y, group, d, dark)
        np.testing.assert_array_equal(got, link_chains_reference(frame, x, y, group, d, dark))
    postprocess = pytest.importorskip(
        "picasso.postprocess", reason="Picasso (picassosr) is a benchmark-only dependency")
    want = postprocess._get_link_groups(frame, x, y, 50.0, 2, group.astype(np.int32))
    differ = np.flatnonzero(link_chains(frame, x, y, group, 50.0, 2) != want)
    # the one known difference: from the table's last frame, Picasso's window search falls
    # through to the table's last localization and links it in the same frame (an emitter gives
    # one localization per frame: the engine does not)
    assert np.all(frame[differ] == frame.max()) and len(differ) <= 2
