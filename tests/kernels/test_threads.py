"""Small kernel calls run on one thread, large ones on all: the image is the same either way,
and the caller's thread count is back afterwards, whatever happens inside."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from ainu_engine.kernels import _kde, _resize, render_kde_cpu, resize_area
from ainu_engine.kernels._threads import threads_for


def test_small_work_runs_on_one_thread_and_the_count_comes_back():
    n = numba.get_num_threads()
    with threads_for(10, parallel_from=100) as used:
        assert used == numba.get_num_threads() == 1
    assert numba.get_num_threads() == n
    with threads_for(100, parallel_from=100) as used:
        assert used == numba.get_num_threads() == n
    with pytest.raises(RuntimeError), threads_for(1, parallel_from=100):
        raise RuntimeError("inside")
    assert numba.get_num_threads() == n


def test_the_render_does_not_depend_on_the_threads(monkeypatch):
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 3000, (2, 5000))
    ch = rng.integers(0, 2, 5000).astype(np.int32)
    kw = dict(shape=(2, 200, 200), origin_nm=(0.0, 0.0), pixel_nm=16.0)
    one = render_kde_cpu(x, y, 20.0, ch, **kw)  # 5000 < PARALLEL_FROM_LOCS: one thread
    monkeypatch.setattr(_kde, "PARALLEL_FROM_LOCS", 0)
    assert np.array_equal(render_kde_cpu(x, y, 20.0, ch, **kw), one)
    img = rng.random((2, 256, 256)).astype(np.float32)
    small = resize_area(img, 64, 64)
    monkeypatch.setattr(_resize, "PARALLEL_FROM_PIXELS", 0)
    assert np.array_equal(resize_area(img, 64, 64), small)


def test_a_render_pool_thread_takes_its_share():
    """Two threads that render at once get half of Numba's threads each (at least one), in
    their own thread only."""
    import threading

    from ainu_engine.kernels import share_threads

    total = numba.config.NUMBA_NUM_THREADS
    seen = []
    t = threading.Thread(target=lambda: seen.append((share_threads(2), numba.get_num_threads())))
    t.start()
    t.join()
    assert seen == [(max(1, total // 2),) * 2]
    assert numba.get_num_threads() == total  # this thread untouched
    t = threading.Thread(target=lambda: seen.append(share_threads(4 * total)))
    t.start()
    t.join()
    assert seen[-1] == 1
