"""Manifests and the render cache: errors name the file and line, the cache never re-renders."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.errors import InputError, MissingColumnError
from ainu_engine.render import RenderSpec
from ainu_engine.simulate import Observation, simulate_dataset
from ainu_engine.training.data import Manifest, RenderCache, load_nuclei, read_manifest

SPEC = RenderSpec(pixel_nm=200, sigma_nm=150, size=32, channels=(1,))  # Pol II of the two


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    return simulate_dataset(
        out,
        classes=("hiPSC", "somatic"),
        n_per_class=3,
        channels=("polII", "h3"),
        observation=Observation(locs_per_channel=3000),
        seed=3,
    )


def test_simulated_manifest_reads_with_groups_and_channel_names(sim):
    m = read_manifest(sim)
    assert m.classes == ("hiPSC", "somatic")
    assert len(m) == 6 and all(p.is_file() for p in m.files)
    assert m.groups is not None and len(set(m.groups)) > 1
    assert m.channel_names == ("polII", "h3")
    assert m.y.tolist() == [m.classes.index(v) for v in m.labels]
    assert len(m.sha256) == 64


@pytest.mark.parametrize(
    "text, exc, words",
    [
        ("file,label\na.bin,x\n", MissingColumnError, "no 'path' column"),
        (
            "path,label\na.bin,x\nmissing.bin,y\n",
            InputError,
            "line 3: listed file 'missing.bin' does not exist",
        ),
        ("path,label\na.bin,x\nb.bin,x\n", InputError, "at least two classes"),
        ("path,label\na.bin,\n", InputError, "line 2: empty label"),
        ("path,label,group\na.bin,x,g\nb.bin,y,\n", InputError, "line 3: empty group"),
    ],
)
def test_bad_manifests_name_file_and_line(tmp_path, text, exc, words):
    for n in ("a.bin", "b.bin"):
        (tmp_path / n).write_bytes(b"")
    p = tmp_path / "m.csv"
    p.write_text(text)
    with pytest.raises(exc) as info:
        read_manifest(p)
    msg = str(info.value)
    assert str(p) in msg and words in msg, msg
    assert "\n" not in msg


def test_labels_outside_the_models_classes_are_refused(sim):
    with pytest.raises(InputError, match="not among the model's classes"):
        read_manifest(sim, classes=("mock", "1hpi"))


def test_cache_renders_once_and_keys_on_content_and_spec(sim, tmp_path):
    m = read_manifest(sim)
    cache = RenderCache(tmp_path / "cache", device="cpu")
    spec = RenderSpec.from_dict({**SPEC.to_dict(), "channels": (1, 2)})
    a = load_nuclei(m, spec, cache)
    assert (cache.misses, cache.hits) == (6, 0) and len(a) == 6
    assert np.asarray(a.images[0]).shape == (2, 32, 32)
    b = load_nuclei(
        m, spec, RenderCache(tmp_path / "cache", device="cpu")
    )  # a new process would see this
    for x, y in zip(a.images, b.images, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    cache2 = RenderCache(tmp_path / "cache", device="cpu")
    load_nuclei(m, spec, cache2)
    assert (cache2.misses, cache2.hits) == (0, 6)
    other = RenderSpec.from_dict({**spec.to_dict(), "sigma_nm": 100.0})
    load_nuclei(m, other, cache2)
    assert cache2.misses == 6  # another RenderSpec is another entry
    assert cache2.key(m.files[0], spec) != cache2.key(m.files[1], spec)
    assert a.stats[0]["n_localizations"][0] > 0 and a.stats[0]["area_um2"] > 0
    ts = a.training_stats()
    assert ts["n_nuclei"] == 6 and len(ts["localizations_per_channel"]) == 2
    assert ts["area_um2"]["min"] <= ts["area_um2"]["p99"] <= ts["area_um2"]["max"]


def test_bad_row_is_recorded_and_the_rest_goes_on(sim, tmp_path):
    m = read_manifest(sim)
    bad = tmp_path / "broken.csv"
    bad.write_text("x,y\n1,2\nnot,numbers\n")
    m2 = Manifest.from_rows(list(m.files) + [bad], list(m.labels) + ["hiPSC"], classes=m.classes)
    data = load_nuclei(m2, SPEC, RenderCache(tmp_path / "c", device="cpu"))
    assert list(data.failed) == [6] and "broken.csv" in data.failed[6]
    assert len(data) == 6 and 6 not in data.owner


def test_a_two_channel_file_is_never_merged_into_one_training_channel(sim, tmp_path):
    m = read_manifest(sim)
    merged = RenderSpec.from_dict({**SPEC.to_dict(), "channels": None})
    data = load_nuclei(m, merged, RenderCache(tmp_path / "c", device="cpu"))
    assert len(data) == 0 and len(data.failed) == len(m)
    msg = data.failed[0]
    assert "1 (polII), 2 (h3)" in msg and "--channels 1" in msg


def test_rendered_images_are_accepted_when_they_fit_the_spec(tmp_path):
    good = tmp_path / "a.npy"
    np.save(good, np.random.default_rng(0).random((1, 32, 32), dtype=np.float32))
    wrong = tmp_path / "b.npy"
    np.save(wrong, np.zeros((1, 16, 16), np.float32))
    m = Manifest.from_rows([good, wrong], ["x", "y"])
    data = load_nuclei(m, SPEC, RenderCache(tmp_path / "c"))
    np.testing.assert_array_equal(np.asarray(data.images[0]), np.load(good))
    assert "rendered image is 1x16x16" in data.failed[1] and "1x32x32" in data.failed[1]


def test_patch_mode_items_belong_to_their_nucleus(sim, tmp_path):
    m = read_manifest(sim)
    spec = RenderSpec(pixel_nm=100, sigma_nm=100, size=0, channels=(1,))
    data = load_nuclei(
        m, spec, RenderCache(tmp_path / "c", device="cpu"), patch_size=32, min_occupied=0.5
    )
    assert len(data) > len(m)  # several patches per nucleus
    assert all(np.asarray(im).shape == (1, 32, 32) for im in data.images)
    assert all(
        float(np.asarray(im).max()) == pytest.approx(1.0) for im in data.images
    )  # scaled per patch
    for row in range(len(m)):
        assert set(data.y[data.owner == row].tolist()) <= {int(m.y[row])}
    assert set(data.items_of(np.array([0]))) == set(np.flatnonzero(data.owner == 0))
