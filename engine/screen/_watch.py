"""``watch``: screen localization files as a localizer finishes writing them into a folder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["watch", "settled_files"]

#: names a localizer writes while it is still writing (never screened)
PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", "~")


def _candidates(folder: Path) -> list[Path]:
    from ..nuclei import expand_inputs

    try:
        files = expand_inputs([folder])
    except Exception:  # noqa: BLE001 - an empty or vanishing folder has no candidates
        return []
    return [
        f
        for f in files
        if not f.name.startswith(".") and not f.name.lower().endswith(PARTIAL_SUFFIXES)
    ]


def _sidecar(path: Path) -> bool:
    return (
        any(Path(str(path) + s).exists() for s in (".json", ".done"))
        or path.with_suffix(".yaml").exists()
    )


def settled_files(
    folder: Path, seen: dict, settle_s: float, now: float | None = None
) -> list[Path]:
    """Files of ``folder`` that are finished: their size and modification time have not changed
    for ``settle_s`` seconds, or a sidecar (``NAME.json``, ``NAME.done``, ``NAME.yaml``) has
    appeared. ``seen`` keeps (size, mtime, first time seen that way) between calls.

    Parameters
    ----------
    folder : Path
        The folder watched.
    seen : dict
        The state kept between calls (updated).
    settle_s : float
        How long a file must stay unchanged.
    now : float, optional
        The time (``time.monotonic``; for tests).

    Returns
    -------
    list of Path
    """
    now = time.monotonic() if now is None else now
    out = []
    for f in _candidates(folder):
        try:
            st = f.stat()
        except OSError:
            continue
        sig = (st.st_size, st.st_mtime_ns)
        old = seen.get(f)
        if old is None or old[:2] != sig:
            seen[f] = (*sig, now)
            if not _sidecar(f):
                continue
        if st.st_size and (_sidecar(f) or now - seen[f][2] >= settle_s):
            out.append(f)
    return out


def watch(
    folder: str | os.PathLike,
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    settle_s: float = 2.0,
    poll_s: float = 1.0,
    once: bool = False,
    stop: Callable[[], bool] | None = None,
    on_screen: Callable[[object, list[Path]], None] | None = None,
    **screen_options,
) -> int:
    """Screen every finished localization file that appears in ``folder`` into ``out``, the
    same resumable results as :func:`ainu_engine.screen.screen` (a file already screened is
    never screened twice, across restarts too: screen's journal says which are done).

    A file is finished when it has stopped growing for ``settle_s`` seconds or when its sidecar
    appears; files still being written, hidden files and ``*.part``/``*.tmp`` names are left
    alone. ``once``: screen what is finished now and return. Otherwise poll every ``poll_s``
    seconds until ``stop()`` is true (or Ctrl-C). Returns the number of files screened.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder the acquisition writes to.
    model : str or os.PathLike
        The exported model.
    out : str or os.PathLike
        The screen's folder.
    settle_s : float
        How long a file must stop growing.
    poll_s : float
        The polling interval.
    once : bool
        Screen what is finished now and return.
    stop : callable, optional
        Polled: True stops the watch.
    on_screen : callable, optional
        Called with each screen's summary and its files.
    **screen_options
        Keywords of :func:`ainu_engine.screen.screen`.

    Returns
    -------
    int
        The number of files screened.
    """
    from ._pipeline import screen

    folder, out = Path(folder), Path(out)
    seen: dict = {}
    handled: set = set()  # (path, size, mtime) screened this session: a bad file is not retried
    n = 0
    if once:  # two looks, settle_s apart: what did not change in between is finished
        settled_files(folder, seen, settle_s)
        time.sleep(settle_s)
    while True:
        ready = [
            f for f in settled_files(folder, seen, settle_s) if (f, *seen[f][:2]) not in handled
        ]
        if ready:
            summary = screen(ready, model, out, **screen_options)
            handled.update((f, *seen[f][:2]) for f in ready)
            n += len(ready)
            if on_screen is not None:
                on_screen(summary, ready)
        if once or (stop is not None and stop()):
            return n
        time.sleep(poll_s)
