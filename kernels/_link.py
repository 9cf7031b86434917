"""Linking the repeated localizations of one emitter into chains (Picasso's ``link``): from each
localization not yet in a chain, the chain goes on to the first localization — in frame order —
of the same group that is not yet in a chain, lies in one of the next ``max_dark + 1`` frames and
within ``d_max`` of the chain's last localization; a chain ends where there is none."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["link_chains", "link_chains_reference", "next_frame_distances"]


@numba.njit(cache=True, nogil=True)
def link_chains(frame, x, y, group, d_max, max_dark):  # pragma: no cover - compiled
    """Chain ids (0, 1, ... in order of first localization) of localizations sorted by frame.

    Parameters
    ----------
    frame : int64 array, sorted
    x, y : float64 arrays
    group : int64 array
        Localizations link only within a group (a channel).
    d_max : float
    max_dark : int

    Returns
    -------
    int64 array
    """
    n = len(x)
    chain = -np.ones(n, np.int64)
    d2 = d_max * d_max
    current = -1
    for i in range(n):
        if chain[i] != -1:
            continue
        current += 1
        chain[i] = current
        k = i
        while True:
            lo_frame = frame[k] + 1
            hi_frame = frame[k] + max_dark + 1
            j = k + 1
            while j < n and frame[j] < lo_frame:
                j += 1
            nxt = -1
            while j < n and frame[j] <= hi_frame:
                if group[j] == group[k] and chain[j] == -1:
                    dx = x[k] - x[j]
                    dy = y[k] - y[j]
                    if dx * dx + dy * dy <= d2:
                        nxt = j
                        break
                j += 1
            if nxt == -1:
                break
            chain[nxt] = current
            k = nxt
    return chain


def link_chains_reference(frame, x, y, group, d_max, max_dark) -> np.ndarray:
    """:func:`link_chains` in plain Python (the reference the kernel is tested against).

    Parameters
    ----------
    frame : array of int, sorted
    x, y : array of float
    group : array of int
    d_max : float
    max_dark : int

    Returns
    -------
    ndarray of int64
        Chain ids.

    Examples
    --------
    >>> link_chains_reference(np.array([0, 1, 1, 5]), np.array([0.0, 5, 900, 2]),
    ...                       np.zeros(4), np.zeros(4, int), 30.0, 1).tolist()
    [0, 0, 1, 2]
    """
    n = len(x)
    chain = -np.ones(n, np.int64)
    current = -1
    for i in range(n):
        if chain[i] != -1:
            continue
        current += 1
        chain[i] = current
        k = i
        while True:
            cands = [j for j in range(k + 1, n)
                     if frame[k] + 1 <= frame[j] <= frame[k] + max_dark + 1
                     and group[j] == group[k] and chain[j] == -1
                     and (x[k] - x[j]) ** 2 + (y[k] - y[j]) ** 2 <= d_max**2]  # fmt: skip
            if not cands:
                break
            chain[cands[0]] = current
            k = cands[0]
    return chain


@numba.njit(cache=True, nogil=True)
def next_frame_distances(frame, x, y, group, d_max):  # pragma: no cover - compiled
    """The distance from each localization (sorted by frame) to its nearest neighbour of the same
    group in the next frame, where one lies within ``d_max`` (NaN elsewhere): the distances
    NeNA fits (Endesfelder et al. 2014).

    Parameters
    ----------
    frame : int64 array, sorted
    x, y : float64 arrays
    group : int64 array
    d_max : float

    Returns
    -------
    float64 array
    """
    n = len(x)
    out = np.full(n, np.nan)
    d2max = d_max * d_max
    start = 0  # the first localization of the next frame, moving forward with i
    for i in range(n):
        if start <= i:
            start = i + 1
        while start < n and frame[start] <= frame[i]:
            start += 1
        best = d2max
        found = False
        j = start
        while j < n and frame[j] == frame[i] + 1:
            if group[j] == group[i]:
                dx = x[i] - x[j]
                dy = y[i] - y[j]
                d2 = dx * dx + dy * dy
                if d2 <= best:
                    best = d2
                    found = True
            j += 1
        if found:
            out[i] = np.sqrt(best)
    return out
