"""The fuzz cases of ``test_fuzz.py``, run in a process of their own.

A fresh interpreter has none of the native thread pools that earlier tests leave behind (ONNX
Runtime, Numba, pyarrow), so the per-case time limit (SIGALRM) and the allocation bound
(tracemalloc) measure the readers alone. ``python -m tests.engine.io.fuzz_worker N [--random]``
runs N cases; exit status 1 and the falsifying example on stderr when one fails.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ainu_engine.errors import AinuError
from ainu_engine.io import read

from .samples import BUILDERS

#: per case: what a mutated 5-row file may make the reader allocate (numpy and Python objects)
MEMORY_BOUND = 256 * 2**20
#: per case: a read that takes longer than this has hung (the files are a few kB)
TIME_LIMIT_S = 10.0
HOSTILE = [b"1e39", b"-1e39", b"inf", b"nan", b"-1", b"99999999999999999999", b"3e9", b"\r",
           b"\x00", b"\xff\xfe", b'"', b",,,", b"{", b"[" * 64, b"\r\n"]  # fmt: skip
OPS = st.lists(
    st.tuples(st.sampled_from(["flip", "truncate", "splice", "duplicate"]),
              st.integers(0, 2**20), st.integers(0, 255)),
    min_size=1, max_size=6,
)  # fmt: skip


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, pos, arg in ops:
        if not b:
            break
        i = pos % len(b)
        if kind == "flip":
            b[i] ^= 1 << (arg % 8)
        elif kind == "truncate":
            del b[i:]
        elif kind == "splice":
            b[i : i + (arg % 8)] = HOSTILE[arg % len(HOSTILE)]
        elif kind == "duplicate":
            b[i:i] = b[i : i + (arg % 64)]
    return bytes(b)


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    def alarm(signum, frame):
        raise TimeoutError(f"{what}: no result after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_one(root: Path, name: str, ops) -> None:
    build, file_name = BUILDERS[name]
    src = root / f"valid-{name}"
    src.mkdir(exist_ok=True)
    path = build(src / file_name)
    bad = root / f"fuzz-{name}" / file_name
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(mutate(path.read_bytes(), ops))
    if LAST is not None:  # the case in hand, for a crash that takes the process with it
        LAST.write_text(f"{name} {ops!r}\n")
    tracemalloc.start()
    try:
        for fmt in ("auto", name):
            with time_limit(TIME_LIMIT_S, f"{name} read as {fmt}"):
                try:
                    read(bad, format=fmt, camera_pixel_nm=100.0)
                except AinuError:
                    pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, (
        f"{name}: {peak / 2**20:.0f} MiB for a {bad.stat().st_size}-byte file"
    )


LAST: Path | None = None


def run(n: int, *, derandomize: bool) -> None:
    global LAST
    import faulthandler

    faulthandler.enable()
    root = Path(tempfile.mkdtemp(prefix="ainu-fuzz-"))
    LAST = root / "last-case.txt"
    print(f"cases in {root}", file=sys.stderr, flush=True)

    @settings(max_examples=n, deadline=None, print_blob=True, derandomize=derandomize,
              database=None, suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(name=st.sampled_from(sorted(BUILDERS)), ops=OPS)
    def cases(name, ops):
        check_one(root, name, ops)

    cases()


if __name__ == "__main__":
    run(int(sys.argv[1]), derandomize="--random" not in sys.argv)
    print(f"{sys.argv[1]} cases: a result or an AinuError each")
