"""How many threads a parallel CPU kernel runs on: all of Numba's for large work, one for small.

Numba's OpenMP threads spin for a while after each parallel region before they sleep. For a
kernel that runs a millisecond, once per nucleus, inside a pipeline that keeps the other cores
busy (reading, inference, other render processes), that spinning costs the pipeline more CPU
than the threads save: measured on 2 cores, rendering 280 small nuclei (2·10⁴ localizations
each) took 4.9 CPU-s for 2.5 s with both threads and 2.5 CPU-s for 2.5 s with one. Large
work amortises the spin, and there all threads pay.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba

__all__ = ["share_threads", "threads_for"]


@contextmanager
def threads_for(work: float, parallel_from: float) -> Iterator[int]:
    """Run the parallel kernels called inside on one thread when ``work < parallel_from``,
    else on Numba's threads; yields the number used. Thread-local (Numba's
    ``set_num_threads``): other threads' kernels are not affected.

    Parameters
    ----------
    work : float
        The call's size, in the kernel's unit (localizations, pixels).
    parallel_from : float
        The size from which all threads pay.

    Yields
    ------
    int
        Threads the kernels inside run on.

    Examples
    --------
    >>> with threads_for(10, parallel_from=1000) as n:
    ...     n
    1
    """
    n = numba.get_num_threads()
    if work >= parallel_from or n == 1:
        yield n
        return
    numba.set_num_threads(1)
    try:
        yield 1
    finally:
        numba.set_num_threads(n)


def share_threads(workers: int) -> int:
    """Give the calling thread its share of Numba's threads, for ``workers`` threads that run
    kernels at the same time (a render pool): ``NUMBA_NUM_THREADS // workers``, at least one, so
    that together they do not ask for more threads than there are cores. Thread-local.

    Parameters
    ----------
    workers : int
        Threads that run kernels at once.

    Returns
    -------
    int
        The calling thread's kernel threads from now on.
    """
    n = max(1, numba.config.NUMBA_NUM_THREADS // max(1, int(workers)))
    numba.set_num_threads(n)
    return n
