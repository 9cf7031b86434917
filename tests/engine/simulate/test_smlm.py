"""The simulator keeps the statistics its parameters promise (tolerances stated per test),
is deterministic, and writes datasets that ainu_engine.io reads back."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from ainu_engine.cli import main
from ainu_engine.io import read
from ainu_engine.simulate import (
    CELL_STATES,
    Observation,
    effective_state,
    simulate_dataset,
    simulate_nucleus,
)
from ainu_engine.simulate._smlm import NUCLEOLUS, PERIPHERY, _clustered

OBS = Observation(locs_per_channel=2e4)


def nuclei(label, n=10, *, channels=("polII", "h3"), difficulty=0.0, obs=OBS, seed=100):
    return [
        simulate_nucleus(
            label,
            rng=np.random.default_rng(seed + i),
            channels=channels,
            observation=obs,
            difficulty=difficulty,
        )
        for i in range(n)
    ]


def test_localizations_per_nucleus_and_channel():
    """Mean count within 10 % of locs_per_channel (per-nucleus lognormal sd 0.2 over 24
    nucleus-channels gives a standard error of ~4 %); every channel present."""
    counts = np.array([np.bincount(nu.channel, minlength=3)[1:] for nu in nuclei("mock", 12)])
    assert counts.min() > 0
    assert counts.mean() == pytest.approx(2e4, rel=0.10)
    assert 0.1 < counts.std() / counts.mean() < 0.35  # the lognormal spread, not a constant


def test_precision_distribution():
    """Lognormal precision: median 14 nm (±2 %), log-sd 0.3 (±5 %), 5-95 % within 8-25 nm."""
    prec = np.concatenate([nu.precision_nm for nu in nuclei("hiPSC", 4)]).astype(np.float64)
    assert np.median(prec) == pytest.approx(14.0, rel=0.02)
    assert np.std(np.log(prec)) == pytest.approx(0.3, rel=0.05)
    lo, hi = np.percentile(prec, [5, 95])
    assert 8.0 < lo < 9.5 and 21.0 < hi < 25.0


def test_photons_anticorrelate_with_precision():
    nu = nuclei("hiPSC", 1)[0]
    assert np.corrcoef(np.log(nu.photons), np.log(nu.precision_nm))[0, 1] < -0.9


@pytest.mark.parametrize("label", ["hiPSC", "somatic"])
def test_polII_fraction_inside_nucleoli_per_class(label):
    """Pol II localizations tagged nucleolus: the class parameter times (1 - spurious
    fraction), within 0.02 over 12 nuclei (cell-to-cell sd ~0.03 -> s.e. ~0.01; cluster
    spread across the nucleolar edge removes ~0.005)."""
    fr = [np.mean(nu.structure[nu.channel == 1] == NUCLEOLUS) for nu in nuclei(label, 12)]
    expected = CELL_STATES[label].polII_nucleolar_fraction * (1 - OBS.spurious_fraction)
    assert np.mean(fr) == pytest.approx(expected, abs=0.02)


def test_classes_differ_as_the_paper_found():
    hi, so = nuclei("hiPSC", 12), nuclei("somatic", 12, seed=500)
    nuc = lambda ns: np.mean([np.mean(n.structure[n.channel == 1] == NUCLEOLUS) for n in ns])  # noqa: E731
    per = lambda ns: np.mean([np.mean(n.structure[n.channel == 2] == PERIPHERY) for n in ns])  # noqa: E731
    assert nuc(hi) > nuc(so) + 0.04  # Pol II more enriched in hiPSC nucleoli
    assert per(so) > per(hi) + 0.02  # denser peripheral heterochromatin in somatic cells
    aspect = lambda ns: np.mean([_aspect(n.outline_nm) for n in ns])  # noqa: E731
    assert aspect(so) < aspect(hi) - 0.08  # somatic nuclei are more elongated


def _aspect(poly):
    c = poly - poly.mean(axis=0)
    ev = np.linalg.eigvalsh(np.cov(c.T))
    return float(np.sqrt(ev[0] / ev[1]))


def test_cluster_sizes_and_spread():
    """Clusters hold 1 + Poisson(m - 1) emitters (mean m within 3 %), Gaussian sd sigma (3 %)."""
    rng = np.random.default_rng(0)
    centres = []

    def sample(k):
        c = rng.uniform(0, 1e7, (k, 2))
        centres.append(c)
        return c

    pts = _clustered(rng, 200_000, 1.0, 12.0, 40.0, sample)
    assert len(pts) == 200_000
    c = centres[0]
    assert 200_000 / len(c) == pytest.approx(12.0, rel=0.03)
    # points come cluster by cluster; centres are ~1e4 times farther apart than sigma
    jumps = np.hypot(*np.diff(pts, axis=0).T) > 1e4
    sizes = np.diff(np.flatnonzero(np.r_[True, jumps, True]))
    assert len(sizes) == len(c)
    assert sizes.mean() == pytest.approx(12.0, rel=0.03)
    offsets = pts - np.repeat(c, sizes, axis=0)
    assert offsets.std() == pytest.approx(40.0, rel=0.03)


def test_nucleolar_clusters_hipsc_smaller_than_somatic():
    hi = effective_state("hiPSC", 0.0)
    so = effective_state("somatic", 0.0)
    assert hi.polII_nucleolar_cluster_emitters < so.polII_nucleolar_cluster_emitters
    assert hi.polII_nucleolar_cluster_sigma_nm < so.polII_nucleolar_cluster_sigma_nm


def test_nucleus_geometry_ranges():
    for label in ("hiPSC", "somatic"):
        s = CELL_STATES[label]
        for nu in nuclei(label, 5, channels=("dna",)):
            span = np.ptp(nu.outline_nm, axis=0).max() / 1000
            assert s.major_axis_um[0] * 0.8 < span < s.major_axis_um[1] * 1.2
            assert 1 <= len(nu.nucleoli_nm) <= 4
            for p in nu.nucleoli_nm:
                assert 0.6 < np.ptp(p, axis=0).max() / 1000 < 3.1


def test_3hpi_compartments_exclude_host_chromatin():
    from ainu_engine.simulate._smlm import _ellipse_r  # noqa: F401  (geometry helper used via polygons)

    """Host chromatin density inside compartments vs the nucleus: the class excludes 85 %
    (per nucleus 0.85 x lognormal(0.15)); clutches make counts lumpy, so the test asks for
    a mean density ratio below 0.45 over 6 nuclei of 1e5 localizations."""
    ratios = []
    for nu in nuclei("3hpi", 6, channels=("h3",), obs=Observation(locs_per_channel=1e5)):
        assert 1 <= len(nu.compartments_nm) <= 3
        inside = np.zeros(len(nu), bool)
        for poly in nu.compartments_nm:
            inside |= _inside_polygon(nu.x_nm, nu.y_nm, poly)
        area_in = sum(_poly_area(p) for p in nu.compartments_nm) / 1e6
        ratios.append((inside.sum() / area_in) / (len(nu) / nu.area_um2))
    assert np.mean(ratios) < 0.45 and max(ratios) < 0.8
    assert not nuclei("mock", 2, channels=("h3",))[0].compartments_nm


def _poly_area(p):
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def _inside_polygon(x, y, poly):
    inside = np.zeros(len(x), bool)
    px, py = poly[:, 0], poly[:, 1]
    for i in range(len(poly)):
        x1, y1, x2, y2 = px[i - 1], py[i - 1], px[i], py[i]
        cross = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= cross & (x < xint)
    return inside


def test_structure_tags_match_polygons():
    nu = nuclei("somatic", 1, channels=("polII",))[0]
    tagged = nu.structure == NUCLEOLUS
    in_poly = np.zeros(len(nu), bool)
    for p in nu.nucleoli_nm:
        in_poly |= _inside_polygon(nu.x_nm, nu.y_nm, p)
    # tags describe the emitter; the localization is displaced by ~14 nm, so a few cross
    assert np.mean(in_poly[tagged]) > 0.93
    assert (
        np.mean(_inside_polygon(nu.x_nm, nu.y_nm, nu.outline_nm)[nu.structure == PERIPHERY]) > 0.97
    )


def test_difficulty_scales_class_differences():
    assert effective_state("hiPSC", 0.0) == CELL_STATES["hiPSC"]
    a, b = effective_state("hiPSC", 1.0), effective_state("somatic", 1.0)
    assert replace(a, name="x") == replace(b, name="x")
    half = effective_state("hiPSC", 0.5).polII_nucleolar_fraction
    assert half == pytest.approx((0.22 + 0.14) / 2 + 0.5 * (0.22 - 0.18))
    with pytest.raises(ValueError, match="unknown cell state 'hipsc'.*did you mean hiPSC"):
        effective_state("hipsc")


def test_depth_kernel_matches_numpy_reference():
    """The Numba envelope kernel equals the float64 NumPy definition to 1e-9 nm."""
    from ainu_engine.simulate._smlm import _Geometry, depth_reference

    rng = np.random.default_rng(3)
    g = _Geometry(rng, effective_state("somatic", 0.0), np.array([9000.0, 9000.0]))
    x, y = rng.uniform(-1000, 19000, (2, 50_000))
    x[0], y[0] = 9000.0, 9000.0  # the centre itself
    ref = depth_reference(x, y, 9000.0, 9000.0, *g._shape())
    np.testing.assert_allclose(g.depth(x, y), ref, rtol=0, atol=1e-9)
    th = np.linspace(0, 2 * np.pi, 100)
    ring = np.stack([9000 + g.radius(th) * np.cos(th), 9000 + g.radius(th) * np.sin(th)])
    np.testing.assert_allclose(g.depth(*ring), 0.0, atol=1e-8)  # the outline has depth 0


def test_same_seed_same_nucleus():
    a = simulate_nucleus(
        "3hpi", rng=np.random.default_rng(7), channels=("polII", "h3"), observation=OBS
    )
    b = simulate_nucleus(
        "3hpi", rng=np.random.default_rng(7), channels=("polII", "h3"), observation=OBS
    )
    for k in ("x_nm", "y_nm", "frame", "channel", "structure", "precision_nm"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert np.all(np.diff(a.frame) >= 0)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_dataset_cli_insight3_deterministic_and_readable(tmp_path, capsys):
    args = [
        "simulate",
        "--classes",
        "hiPSC,somatic",
        "--n-per-class",
        "3",
        "--channels",
        "polII,h3",
        "--format",
        "insight3",
        "--seed",
        "1",
        "--locs-per-channel",
        "3000",
        "--roi",
    ]
    assert main([*args[:1], str(tmp_path / "a"), *args[1:]]) == 0
    assert main([*args[:1], str(tmp_path / "b"), *args[1:]]) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")  # byte-identical
    files = sorted((tmp_path / "a").glob("*.bin"))
    assert len(files) == 6
    capsys.readouterr()
    assert main(["info", "--json", *map(str, files)]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["camera_pixel_nm"] == 160 and set(r["channels"]) == {"1", "2"} for r in recs)
    import pyarrow.csv as pacsv

    manifest = pacsv.read_csv(tmp_path / "a" / "manifest.csv").to_pylist()
    assert [m["label"] for m in manifest] == ["hiPSC"] * 3 + ["somatic"] * 3
    for m in manifest:
        truth = json.loads((tmp_path / "a" / m["truth"]).read_text())
        assert truth["label"] == m["label"] and truth["data_file"] == m["path"]
        assert m["camera_pixel_nm"] == 160
        import pyarrow.parquet as pq

        tags = pq.read_table(tmp_path / "a" / truth["tags_file"])
        locs = read(tmp_path / "a" / m["path"])
        assert tags.num_rows == locs.n  # row-aligned ground truth
        assert set(np.unique(tags.column("structure").to_numpy())) <= {0, 1, 2, 3}
    other = tmp_path / "c"
    assert (
        main(
            [
                "simulate",
                str(other),
                "--classes",
                "hiPSC",
                "--n-per-class",
                "1",
                "--locs-per-channel",
                "3000",
                "--seed",
                "2",
            ]
        )
        == 0
    )


def test_multi_nucleus_files_and_field(tmp_path):
    m = simulate_dataset(
        tmp_path / "ids",
        classes=["mock"],
        n_per_class=3,
        nuclei_per_file=3,
        observation=Observation(locs_per_channel=3000),
    )
    locs = read(m.parent / "mock_0000.parquet")
    assert sorted(np.unique(locs.extra["cell_id"])) == [0, 1, 2]
    m = simulate_dataset(
        tmp_path / "field",
        classes=["mock"],
        n_per_class=2,
        nuclei_per_file=2,
        field_mode=True,
        roi=True,
        format="thunderstorm",
        observation=Observation(locs_per_channel=3000),
    )
    locs = read(m.parent / "mock_0000.csv")
    assert "cell_id" not in locs.extra
    import roifile

    rois = roifile.roiread(m.parent / "mock_0000.roi.zip")
    assert len(rois) == 2
    pts = rois[0].coordinates() * 160.0
    truth = json.loads((m.parent / "mock_0000.truth.json").read_text())
    np.testing.assert_allclose(pts, truth["nuclei"][0]["outline_nm"], atol=0.5)


def test_bad_requests(tmp_path, capsys):
    with pytest.raises(ValueError, match="Insight3 .bin has no cell-id field"):
        simulate_dataset(tmp_path, format="insight3", nuclei_per_file=2)
    assert main(["simulate", str(tmp_path / "x"), "--classes", "neuron"]) == 2
    assert "unknown cell state 'neuron'" in capsys.readouterr().err
    simulate_dataset(
        tmp_path / "y",
        classes=["mock"],
        n_per_class=1,
        observation=Observation(locs_per_channel=1000),
    )
    assert main(["simulate", str(tmp_path / "y"), "--classes", "mock", "--n-per-class", "1"]) == 1
    assert "exists already" in capsys.readouterr().err
