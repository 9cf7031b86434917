"""Occlusion equals captum.attr.Occlusion on the same model and input (64/32, 32/16, 32/8)."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.explain import occlusion
from ainu_engine.kernels._occlusion import fill_occluded, occlusion_reference, window_starts

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")
captum = pytest.importorskip("captum", reason="the train extra (captum) is not installed")


@pytest.fixture(scope="module")
def model():
    from ainu_engine.training.models import create_model

    torch.manual_seed(0)
    m = create_model("small_cnn", in_chans=2, num_classes=3).eval()
    return m


def _image(size, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.random((2, size, size), dtype=np.float32)
    img[:, size // 4 : size // 2, size // 3 : size // 2] += 2.0  # a structure the model reacts to
    return img


def test_window_starts_follow_captum():
    assert window_starts(512, 64, 32).tolist() == list(
        range(0, 449, 32)
    )  # 15 -> 225 windows on 512 px
    assert window_starts(100, 32, 16)[-1] == 80  # ceil(68/16) + 1 = 6 windows, the last clipped
    with pytest.raises(ValueError, match="stride"):
        window_starts(64, 8, 16)
    with pytest.raises(ValueError, match="larger than the image"):
        window_starts(16, 32, 8)


@pytest.mark.parametrize("window, stride, size", [(64, 32, 160), (32, 16, 112), (32, 8, 80)])
def test_equals_captum_occlusion(torch_threads, model, window, stride, size):
    from captum.attr import Occlusion

    img = _image(size)
    x = torch.from_numpy(img[None])
    for target in (0, 2):
        ref = (
            Occlusion(model)
            .attribute(
                x,
                sliding_window_shapes=(2, window, window),
                strides=(2, stride, stride),
                target=target,
                baselines=0.0,
                perturbations_per_eval=16,
            )[0]
            .numpy()
        )
        ours = occlusion(model, img, window=window, stride=stride, target=target, batch_size=7)
        assert ours.maps.shape == (1, size, size)
        scale = np.abs(ref).max()
        assert scale > 0
        for c in range(2):  # Captum spreads the same value over the channels a window covers
            assert np.abs(ours.maps[0] - ref[c]).max() <= 1e-5 * scale


def test_every_target_baseline_and_probabilities(torch_threads, model):
    from captum.attr import Occlusion

    img = _image(64, seed=1)
    x = torch.from_numpy(img[None])
    ours = occlusion(
        model, img, window=16, stride=8, target="all", baseline=0.5, output="probabilities"
    )
    assert ours.targets == [0, 1, 2]
    softmax = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)).eval()
    for t in range(3):
        ref = (
            Occlusion(softmax)
            .attribute(
                x, sliding_window_shapes=(2, 16, 16), strides=(2, 8, 8), target=t, baselines=0.5
            )[0, 0]
            .numpy()
        )
        # Captum's softmax runs in float32: probabilities ~0.3 carry ~3e-8 of rounding
        assert np.abs(ours.map_for(t) - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-7
    # the probability deltas of all classes sum to zero at every pixel
    np.testing.assert_allclose(ours.maps.sum(0), 0.0, atol=1e-6)
    pred = occlusion(model, img, window=16, stride=8)
    assert pred.targets == [int(np.argmax(pred.output))]


def test_kernels_against_the_one_window_at_a_time_reference(torch_threads, model):
    img = _image(48, seed=2)

    def fwd(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    ref = occlusion_reference(fwd, img, window=16, stride=8, target=1)
    ours = occlusion(model, img, window=16, stride=8, target=1, batch_size=5).maps[0]
    assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()
    buf = np.empty((2, 2, 48, 48), np.float32)
    base = np.full_like(img, 7.0)
    fill_occluded(img, base, np.array([0, 40]), np.array([40, 0]), 16, 16, buf)
    assert (buf[0, :, :16, 40:] == 7).all() and (buf[0, :, 16:, :] == img[:, 16:, :]).all()
    assert (buf[1, :, 40:, :16] == 7).all() and (
        buf[1, :, :40] == img[:, :40]
    ).all()  # clipped window


def test_batches_of_images_give_the_single_image_maps(torch_threads, model):
    imgs = np.stack([_image(64, seed=s) for s in range(3)])
    many = occlusion(model, imgs, window=32, stride=16, target=0, batch_size=6)
    for i, a in enumerate(many):
        one = occlusion(model, imgs[i], window=32, stride=16, target=0)
        np.testing.assert_allclose(a.maps, one.maps, atol=1e-5 * np.abs(one.maps).max())


@pytest.mark.slow
def test_cuda_kernels_equal_the_cpu_kernels():
    """In Numba's CUDA simulator in the normal run; on the GPU with AINU_REAL_GPU=1."""
    from numba import config, cuda

    if not config.ENABLE_CUDASIM and not cuda.is_available():
        pytest.skip(
            "needs Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set by conftest) or a CUDA GPU"
        )

    from ainu_engine.kernels._occlusion import accumulate_deltas, window_grid
    from ainu_engine.kernels._occlusion_cuda import accumulate_deltas_cuda, fill_occluded_cuda

    rng = np.random.default_rng(3)
    img = rng.random((2, 12, 10), dtype=np.float32)
    base = np.full_like(img, -1.0)
    tops, lefts = window_grid(12, 10, (5, 4), (3, 2))
    cpu = np.empty((len(tops), 2, 12, 10), np.float32)
    fill_occluded(img, base, tops, lefts, 5, 4, cpu)
    d_out = cuda.device_array(cpu.shape, np.float32)
    fill_occluded_cuda(
        cuda.to_device(img),
        cuda.to_device(base),
        cuda.to_device(tops),
        cuda.to_device(lefts),
        5,
        4,
        d_out,
    )
    np.testing.assert_array_equal(d_out.copy_to_host(), cpu)
    deltas = rng.random((len(tops), 2))
    a_cpu, c_cpu = np.zeros((2, 12, 10)), np.zeros((12, 10), np.int64)
    accumulate_deltas(deltas, tops, lefts, 5, 4, a_cpu, c_cpu)
    d_a, d_c = cuda.to_device(np.zeros((2, 12, 10))), cuda.to_device(np.zeros((12, 10), np.int64))
    accumulate_deltas_cuda(
        cuda.to_device(deltas), cuda.to_device(tops), cuda.to_device(lefts), 5, 4, d_a, d_c
    )
    np.testing.assert_allclose(d_a.copy_to_host(), a_cpu, rtol=1e-12)
    np.testing.assert_array_equal(d_c.copy_to_host(), c_cpu)
