"""Fuzzing every reader: hypothesis mutates valid files of every format (byte flips, truncation,
spliced-in hostile values and line endings, duplication) and ``read`` must give a result or an
AinuError — nothing else — within a 10 s time limit and a 256 MiB allocation bound per case.

The cases run in a process of their own (``fuzz_worker.py``): the native thread pools earlier
tests leave behind do not share it. The quick budget (600 fixed cases) is in the default suite;
``-m slow`` runs 4000 more (random on a developer's machine, fixed under CI=true, so that a
landing never depends on luck). A failure prints the falsifying example and its
``@reproduce_failure`` blob."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _run(n: int, *, random: bool) -> None:
    args = [sys.executable, "-m", "tests.engine.io.fuzz_worker", str(n)] + (
        ["--random"] if random else []
    )
    res = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, f"fuzz worker failed:\n{res.stdout[-4000:]}\n{res.stderr[-8000:]}"
    assert f"{n} cases" in res.stdout


@pytest.mark.timeout(600)
def test_mutated_files_give_a_result_or_an_ainu_error():
    _run(600, random=False)


@pytest.mark.slow
@pytest.mark.timeout(1300)
def test_mutated_files_long_run():
    _run(4000, random=os.environ.get("CI") != "true")


def test_the_worker_catches_what_is_not_an_ainu_error(tmp_path, monkeypatch):
    """The harness has teeth: a reader escape fails a case."""
    from ainu_engine import io

    from . import fuzz_worker

    def escape(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr(fuzz_worker, "read", escape)
    with pytest.raises(KeyError):
        fuzz_worker.check_one(tmp_path, "thunderstorm", [("flip", 3, 1)])
    assert io.read is not escape
