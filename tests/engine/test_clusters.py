"""Cluster statistics (ainu_engine.clusters, ainu-engine clusters): known clusters recovered
exactly, the test equal to scipy's, the edge cases (empty region, one point, all noise), the
regions, the command line, and the simulated difference with its negative control."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ainu_engine.cli import main
from ainu_engine.clusters import (
    cluster_file,
    compare_groups,
    find_clusters,
    mann_whitney,
    region_polygons,
    run_clusters,
)
from ainu_engine.io import Localizations, write


def _blobs(rng, centres, n, sd):
    pts = np.concatenate([rng.normal(c, sd, (n, 2)) for c in centres])
    truth = np.repeat(np.arange(len(centres)), n)
    return pts, truth


def test_known_clusters_are_recovered_exactly():
    rng = np.random.default_rng(1)
    centres = [(0, 0), (1000, 0), (0, 1000), (3000, 3000)]
    pts, truth = _blobs(rng, centres, 30, 5.0)
    noise = rng.uniform(-5000, -2000, (20, 2))  # far away and sparse: noise
    xy = np.concatenate([pts, noise])
    c = find_clusters(Localizations(xy[:, 0], xy[:, 1]), eps_nm=20, min_samples=5)
    assert c["n_localizations"].tolist() == [30, 30, 30, 30]
    lab = c["labels"]
    assert (lab[len(pts) :] == -1).all()
    # the same partition as the one that made the points (cluster numbers may differ)
    pairs = set(zip(truth.tolist(), lab[: len(pts)].tolist(), strict=True))
    assert len(pairs) == 4 and len({p[1] for p in pairs}) == 4
    np.testing.assert_allclose(np.c_[c["x_nm"], c["y_nm"]], centres, atol=3.0)


def test_cluster_area_is_the_convex_hull():
    grid = np.array([(x, y) for x in range(0, 110, 10) for y in range(0, 110, 10)], float)
    c = find_clusters(Localizations(grid[:, 0], grid[:, 1]), eps_nm=15, min_samples=3)
    assert c["n_localizations"].tolist() == [121]
    assert c["area_nm2"][0] == pytest.approx(100.0 * 100.0)


def test_edge_cases_empty_region_one_point_all_noise():
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 1e5, (200, 2))  # 200 points in 100 µm: all noise at eps 20 nm
    locs = Localizations(xy[:, 0], xy[:, 1])
    noise = find_clusters(locs, eps_nm=20, min_samples=5)
    assert len(noise["n_localizations"]) == 0 and (noise["labels"] == -1).all()
    empty = find_clusters(locs, eps_nm=20, min_samples=5, keep=np.zeros(200, bool))
    assert len(empty["area_nm2"]) == 0
    one = Localizations(np.array([5.0]), np.array([5.0]))
    assert len(find_clusters(one, eps_nm=20, min_samples=5)["n_localizations"]) == 0
    single = find_clusters(one, eps_nm=20, min_samples=1)
    assert single["n_localizations"].tolist() == [1] and single["area_nm2"].tolist() == [0.0]
    line = Localizations(np.arange(10.0) * 5, np.zeros(10))  # collinear: a cluster, no area
    assert find_clusters(line, eps_nm=10, min_samples=3)["area_nm2"].tolist() == [0.0]
    with pytest.raises(ValueError):
        find_clusters(locs, eps_nm=0, min_samples=5)


def test_mann_whitney_equals_scipy():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 17), rng.normal(0.8, 1, 23)
    ref = mannwhitneyu(a, b, alternative="two-sided")
    t = mann_whitney(a, b)
    assert t["statistic"] == ref.statistic and t["p"] == ref.pvalue and t["n"] == [17, 23]
    # missing values are left out; too few values give no p
    t2 = mann_whitney([*a, None, float("nan")], b)
    assert t2["p"] == ref.pvalue
    assert mann_whitney([1.0], [2.0, 3.0])["p"] is None


def test_groups_are_compared_per_measure():
    rows = [
        {"group": g, "median_localizations": v, "median_area_nm2": v and 2 * v, "n_clusters": 3}
        for g, v in [("a", 1), ("a", 2), ("a", 3), ("b", 10), ("b", 11), ("b", None)]
    ]
    s = compare_groups(rows)
    assert list(s.groups) == ["a", "b"]
    assert s.groups["a"]["median_localizations"] == 2 and s.groups["b"]["nuclei"] == 3
    t = {x["measure"]: x for x in s.tests}
    assert t["median_localizations"]["n"] == [3, 2] and t["median_localizations"]["groups"] == [
        "a", "b"]  # fmt: skip
    assert t["n_clusters"]["p"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from ainu_engine.simulate import Observation, simulate_dataset

    root = tmp_path_factory.mktemp("clusters")
    m = simulate_dataset(root / "d", classes=("hiPSC", "somatic"), n_per_class=3,
                         channels=("polII",), difficulty=0.0, seed=3,
                         observation=Observation(locs_per_channel=8000))  # fmt: skip
    return m


def test_regions_restrict_the_clusters_to_the_nucleoli(simulated):
    from ainu_engine.io import read
    from ainu_engine.nuclei import points_in_polygon

    f = sorted(simulated.parent.glob("hiPSC_*.parquet"))[0]
    (nc,) = cluster_file(f, eps_nm=50, min_samples=15, roi="nucleoli")
    locs = read(f)
    polys = region_polygons(f, "nucleoli", locs)
    assert polys
    inside = np.zeros(len(locs), bool)
    for p in polys:
        inside |= points_in_polygon(p, locs.x_nm, locs.y_nm)
    lab = nc.clusters["labels"]
    assert (lab[~inside] == -1).all() and (lab[inside] >= 0).any()
    assert nc.n_localizations == int(inside.sum())
    (whole,) = cluster_file(f, eps_nm=50, min_samples=15)
    assert whole.n_localizations == len(locs) > nc.n_localizations


def test_nucleoli_need_the_ground_truth(tmp_path):
    from ainu_engine.errors import InputError

    p = tmp_path / "plain.parquet"
    rng = np.random.default_rng(0)
    write(Localizations(rng.uniform(0, 1e4, 100), rng.uniform(0, 1e4, 100)), p)
    with pytest.raises(InputError, match="ground truth"):
        cluster_file(p, roi="nucleoli")


def test_cli_json_ends_with_the_comparison(simulated, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("x,y\n1,2\nnot,a number\n")
    code = main(["clusters", str(simulated), str(tmp_path / "bad.csv"), "--eps-nm", "50",
                 "--min-samples", "15", "--roi", "nucleoli", "--out", str(tmp_path / "o"),
                 "--json"])  # fmt: skip
    captured = capsys.readouterr()
    lines = [json.loads(x) for x in captured.out.splitlines()]
    assert code == 1 and "bad.csv" in captured.err  # a bad file is reported, the rest go on
    assert [x["kind"] for x in lines] == ["nucleus"] * 6 + ["comparison"]
    last = lines[-1]
    assert set(last["groups"]) == {"hiPSC", "somatic"}
    assert {t["measure"] for t in last["tests"]} == {"median_localizations", "median_area_nm2",
                                                     "n_clusters"}  # fmt: skip
    assert all(t["test"] == "mann_whitney_u" and 0 <= t["p"] <= 1 for t in last["tests"])
    for name in ("clusters.parquet", "nuclei.csv", "comparison.json", "clusters.png"):
        assert (tmp_path / "o" / name).is_file()


@pytest.mark.slow
def test_recovers_the_simulated_difference_and_finds_none_where_there_is_none(tmp_path):
    """20 nuclei a class: hiPSC nucleolar Pol II in many small clusters, somatic in fewer,
    larger, more populated ones (the simulator's full class difference) — recovered with the
    direction right at p < 0.01; with the class difference removed (difficulty 1), no measure
    differs at p < 0.05 (docs/results/clusters/)."""
    from ainu_engine.simulate import Observation, simulate_dataset

    def run(difficulty: float, name: str) -> dict:
        m = simulate_dataset(tmp_path / name, classes=("hiPSC", "somatic"), n_per_class=20,
                             channels=("polII",), difficulty=difficulty, seed=3,
                             observation=Observation(locs_per_channel=12000))  # fmt: skip
        return run_clusters([m], tmp_path / f"{name}-out", eps_nm=50, min_samples=15,
                            roi="nucleoli")  # fmt: skip

    full = run(0.0, "full")
    g, t = full["groups"], {x["measure"]: x for x in full["tests"]}
    assert g["somatic"]["median_localizations"] > g["hiPSC"]["median_localizations"]
    assert g["somatic"]["median_area_nm2"] > g["hiPSC"]["median_area_nm2"]
    assert g["somatic"]["n_clusters"] < g["hiPSC"]["n_clusters"]
    assert all(x["p"] < 0.01 for x in t.values()), t
    none = run(1.0, "none")
    assert all(x["p"] > 0.05 for x in none["tests"]), none["tests"]


def test_results_doc_matches_its_run():
    """The committed results are the ones the script's commands write (same parameters)."""
    here = Path(__file__).resolve().parents[2] / "docs" / "results" / "clusters"
    for run in ("full", "none"):
        doc = json.loads((here / run / "comparison.json").read_text())
        assert doc["params"]["eps_nm"] == 50 and doc["params"]["min_samples"] == 15
        assert doc["params"]["roi"] == "nucleoli" and doc["nuclei"] == 40


def test_a_real_field_is_split_into_nuclei_first(tmp_path, capsys):
    """A real N-STORM field of several cells (named channels): `--nuclei detect` clusters each
    nucleus on its own, the far-red channel by its name; the whole field is not one nucleus."""
    real = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
    f = real / "JBC-STORM-2020_m2_unstim_5lo561_flap647.txt"
    if not f.is_file():
        pytest.skip(f"the real N-STORM field is not at {f} (../shared/data/real)")
    from ainu_engine.io import read

    locs = read(f)
    n647 = int((locs.channel == 1).sum())
    code = main(["clusters", str(f), "--channel", "647", "--nuclei", "detect", "--eps-nm", "50",
                 "--min-samples", "10", "--out", str(tmp_path / "o"), "--json"])  # fmt: skip
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    nuclei = [x for x in lines if x["kind"] == "nucleus"]
    assert code == 0 and len(nuclei) >= 2
    assert all(x["nucleus_id"].startswith("det") for x in nuclei)
    assert sum(x["n_localizations"] for x in nuclei) <= n647  # only the 647 channel, per nucleus
    assert lines[-1]["kind"] == "comparison" and lines[-1]["nuclei"] == len(nuclei)
