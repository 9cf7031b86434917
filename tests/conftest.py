"""Shared fixtures: the real-format samples in ../shared/data/formats (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FORMATS = Path(
    os.environ.get("AINU_SHARED_FORMATS", REPO.parent / "shared" / "data" / "formats")
)


@pytest.fixture(scope="session")
def shared_formats() -> Path:
    """Folder of real localization files written by other software (not in this repository)."""
    if not SHARED_FORMATS.is_dir():
        pytest.skip(
            f"real-format samples not found at {SHARED_FORMATS} "
            "(they live in ../shared/data/formats beside the checkout)"
        )
    return SHARED_FORMATS


@pytest.fixture
def torch_threads():
    """Torch tests run beside other work: two threads, restored afterwards."""
    torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
