"""The input half of the out-of-distribution score: per-nucleus statistics, their reference over
training nuclei, and a score that flags shifted nuclei and names the statistic furthest out."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.io import Localizations
from ainu_engine.ood import StatisticsReference, nucleus_statistics
from ainu_engine.simulate import Observation, simulate_nucleus

OBS = Observation(locs_per_channel=20_000)


def _nucleus(seed: int, label: str = "hiPSC", obs: Observation = OBS) -> Localizations:
    s = simulate_nucleus(label, rng=np.random.default_rng(seed), observation=obs)
    return Localizations(s.x_nm, s.y_nm, frame=s.frame, channel=s.channel,
                         photons=s.photons, precision_nm=s.precision_nm)  # fmt: skip


@pytest.fixture(scope="module")
def reference():
    rows = [nucleus_statistics(_nucleus(k, ("hiPSC", "somatic")[k % 2])) for k in range(24)]
    return StatisticsReference.from_statistics(rows)


def test_the_statistics_of_a_known_table():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 10_000, (2, 4000))  # 100 µm², 40 /µm²
    s = nucleus_statistics(Localizations(x, y, precision_nm=np.full(4000, 12.0),
                                         photons=np.full(4000, 900.0)), area_um2=100.0)  # fmt: skip
    assert s["density_per_um2"] == 40.0 and s["median_precision_nm"] == 12.0
    assert s["median_photons"] == 900.0 and "repeat_fraction" not in s  # no frames
    assert 60 < s["median_nn_nm"] < 110  # 0.5 / sqrt(density) ~ 79 nm
    # every emitter seen in two consecutive frames, 5 nm apart: all repeated; merged: none
    f = np.arange(4000) * 10
    twice = Localizations(np.r_[x, x + 5], np.r_[y, y], frame=np.r_[f, f + 1])
    assert nucleus_statistics(twice)["repeat_fraction"] == 1.0
    assert nucleus_statistics(Localizations(x, y, frame=f))["repeat_fraction"] < 0.05


def test_in_distribution_nuclei_score_low_and_shifts_high_with_the_statistic_named(reference):
    held_out = [reference.score(nucleus_statistics(_nucleus(100 + k)))[0] for k in range(6)]
    assert max(held_out) < 6.0  # the largest of seven robust z-scores: a threshold comes later
    sharp = _nucleus(200)
    sharp.precision_nm *= 0.2  # a localizer that reports 5x better precision
    z, name, text = reference.score(nucleus_statistics(sharp))
    assert z > 2 * max(held_out) and name == "median_precision_nm"
    assert text.startswith("median precision ") and "; training " in text
    full = _nucleus(201)
    sparse = full[np.arange(0, full.n, 8)]  # density x 1/8 (thinning also breaks blink pairs)
    z, name, _ = reference.score(nucleus_statistics(sparse))
    assert z > 2 * max(held_out)
    assert name in ("density_per_um2", "localizations", "median_nn_nm", "repeat_fraction")


def test_the_reference_is_plain_data():
    import json

    ref = StatisticsReference.from_statistics([{"median_nn_nm": v} for v in (20, 25, 30)])
    back = StatisticsReference.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert back == ref and back.score({"median_nn_nm": 25.0})[0] == 0.0
    assert back.score({}) == (0.0, None, "no statistic to compare")


def test_real_cells_of_another_lab_are_far_from_simulated_training_nuclei(reference):
    """The JBC neutrophils' cPLA2 cells (sparse N-STORM, another lab) against the simulator's."""
    from pathlib import Path

    from ainu_engine.io import read
    from ainu_engine.nuclei import split_nuclei

    f = (Path(__file__).resolve().parents[3] / "shared" / "data" / "jbc-neutrophils"
         / "m1_unstim_5lo561_cpla2647.txt")  # fmt: skip
    if not f.is_file():
        pytest.skip("the JBC neutrophil files live in ../shared/data/jbc-neutrophils")
    locs = read(f)
    far_red = next(k for k, v in locs.meta.channel_names.items() if v == "647")
    for n in split_nuclei(locs, mode="detect", area_limits_um2=(20.0, 200.0)):
        cell = n.locs[n.locs.channel == far_red]
        z, name, text = reference.score(nucleus_statistics(cell))
        assert z > 5.0, text


def test_a_trained_model_carries_the_reference_of_its_training_nuclei(tmp_path):
    """RenderCache records each nucleus' input statistics (of the channels the model takes) and
    training_stats holds their reference, which export writes into the model's metadata."""
    pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    from ainu_engine.io import write
    from ainu_engine.render import RenderSpec
    from ainu_engine.training.data import RenderCache, load_nuclei, read_manifest

    rows = []
    for k in range(4):
        p = tmp_path / f"n{k}.csv"
        write(_nucleus(k), p)
        rows.append(f"{p.name},{('a', 'b')[k % 2]}")
    (tmp_path / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    data = load_nuclei(read_manifest(tmp_path / "m.csv"), RenderSpec(size=32, pixel_nm=100),
                       RenderCache(tmp_path / "cache"))  # fmt: skip
    ref = StatisticsReference.from_dict(data.training_stats()["input_reference"])
    assert ref.n == 4 and {"median_precision_nm", "density_per_um2"} <= set(ref.quantiles)
    sharp = _nucleus(0)
    sharp.precision_nm *= 0.2
    assert ref.score(nucleus_statistics(sharp))[1] == "median_precision_nm"
