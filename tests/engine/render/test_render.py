"""ainu_engine.render: RenderSpec, geometry of the render, masks, resizing, scaling, patches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ainu_engine.errors import RenderError
from ainu_engine.io import Localizations, Metadata
from ainu_engine.kernels import kde_reference
from ainu_engine.render import RenderSpec, extract_patches, nucleus_mask, render, select_device


def locs_at(x, y, **kw):
    return Localizations(np.asarray(x, float), np.asarray(y, float), **kw)


def disc(n=20_000, r=4000.0, centre=(10_000.0, 8000.0), seed=0, **kw):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    rr = r * np.sqrt(rng.uniform(0, 1, n))
    return locs_at(centre[0] + rr * np.cos(t), centre[1] + rr * np.sin(t), **kw)


def test_spec_validation_and_serialisation():
    spec = RenderSpec(magnification=30, camera_pixel_nm=160, channels=[1, 2], outside=1.0)
    assert spec.resolved_pixel_nm() == pytest.approx(160 / 30)
    assert RenderSpec.from_json(spec.to_json()) == spec
    assert spec.hash() == RenderSpec.from_dict(spec.to_dict()).hash()
    assert RenderSpec(magnification=10).resolved_pixel_nm(160.0) == 16.0
    for bad in [
        dict(pixel_nm=0),
        dict(sigma_nm=-1),
        dict(truncate=float("inf")),
        dict(normalization="gauss"),
        dict(size=-1),
        dict(channels=(1, 1)),
        dict(scaling="log"),
        dict(percentile=0),
    ]:
        with pytest.raises(ValueError):
            RenderSpec(**bad)
    with pytest.raises(ValueError, match="unknown RenderSpec fields: colour"):
        RenderSpec.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="needs a camera pixel size"):
        RenderSpec(magnification=10).resolved_pixel_nm()


def test_raw_render_geometry_equals_the_reference():
    loc = disc(500, seed=1)
    spec = RenderSpec(pixel_nm=40, sigma_nm=30, size=0)
    r = render(loc, spec, device="cpu")
    c_n, h, w = r.image.shape
    assert r.origin_nm[0] % 40 == 0 and r.origin_nm[1] % 40 == 0  # pixel-aligned
    ref = kde_reference(
        loc.x_nm,
        loc.y_nm,
        30.0,
        np.zeros(loc.n, int),
        shape=(1, h, w),
        origin_nm=r.origin_nm,
        pixel_nm=40.0,
    )
    np.testing.assert_allclose(r.image, ref, rtol=1e-4, atol=1e-6 * ref.max())
    # the margin holds the kernel support: the image of N localizations sums to ~N
    assert r.image.sum() == pytest.approx(loc.n, rel=1e-3)
    assert r.origin_nm[0] <= loc.x_nm.min() - 5 * 30 and r.origin_nm[1] <= loc.y_nm.min() - 5 * 30


def test_pixels_map_back_to_nm_after_resize_and_pad():
    """One localization per corner of a 12 x 4 µm rectangle: after resizing to 256 and
    padding, each bright spot is where pixel_to_nm says, within one output pixel."""
    pts = np.array([[1000, 2000], [13000, 2000], [1000, 6000], [13000, 6000], [7000, 4000]], float)
    many = np.repeat(pts, 200, axis=0)
    r = render(
        locs_at(many[:, 0], many[:, 1]),
        RenderSpec(pixel_nm=20, sigma_nm=60, size=256),
        device="cpu",
    )
    assert r.image.shape == (1, 256, 256)
    assert r.pixel_nm == pytest.approx(r.raw_shape[2] * 20 / 256)  # the longest axis fills 256
    img = r.image[0]
    for px, py in pts:
        j = int((px - r.origin_nm[0]) / r.pixel_nm)
        i = int((py - r.origin_nm[1]) / r.pixel_nm)
        win = img[i - 1 : i + 2, j - 1 : j + 2]
        assert win.max() > 0.5 * img.max()
        ci, cj = np.unravel_index(win.argmax(), win.shape)
        cx, cy = r.pixel_to_nm(i - 1 + ci, j - 1 + cj)
        assert abs(cx - px) <= r.pixel_nm and abs(cy - py) <= r.pixel_nm
    # aspect ratio kept: the spots span 12 µm in x and 4 µm in y
    assert r.mask.shape == (256, 256)


def test_channels_normalisation_and_scaling():
    a = disc(3000, seed=2, channel=np.r_[np.full(1500, 1), np.full(1500, 2)])
    raw = render(a, RenderSpec(pixel_nm=50, sigma_nm=40, size=0, channels=(2, 1)), device="cpu")
    assert raw.image.shape[0] == 2 and raw.n_localizations == {0: 1500, 1: 1500}
    sk = render(
        a,
        RenderSpec(pixel_nm=50, sigma_nm=40, size=0, channels=(2, 1), normalization="sklearn"),
        device="cpu",
    )
    np.testing.assert_allclose(sk.image, raw.image / (1500 * 50.0**2), rtol=1e-6)
    out = render(a, RenderSpec(pixel_nm=50, sigma_nm=40, size=128, channels=(1, 2)), device="cpu")
    np.testing.assert_allclose(out.image.max(axis=(1, 2)), 1.0)
    pct = render(
        a,
        RenderSpec(pixel_nm=50, sigma_nm=40, size=128, scaling="percentile", percentile=90),
        device="cpu",
    )
    assert pct.image.max() == 1.0 and (pct.image == 1.0).mean() > 0.01
    white = render(a, RenderSpec(pixel_nm=50, sigma_nm=40, size=128, outside=1.0), device="cpu")
    assert np.all(white.image[:, ~white.mask] == 1.0) and (~white.mask).sum() > 0
    with pytest.raises(RenderError, match=r"no localizations in channels \[7\]"):
        render(a, RenderSpec(channels=(7,)), device="cpu")


def test_sigma_from_precision_with_floor():
    loc = locs_at([1000.0, 3000.0], [1000.0, 1000.0], precision_nm=[1.0, 40.0])
    r = render(
        loc,
        RenderSpec(pixel_nm=10, sigma_from_precision=True, sigma_floor_nm=8, size=0),
        device="cpu",
    )
    ref = kde_reference(
        loc.x_nm,
        loc.y_nm,
        [8.0, 40.0],
        [0, 0],
        shape=r.image.shape,
        origin_nm=r.origin_nm,
        pixel_nm=10.0,
    )
    np.testing.assert_allclose(r.image, ref, rtol=1e-4, atol=1e-9)
    with pytest.raises(RenderError, match="needs a localization precision column"):
        render(locs_at([1.0], [1.0]), RenderSpec(sigma_from_precision=True), device="cpu")


def test_mask_from_localizations_matches_the_simulated_outline():
    from ainu_engine.simulate import Observation, simulate_nucleus

    nu = simulate_nucleus(
        "somatic",
        rng=np.random.default_rng(3),
        channels=("h3",),
        observation=Observation(locs_per_channel=5e4),
    )
    loc = locs_at(nu.x_nm, nu.y_nm)
    r = render(loc, RenderSpec(pixel_nm=40, sigma_nm=30, size=0), device="cpu")
    assert r.area_um2 == pytest.approx(nu.area_um2, rel=0.08)
    roi = render(
        loc, RenderSpec(pixel_nm=40, sigma_nm=30, size=0), device="cpu", roi_nm=nu.outline_nm
    )
    assert roi.area_um2 == pytest.approx(nu.area_um2, rel=0.02)
    agree = (r.mask == roi.mask).mean() if r.mask.shape == roi.mask.shape else None
    assert agree is None or agree > 0.95


def test_mask_of_sparse_data_is_one_component():
    loc = disc(800, r=3000, seed=4)
    rng = np.random.default_rng(5)
    noise = locs_at(rng.uniform(0, 20000, 40), rng.uniform(0, 16000, 40))
    both = Localizations.concat([loc, noise])
    m = nucleus_mask(
        both.x_nm.astype(float),
        both.y_nm.astype(float),
        shape=(160, 200),
        origin_nm=(0.0, 0.0),
        pixel_nm=100.0,
    )
    from scipy import ndimage

    assert ndimage.label(m)[1] == 1
    area = m.sum() * 0.01
    assert area == pytest.approx(np.pi * 9, rel=0.35)  # a 3 µm disc from 800 points


def test_errors_and_devices():
    with pytest.raises(RenderError, match="raw render would be"):
        render(locs_at([0.0, 1e9], [0.0, 1e9]), RenderSpec(pixel_nm=1), device="cpu")
    dev, note = select_device("auto")
    assert dev == "cpu" and "no CUDA GPU" in note  # the simulator is never chosen by auto
    with pytest.raises(ValueError, match="device must be"):
        select_device("tpu")
    with pytest.raises(RenderError, match="camera pixel"):
        render(locs_at([0.0], [0.0]), RenderSpec(magnification=10), device="cpu")
    loc = locs_at([0.0], [0.0], meta=Metadata(camera_pixel_nm=(160.0, 160.0)))
    assert render(loc, RenderSpec(magnification=10, size=0), device="cpu").pixel_nm == 16.0


def test_cuda_path_equals_cpu_path_under_the_simulator():
    from ainu_engine.kernels._kde_cuda import cuda_available

    if not cuda_available(allow_simulator=True):
        pytest.skip("no CUDA GPU and the CUDA simulator is not enabled")
    loc = disc(25, r=150, seed=6)
    spec = RenderSpec(pixel_nm=25, sigma_nm=30, size=0)
    gpu = render(loc, spec, device="cuda")
    cpu = render(loc, spec, device="cpu")
    assert gpu.device == "cuda"
    np.testing.assert_allclose(gpu.image, cpu.image, rtol=1e-5, atol=1e-7)


def test_patches_keep_occupied_tiles_only():
    loc = disc(30_000, r=3000, seed=7)
    r = render(loc, RenderSpec(pixel_nm=20, sigma_nm=25, size=0), device="cpu")
    patches = extract_patches(r, 64)
    assert patches and all(p.occupied_fraction > 0.75 for p in patches)
    _, h, w = r.image.shape
    assert len(patches) < (h // 64) * (w // 64)  # corner tiles outside the disc are dropped
    p = patches[0]
    np.testing.assert_array_equal(p.image, r.image[:, p.row : p.row + 64, p.col : p.col + 64])
    assert p.origin_nm == (r.origin_nm[0] + p.col * 20, r.origin_nm[1] + p.row * 20)
    with pytest.raises(ValueError, match="raw render"):
        extract_patches(render(loc, RenderSpec(pixel_nm=20, size=64), device="cpu"), 16)


def test_sidecar_is_json():
    r = render(disc(100), RenderSpec(pixel_nm=50, size=64), device="cpu")
    doc = json.loads(json.dumps(r.sidecar()))
    assert doc["pixel_nm"] == r.pixel_nm and RenderSpec.from_dict(doc["render_spec"]) == r.spec


def test_sklearn_method_matches_kernel_density():
    pytest.importorskip("sklearn")
    from ainu_engine.render import render_sklearn

    loc = disc(300, r=1500, seed=8)
    spec = RenderSpec(pixel_nm=40, sigma_nm=35, size=0)
    fast = render(loc, spec, device="cpu")
    slow = render_sklearn(loc, spec, like=fast)
    bright = slow.image > 0.01 * slow.image.max()
    assert np.max(np.abs(fast.image[bright] - slow.image[bright]) / slow.image[bright]) <= 5e-4
    with pytest.raises(RenderError, match="exceed max_localizations"):
        render_sklearn(loc, spec, max_localizations=10)


@pytest.mark.parametrize(
    "ids", [None, [0, 1, 2, 3, 2, 1], [-2, 0, 3, 1, -2, 5], [0, 70000, 1, 69999, 2, 1]]
)
@pytest.mark.parametrize("channels", [(1, 2), (0,), (2, 1, 0), (5,), (-2, 3), (70000, 1)])
def testchannel_index_maps_file_ids_to_image_channels(ids, channels):
    from ainu_engine.io import Localizations
    from ainu_engine.render._render import channel_index

    n = 6
    locs = Localizations(np.zeros(n), np.zeros(n), channel=ids)
    file_ids = [0] * n if ids is None else ids
    want = [channels.index(c) if c in channels else -1 for c in file_ids]
    assert channel_index(locs, RenderSpec(channels=channels)).tolist() == want
