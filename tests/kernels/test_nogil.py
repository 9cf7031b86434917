"""The compiled CPU kernels release the GIL (``nogil=True``): the serve render pool's and the
screen's threads run them side by side instead of one at a time; and kernels run from several
threads at once give the images they give one at a time."""

from __future__ import annotations

import importlib
import pkgutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba.core.registry import CPUDispatcher

import ainu_engine.kernels
from ainu_engine.kernels import render_kde_cpu


def _dispatchers():
    mods = [importlib.import_module("ainu_engine.simulate._smlm")]
    for info in pkgutil.iter_modules(ainu_engine.kernels.__path__, "ainu_engine.kernels."):
        if not info.name.endswith("_cuda"):
            mods.append(importlib.import_module(info.name))
    for mod in mods:
        for name, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and obj.targetoptions.get("inline") != "always":
                yield f"{mod.__name__}.{name}", obj


def test_every_compiled_kernel_releases_the_gil():
    found = dict(_dispatchers())
    assert len(found) >= 10, sorted(found)  # the KDE, occlusion, resize, raster, link kernels
    holding = [name for name, d in found.items() if not d.targetoptions.get("nogil")]
    assert not holding, f"kernels that hold the GIL: {holding}"


def test_renders_in_parallel_threads_equal_the_serial_ones():
    rng = np.random.default_rng(3)
    jobs = []
    for k in range(8):
        n = 20_000 + 5_000 * k
        x, y = rng.uniform(0, 12_800, n), rng.uniform(0, 12_800, n)
        jobs.append((x, y, np.full(1, 10.0 + 5 * k), np.zeros(n, np.int32)))

    def render(job):
        x, y, s, c = job
        return render_kde_cpu(x, y, s, c, shape=(1, 128, 128), origin_nm=(0.0, 0.0),
                              pixel_nm=100.0)  # fmt: skip

    serial = [render(j) for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(render, jobs * 3))
    for k, img in enumerate(parallel):
        np.testing.assert_array_equal(img, serial[k % len(jobs)])
