"""The Numba-CUDA kernel against the float64 reference. In the normal test run it runs in
Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set by the repository conftest) on tiny
inputs; with AINU_REAL_GPU=1 on a GPU machine it runs on the device."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.kernels import kde_reference, render_kde_cpu

kde_cuda = pytest.importorskip("ainu_engine.kernels._kde_cuda")

if not kde_cuda.cuda_available(allow_simulator=True):
    pytest.skip("no CUDA GPU and the CUDA simulator is not enabled", allow_module_level=True)

P = 16.0
KW = dict(shape=(2, 20, 35), origin_nm=(-30.0, -20.0), pixel_nm=P)


def check(img, ref):
    bright = ref > 0.01 * ref.max()
    assert img.dtype == np.float32 and img.shape == ref.shape
    assert np.max(np.abs(img[bright] - ref[bright]) / ref[bright]) <= 1e-4
    assert np.max(np.abs(img - ref)) <= 1e-6 * ref.max()


@pytest.mark.parametrize("sigma", [20.0, 3.0, "per-localization"])
def test_cuda_kernel_matches_reference(sigma):
    rng = np.random.default_rng(4)
    n = 30
    x = rng.uniform(-100, 600, n)  # some outside the image
    y = rng.uniform(-100, 350, n)
    ch = rng.integers(-1, 2, n).astype(np.int32)
    x[0], y[0] = -30.0 + 5 * P, -20.0 + 3 * P  # on a pixel corner
    s = rng.uniform(3, 40, n) if sigma == "per-localization" else sigma
    ref = kde_reference(x, y, s, ch, **KW)
    img = kde_cuda.render_kde_cuda(x, y, s, ch, **KW)
    check(img, ref)
    np.testing.assert_allclose(img, render_kde_cpu(x, y, s, ch, **KW), rtol=1e-5, atol=1e-7)


def test_cuda_kernel_zero_points_and_device_output():
    img = kde_cuda.render_kde_cuda(np.zeros(0), np.zeros(0), 20.0, np.zeros(0, np.int32), **KW)
    assert img.shape == KW["shape"] and not img.any()
    d = kde_cuda.render_kde_cuda([100.0], [80.0], 20.0, [1], to_host=False, **KW)
    host = d.copy_to_host()
    assert host[1].sum() > 0.9 and host[0].sum() == 0


def test_cuda_kernel_rejects_too_many_channels():
    with pytest.raises(ValueError, match="at most 4 channels"):
        kde_cuda.render_kde_cuda(
            [1.0], [1.0], 20.0, [0], shape=(5, 4, 4), origin_nm=(0, 0), pixel_nm=P
        )


def test_cupy_inputs_and_output_stay_on_the_gpu():
    """Inputs already in GPU memory (CuPy) are used in place and the result can stay there.
    Needs a real GPU with CuPy: skipped elsewhere (CuPy has no simulator)."""
    from numba import config

    if config.ENABLE_CUDASIM:
        pytest.skip(
            "CuPy needs a real GPU; the suite runs CUDA kernels in the simulator "
            "(set AINU_REAL_GPU=1 on a GPU machine)"
        )
    cp = pytest.importorskip("cupy", reason="CuPy is not installed (cuda12/cuda13 extra)")
    rng = np.random.default_rng(8)
    x, y = rng.uniform(0, 500, 200), rng.uniform(0, 300, 200)
    ch = rng.integers(0, 2, 200).astype(np.int32)
    d = kde_cuda.render_kde_cuda(
        cp.asarray(x), cp.asarray(y), 20.0, cp.asarray(ch), to_host=False, **KW
    )
    img = cp.asarray(d)  # zero-copy view through __cuda_array_interface__
    assert isinstance(img, cp.ndarray)
    check(cp.asnumpy(img), kde_reference(x, y, 20.0, ch, **KW))


def test_cuda_kernel_tile_with_several_chunks_of_localizations():
    """More localizations in one tile than the kernel stages at once (CHUNK): the chunk loop,
    its synchronisation and the separable weights of every chunk."""
    rng = np.random.default_rng(11)
    n = 2 * kde_cuda.CHUNK + 7
    kw = dict(shape=(1, 16, 16), origin_nm=(0.0, 0.0), pixel_nm=P)  # one tile
    x, y = rng.uniform(20, 230, n), rng.uniform(20, 230, n)
    ch = np.zeros(n, np.int32)
    img = kde_cuda.render_kde_cuda(x, y, 20.0, ch, **kw)
    check(img, kde_reference(x, y, 20.0, ch, **kw))
