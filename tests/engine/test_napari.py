"""The napari plugin (ainu_engine.napari): its npe2 manifest, the reader on the real files of
other software and on the engine's own, and the widget's work without Qt (the widget itself
only where napari and a Qt binding are installed)."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ainu_engine.errors import AinuError
from ainu_engine.io import FORMATS, read
from ainu_engine.napari import (
    META_KEY,
    classify_points,
    get_reader,
    layers_of,
    read_layers,
    same_file_points,
)

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "engine" / "napari" / "napari.yaml"
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
NUCLEUS = REPO / "examples" / "screen" / "slide1" / "hiPSC_0000.bin"


def _patterns() -> list[str]:
    import yaml

    doc = yaml.safe_load(MANIFEST.read_text())
    (reader,) = doc["contributions"]["readers"]
    return reader["filename_patterns"]


def test_manifest_is_valid_for_npe2():
    npe2 = pytest.importorskip("npe2", reason="npe2 (dev extra) validates the manifest")
    pm = npe2.PluginManifest.from_file(MANIFEST)
    assert pm.name == "ainu-engine"
    commands = {c.id: c.python_name for c in pm.contributions.commands}
    assert commands == {
        "ainu-engine.get_reader": "ainu_engine.napari:get_reader",
        "ainu-engine.classify_widget": "ainu_engine.napari:make_classify_widget",
    }
    # the installed package's entry point finds it, and every python_name imports
    exe = shutil.which("npe2", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the npe2 command is not installed beside this Python")
    done = subprocess.run([exe, "validate", "ainu-engine", "--imports"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout


def test_manifest_patterns_cover_every_format_the_engine_reads():
    patterns = _patterns()
    for fmt in FORMATS.values():
        for ext in fmt.extensions:
            assert f"*{ext}" in patterns, f"{fmt.name}: *{ext} missing from napari.yaml"


def test_reader_declines_what_the_engine_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("not a table of localizations\n\x00\x01")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "picture.png")) is None
    assert get_reader(str(tmp_path)) is None  # a folder
    assert get_reader(str(tmp_path / "missing.csv")) is None


def test_reader_on_every_real_file(shared_formats):
    """Each real file of other software: a points layer a channel with every localization, in
    nm and (y, x) order, and a render whose pixels cover the points; a file the engine cannot
    convert to nm is a clear error naming it, as `ainu-engine info` says."""
    seen = 0
    for path in sorted(p for p in shared_formats.rglob("*") if p.is_file()):
        if not any(fnmatch.fnmatch(path.name, pat) for pat in _patterns()):
            continue
        if path.suffix in (".md", ".yaml"):
            continue
        reader = get_reader(str(path))
        assert reader is read_layers, path
        try:
            locs = read(path)
        except AinuError as err:
            with pytest.raises(AinuError) as again:
                reader(str(path))
            assert str(path) in str(again.value) and str(again.value) == str(err)
            continue
        layers = reader(str(path))
        points = [L for L in layers if L[2] == "points"]
        assert sum(len(d) for d, _, _ in points) == len(locs), path
        for data, kw, _ in points:
            meta = kw["metadata"][META_KEY]
            sel = locs.channel == meta["channel"] if locs.channel is not None else slice(None)
            np.testing.assert_allclose(data[:, 0], locs.y_nm[sel], rtol=1e-6, atol=1e-2)
            np.testing.assert_allclose(data[:, 1], locs.x_nm[sel], rtol=1e-6, atol=1e-2)
            assert meta["source"] == str(path) and not meta["subset"]
        images = [L for L in layers if L[2] == "image"]
        if len(locs):
            assert len(images) == len(points)  # one a channel
            for img, kw, _ in images:
                p = kw["scale"][0]
                y0, x0 = kw["translate"][0] - p / 2, kw["translate"][1] - p / 2
                assert y0 <= locs.y_nm.min() and y0 + img.shape[0] * p >= locs.y_nm.max()
                assert x0 <= locs.x_nm.min() and x0 + img.shape[1] * p >= locs.x_nm.max()
            assert sum(float(img.sum()) for img, _, _ in images) > 0
        else:
            assert images == []
        seen += 1
    assert seen >= 9


def test_points_layers_are_subsampled_above_the_limit(monkeypatch):
    import ainu_engine.napari._reader as R

    monkeypatch.setattr(R, "MAX_POINTS", 1000)
    locs = read(NUCLEUS)
    (data, kw, _), _ = layers_of(locs, name="n")
    meta = kw["metadata"][META_KEY]
    assert len(data) == 1000 and meta["subset"] and meta["n_localizations"] == len(locs)
    assert "1,000 of" in kw["name"]


def _as_layers(tuples):
    """Stand-ins for napari points layers: what the widget reads of one."""
    return [
        SimpleNamespace(data=d, name=kw["name"], metadata=kw["metadata"], scale=(1.0, 1.0),
                        translate=(0.0, 0.0))
        for d, kw, t in tuples
        if t == "points"
    ]  # fmt: skip


def test_classify_points_gives_the_engines_call_and_map():
    from ainu_engine import Classifier
    from ainu_engine.explain import default_window, occlusion

    layers = _as_layers(read_layers(str(NUCLEUS)))
    call = classify_points(layers, MODEL)
    with Classifier.load(MODEL, device="cpu", render_device="cpu") as clf:
        prep = clf.prepare(read(NUCLEUS))
        (pred,) = clf.predict_prepared([prep])
        w, s = default_window(clf.info.input_size)
        ref = occlusion(clf, prep.items[0], window=w, stride=s,
                        target=list(clf.info.classes).index(pred.label))  # fmt: skip
    assert call.label == pred.label
    for c, v in pred.probabilities.items():
        assert call.probabilities[c] == pytest.approx(v, abs=1e-5)
    (inp, ikw, _), (amap, akw, _) = call.layers  # one channel in, the map
    np.testing.assert_allclose(inp, prep.items[0][0], atol=1e-6)
    np.testing.assert_allclose(amap, ref.maps[0], rtol=1e-4, atol=1e-5)
    assert ikw["scale"] == akw["scale"] == (prep.rendered.pixel_nm,) * 2
    assert -akw["contrast_limits"][0] == akw["contrast_limits"][1] > 0
    assert pred.label in call.text and "p = " in call.text


def test_classify_points_follows_the_layers_world_coordinates():
    """A layer moved by its translate is a nucleus elsewhere: the same call, the output
    layers moved with it."""
    layers = _as_layers(read_layers(str(NUCLEUS)))
    here = classify_points(layers, MODEL, explain=False)
    for L in layers:
        L.translate = (5000.0, -3000.0)
    there = classify_points(layers, MODEL, explain=False)
    assert there.label == here.label
    assert there.probabilities == pytest.approx(here.probabilities, abs=1e-4)
    (_, a, _), (_, b, _) = here.layers[0], there.layers[0]
    assert b["translate"][0] - a["translate"][0] == pytest.approx(5000.0, abs=1.0)
    assert b["translate"][1] - a["translate"][1] == pytest.approx(-3000.0, abs=1.0)


def test_classify_points_says_when_there_is_nothing():
    empty = SimpleNamespace(data=np.zeros((0, 2)), name="empty", metadata={})
    with pytest.raises(ValueError, match="no points"):
        classify_points([empty], MODEL)


def test_the_other_channels_of_the_same_file_join():
    class Points(SimpleNamespace):
        pass

    a = Points(name="a", metadata={META_KEY: {"source": "/f.csv"}})
    b = Points(name="b", metadata={META_KEY: {"source": "/f.csv"}})
    c = Points(name="c", metadata={META_KEY: {"source": "/g.csv"}})
    image = SimpleNamespace(name="i", metadata={META_KEY: {"source": "/f.csv"}})
    assert same_file_points(a, [a, image, b, c]) == [a, b]
    lone = SimpleNamespace(name="d", metadata={})
    assert same_file_points(lone, [a, b]) == [lone]


#: CI sets this: there the napari tests must run, and a missing napari or display fails them
REQUIRED = os.environ.get("AINU_REQUIRE_NAPARI") == "1"


def _skip(reason: str):
    if REQUIRED:
        pytest.fail(f"AINU_REQUIRE_NAPARI=1, but {reason}")
    pytest.skip(reason)


@pytest.fixture
def viewer():
    """A hidden napari viewer on a real display (Xvfb in CI: ``make test`` runs the suite under
    ``xvfb-run`` where it finds one). Without a display Qt would abort the whole process, and
    Qt's offscreen platform has no OpenGL for napari's canvas: skipped, saying why."""
    try:
        import napari
        import qtpy  # noqa: F401 - raises when it finds no Qt binding
    except Exception as err:  # noqa: BLE001 - ImportError, or qtpy's own error
        _skip(f"napari with a Qt binding is not installed (pip install 'ainu-engine[napari]'): "
              f"{err}")  # fmt: skip
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        _skip("no display for Qt (run the suite under xvfb-run, as make test does where it can)")
    v = napari.Viewer(show=False)
    try:
        yield v
    finally:
        v.close()


def test_napari_opens_real_files_through_the_manifest(viewer, shared_formats):
    """napari's own open (the npe2 manifest, then our reader) on real files of other software:
    a points layer and a render a channel, named after the file and channel."""
    files = [
        p
        for p in sorted(shared_formats.rglob("*"))
        if p.is_file() and p.suffix in (".csv", ".bin", ".hdf5", ".h5")
    ]
    opened = 0
    for path in files:
        try:
            locs = read(path)
        except AinuError:
            continue
        if not len(locs):
            continue
        before = len(viewer.layers)
        layers = viewer.open(str(path), plugin="ainu-engine")
        kinds = [type(L).__name__ for L in layers]
        n_channels = 1 if locs.channel is None else len(np.unique(locs.channel))
        assert kinds.count("Points") == n_channels and kinds.count("Image") == n_channels, path
        assert len(viewer.layers) == before + len(layers)
        assert sum(len(L.data) for L in layers if type(L).__name__ == "Points") == len(locs)
        assert all(path.name in L.name for L in layers)
        opened += 1
        viewer.layers.clear()
    assert opened >= 4


def test_widget_under_qt(viewer):
    from ainu_engine.napari import make_classify_widget

    opened = viewer.open(str(NUCLEUS), plugin="ainu-engine")  # through the manifest
    assert [type(L).__name__ for L in opened] == ["Points", "Image"]
    widget = make_classify_widget()
    points = next(L for L in viewer.layers if type(L).__name__ == "Points")
    out = widget(points=points, model=MODEL, explain=True, viewer=viewer)
    assert any("occlusion" in kw["name"] for _, kw, _ in out)
    assert any(L.name.startswith("occlusion") for L in viewer.layers)  # napari added them
    assert widget.call.value.split(" ")[0] in ("hiPSC", "somatic")
