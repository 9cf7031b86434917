"""Fuzzing every reader: hypothesis mutates valid files of every format (byte flips, truncation,
spliced-in hostile values and line endings) and ``read`` must give a result or an AinuError —
nothing else, within a time limit and a memory bound per case.

The quick budget (600 fixed cases) runs in the default suite; ``-m slow`` runs a long one (4000
random cases; fixed ones under CI=true). Each case has a time limit (a hang is a failure, not a
stalled suite) and a memory bound. A failure prints the falsifying example and hypothesis's
reproduction blob (``@reproduce_failure``)."""

from __future__ import annotations

import contextlib
import os
import signal
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ainu_engine.errors import AinuError
from ainu_engine.io import read

from .samples import BUILDERS

#: per case: what a mutated 5-row file may make the reader allocate (numpy and Python objects)
MEMORY_BOUND = 256 * 2**20
HOSTILE = [b"1e39", b"-1e39", b"inf", b"nan", b"-1", b"99999999999999999999", b"3e9", b"\r",
           b"\x00", b"\xff\xfe", b'"', b",,,", b"{", b"[" * 64, b"\r\n"]  # fmt: skip
SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _mutate(data: bytes, ops) -> bytes:
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


OPS = st.lists(
    st.tuples(st.sampled_from(["flip", "truncate", "splice", "duplicate"]),
              st.integers(0, 2**20), st.integers(0, 255)),
    min_size=1, max_size=6,
)  # fmt: skip


#: per case: a read that takes longer than this has hung (the files are a few kB)
TIME_LIMIT_S = 10.0


@contextlib.contextmanager
def _time_limit(seconds: float, what: str):
    def alarm(signum, frame):
        raise TimeoutError(f"{what}: no result after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _check_one(tmp_path, name: str, ops) -> None:
    build, file_name = BUILDERS[name]
    src = tmp_path / f"valid-{name}"
    src.mkdir(exist_ok=True)
    path = build(src / file_name)
    bad = tmp_path / f"fuzz-{name}" / file_name
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(_mutate(path.read_bytes(), ops))
    tracemalloc.start()
    try:
        for fmt in ("auto", name):
            with _time_limit(TIME_LIMIT_S, f"{name} read as {fmt}"):
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


@pytest.mark.timeout(300)
@settings(max_examples=600, deadline=5000, print_blob=True, derandomize=True,
          suppress_health_check=SUPPRESS)  # fmt: skip
@given(name=st.sampled_from(sorted(BUILDERS)), ops=OPS)
def test_mutated_files_give_a_result_or_an_ainu_error(tmp_path, name, ops):
    _check_one(tmp_path, name, ops)


@pytest.mark.slow
@pytest.mark.timeout(600)
# random cases on a developer's machine; the same fixed ones in CI (CI=true), so that a landing
# never depends on luck; a failure prints the case and its @reproduce_failure blob
@settings(max_examples=4000, deadline=10000, print_blob=True, suppress_health_check=SUPPRESS,
          derandomize=os.environ.get("CI") == "true")  # fmt: skip
@given(name=st.sampled_from(sorted(BUILDERS)), ops=OPS)
def test_mutated_files_long_run(tmp_path, name, ops):
    _check_one(tmp_path, name, ops)
